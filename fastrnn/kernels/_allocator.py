"""Keep freed memory in the C heap between kernel calls, where glibc would hand it back to the OS.

Every call allocates its outputs and buffers anew (NumPy, and the Numba runtime inside the kernels).
By default glibc returns the free top of its heap to the OS once it exceeds a trim threshold and serves
blocks above an mmap threshold with fresh mappings, so the next call's buffers are new pages that the
OS zeroes on first touch. In the virtual machines measured here that page faulting cost more than a
small shape's arithmetic: small LSTM inference 1.25 -> 0.93 ms, medium 59 -> 56 ms (interleaved runs).
(ONNX Runtime keeps an arena for the same reason.)

glibc raises both thresholds by itself after large frees, up to 32 MiB for mmap and twice that for
trimming; fastrnn sets them there from the start with ``mallopt``: on Linux with glibc, when a compiled
backend loads, unless the user set glibc's own ``MALLOC_*_`` variables or ``GLIBC_TUNABLES`` (their
choice stands) or ``FASTRNN_MALLOC_TUNING=0``. The cost: up to 64 MiB of freed memory stays with the
process instead of returning to the OS. Blocks over 32 MiB are still mapped and unmapped each time.
"""
import ctypes
import os
import platform
import sys

MMAP_THRESHOLD = 32 << 20  # glibc's DEFAULT_MMAP_THRESHOLD_MAX on 64-bit systems
TRIM_THRESHOLD = 2 * MMAP_THRESHOLD  # what glibc's dynamic rule pairs with it
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h
_USER_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TOP_PAD_", "MALLOC_MMAP_MAX_",
                   "GLIBC_TUNABLES")
_status = None


def keep_freed_memory():
    """Pin glibc's trim and mmap thresholds at their dynamic maxima where fastrnn may; return what was
    decided (also available from :func:`allocator_policy`)."""
    global _status
    if _status is not None:
        return _status
    if os.environ.get("FASTRNN_MALLOC_TUNING", "1") == "0":
        _status = "glibc defaults (FASTRNN_MALLOC_TUNING=0)"
    elif not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        _status = "C library defaults (not glibc)"
    elif any(name in os.environ for name in _USER_VARIABLES):
        _status = "set by the user: " + ", ".join(n for n in _USER_VARIABLES if n in os.environ)
    else:
        try:
            libc = ctypes.CDLL(None)
            done = libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and libc.mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD)
        except (OSError, AttributeError):
            done = False
        _status = ("freed memory kept up to 64 MiB (glibc mmap threshold 32 MiB, trim threshold 64 MiB)" if done
                   else "glibc defaults (mallopt failed)")
    return _status


def allocator_policy():
    """What :func:`keep_freed_memory` decided (None before a compiled backend loaded)."""
    return _status
