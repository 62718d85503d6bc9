"""The Cython backend: the same fused time loops as the Numba backend, compiled ahead of time.

No JIT, so the first call is as fast as the rest (the choice for services that start often) and it
works where Numba does not install. The batch is split over OpenMP threads when the build had
OpenMP (see :func:`set_num_threads`); the GEMMs around the loops are NumPy's, as in every backend.
Raises ImportError when the extension was not built, so the registry can fall back.

The time loops come in two builds of one source (``_recurrences.pxi``): ``baseline``, compiled for
any CPU the compiler targets, and ``avx2`` (x86-64, when the compiler took ``-mavx2 -mfma``), 1.9-2.8x
faster in inference on the standard shapes here. :data:`BUILD` is the one in use: ``avx2`` when it
was built and the CPU runs it, unless the ``FASTRNN_CYTHON_BUILD`` environment variable names the other.
"""
import importlib
import os
import warnings

from .._driver import FusedKernels
from ._recurrences import cpu_has_avx2_fma

BUILDS = ("baseline", "avx2")
_MODULES = {"baseline": "_recurrences", "avx2": "_recurrences_avx2"}


def import_build(build):
    """The compiled module of ``build``; ImportError when it was not built here."""
    return importlib.import_module(f"{__name__}.{_MODULES[build]}")


def runnable_builds():
    """The builds compiled here that this CPU can run, the portable one first."""
    builds = ["baseline"]
    if cpu_has_avx2_fma():
        try:
            import_build("avx2")
            builds.append("avx2")
        except ImportError:  # not built: the compiler lacked the flags, or not x86-64
            pass
    return builds


def _chosen_build():
    """``FASTRNN_CYTHON_BUILD`` when it names a build that runs here (else a warning), otherwise the fastest."""
    runnable = runnable_builds()
    requested = os.environ.get("FASTRNN_CYTHON_BUILD", "auto").strip().lower() or "auto"
    if requested in runnable:
        return requested
    if requested != "auto":
        why = (f"is not one of {', '.join(BUILDS)} or 'auto'" if requested not in BUILDS else
               "was not built here or this CPU lacks AVX2/FMA")
        warnings.warn(f"fastrnn: FASTRNN_CYTHON_BUILD={requested!r} {why}; using the {runnable[-1]!r} "
                      f"Cython build. Unset the variable to choose automatically.", RuntimeWarning, stacklevel=2)
    return runnable[-1]


def fused_kernels(module):
    """The kernel contract's functions over one compiled module's recurrences (any of the builds)."""
    return FusedKernels(lstm_forward=module.lstm_forward_recurrence, lstm_backward=module.lstm_backward_recurrence,
                        gru_forward=module.gru_forward_recurrence, gru_backward=module.gru_backward_recurrence,
                        rnn_forward=module.rnn_forward_recurrence, rnn_backward=module.rnn_backward_recurrence,
                        chunk_count=chunk_count, num_threads=lambda: get_num_threads())


BUILD = _chosen_build()
_loops = import_build(BUILD)  # the compiled module in use
max_threads, openmp_enabled = _loops.max_threads, _loops.openmp_enabled

_num_threads = max(1, max_threads())
_thread_cap = None if openmp_enabled() else 1  # 1: no OpenMP, or a process forked after OpenMP started
_parallel_used = False


def set_num_threads(n):
    """Threads the Cython kernels split a batch over (1 without OpenMP or after an unsafe fork)."""
    global _num_threads
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1; got {n}")
    _num_threads = n if _thread_cap is None else min(n, _thread_cap)


def openmp_threads_started():
    """Whether these kernels have run OpenMP worker threads in this process."""
    return _parallel_used


def limit_to_one_thread():
    """For a child forked after OpenMP threads started: GNU libgomp's pool does not survive fork()
    (more than one thread would hang), but a one-thread region runs without it."""
    global _thread_cap, _num_threads
    _thread_cap, _num_threads = 1, 1


def get_num_threads():
    """Threads the Cython kernels currently use."""
    return _num_threads


def chunk_count(batch):
    """Number of batch chunks run in parallel: one per thread, never more than rows."""
    global _parallel_used
    chunks = max(1, min(batch, _num_threads))
    _parallel_used = _parallel_used or chunks > 1
    return chunks


_kernels = fused_kernels(_loops)
globals().update(_kernels.export())

__all__ = sorted(_kernels.export()) + ["BUILD", "BUILDS", "fused_kernels", "get_num_threads", "import_build",
                                       "limit_to_one_thread", "openmp_enabled", "openmp_threads_started",
                                       "runnable_builds", "set_num_threads"]
