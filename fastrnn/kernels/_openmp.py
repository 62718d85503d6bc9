"""How OpenMP worker threads wait between kernel calls.

GNU libgomp's workers busy-spin after a parallel region (up to ~300k spins by default). NumPy's BLAS
runs the GEMMs around every time loop with its own threads, so a spinning OpenMP worker steals the
core a BLAS thread needs, and vice versa: on 2 cores that made a B=1 LSTM call 12x slower (8 ms
instead of 0.67 ms). One parallel region per kernel call is all fastrnn needs, so workers that sleep
at once (``OMP_WAIT_POLICY=PASSIVE``) cost a few microseconds per call and remove the fight.

libgomp reads the policy once, when it is loaded. fastrnn loads it with the passive policy just
before its compiled backends (Numba's ``omp`` layer and the Cython extension share the system
libgomp), unless the user set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` (their choice stands) or
libgomp is already loaded (then nothing can change it). The environment is restored afterwards, so
child processes and other OpenMP runtimes (PyTorch bundles its own) are untouched.
"""
import ctypes
import os
import sys

_USER_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_LIBGOMP = "libgomp.so.1"
_status = None


def _libgomp_loaded():
    try:
        with open("/proc/self/maps") as fh:
            return any("/libgomp.so" in line for line in fh)
    except OSError:
        return False


def configure_waiting():
    """Load libgomp with passive waiting where fastrnn may choose; return how waiting was decided."""
    global _status
    if _status is not None:
        return _status
    if not sys.platform.startswith("linux"):
        _status = "OpenMP runtime defaults (not Linux)"
    elif any(name in os.environ for name in _USER_VARIABLES):
        _status = "set by the user: " + ", ".join(f"{n}={os.environ[n]}" for n in _USER_VARIABLES if n in os.environ)
    elif _libgomp_loaded():
        _status = "libgomp was loaded before fastrnn: its defaults apply (set OMP_WAIT_POLICY=PASSIVE)"
    else:
        os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
        try:
            ctypes.CDLL(_LIBGOMP, mode=ctypes.RTLD_GLOBAL)
            _status = "passive (chosen by fastrnn)"
        except OSError:
            _status = "libgomp not found: OpenMP runtime defaults"
        finally:
            del os.environ["OMP_WAIT_POLICY"]
    return _status


def waiting_policy():
    """How OpenMP workers wait, as decided by :func:`configure_waiting` (None before it ran)."""
    return _status
