"""How OpenMP worker threads wait between kernel calls.

GNU libgomp's workers busy-spin after a parallel region (up to ~300k spins by default), then sleep.
A long spin fights other threads for the cores: with NumPy's threaded BLAS running the GEMMs around
the time loop, it made a B=1 LSTM call on 2 cores 12x slower (8 ms instead of 0.67 ms). Sleeping at
once (``OMP_WAIT_POLICY=PASSIVE``) has the opposite cost: every call must wake the workers, and in
the virtual machines measured here a wake-up takes 60-200 us, a large part of a B=1 forward pass (an
empty 2-thread region: 58-94 us passive, 2-4 us with the worker still spinning, after 0-50 us of Python).

So fastrnn loads libgomp with a short spin, ``GOMP_SPINCOUNT=10000`` pause turns (200-500 us on an
AMD Zen 4): long enough that a worker is still awake when the next call comes after the Python
between two calls, short enough to bound the fight with other threads (fastrnn's own GEMMs run on
Python threads with single-threaded BLAS, see ``_split_gemm``). Paired runs on a 2-core Zen 4, median
time with the short spin over time with passive waiting: small LSTM inference 0.86, small GRU 0.92,
latency_b1 GRU inference 0.83, small LSTM training 0.89, medium LSTM training 0.97; large GRU
training, infer_batch LSTM and latency_b1 LSTM inference within noise (0.95-1.05). A spin ten times
longer (100000) sped up inference as much but slowed the small LSTM training step 1.3-1.5x.

libgomp reads the setting once, when it is loaded. fastrnn loads it so just before its compiled
backends (Numba's ``omp`` layer and the Cython extension share the system libgomp), unless the user
set ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` (their choice stands) or libgomp is already loaded (then
nothing can change it). The environment is restored afterwards, so child processes do not inherit it.
PyTorch bundles a libgomp of the same name: imported after fastrnn, it ran on the one already loaded,
with this setting (small GRU inference in PyTorch took 22 ms instead of 4-5 ms in one such process
here); a program that runs both should import torch first.
"""
import ctypes
import os
import sys

_USER_VARIABLES = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
_LIBGOMP = "libgomp.so.1"
SPIN_COUNT = "10000"  # pause turns a worker spins after a region before it sleeps (see above)
_status = None


def _libgomp_loaded():
    try:
        with open("/proc/self/maps") as fh:
            return any("/libgomp.so" in line for line in fh)
    except OSError:
        return False


def configure_waiting():
    """Load libgomp with a short spin where fastrnn may choose; return how waiting was decided."""
    global _status
    if _status is not None:
        return _status
    if not sys.platform.startswith("linux"):
        _status = "OpenMP runtime defaults (not Linux)"
    elif any(name in os.environ for name in _USER_VARIABLES):
        _status = "set by the user: " + ", ".join(f"{n}={os.environ[n]}" for n in _USER_VARIABLES if n in os.environ)
    elif _libgomp_loaded():
        _status = f"libgomp was loaded before fastrnn: its defaults apply (set GOMP_SPINCOUNT={SPIN_COUNT})"
    else:
        os.environ["GOMP_SPINCOUNT"] = SPIN_COUNT
        try:
            ctypes.CDLL(_LIBGOMP, mode=ctypes.RTLD_GLOBAL)
            _status = f"spin {SPIN_COUNT} pause turns, then sleep (chosen by fastrnn)"
        except OSError:
            _status = "libgomp not found: OpenMP runtime defaults"
        finally:
            del os.environ["GOMP_SPINCOUNT"]
    return _status


def waiting_policy():
    """How OpenMP workers wait, as decided by :func:`configure_waiting` (None before it ran)."""
    return _status
