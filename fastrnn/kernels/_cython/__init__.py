"""The Cython backend: the same fused time loops as the Numba backend, compiled ahead of time.

No JIT, so the first call is as fast as the rest (the choice for services that start often) and it
works where Numba does not install. The batch is split over OpenMP threads when the build had
OpenMP (see :func:`set_num_threads`); the GEMMs around the loops are NumPy's, as in every backend.
Raises ImportError when the extension was not built, so the registry can fall back.
"""
from .._driver import FusedKernels
from ._recurrences import (gru_backward_recurrence, gru_forward_recurrence, lstm_backward_recurrence,
                           lstm_forward_recurrence, max_threads, openmp_enabled, rnn_backward_recurrence,
                           rnn_forward_recurrence)

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


_kernels = FusedKernels(lstm_forward=lstm_forward_recurrence, lstm_backward=lstm_backward_recurrence,
                        gru_forward=gru_forward_recurrence, gru_backward=gru_backward_recurrence,
                        rnn_forward=rnn_forward_recurrence, rnn_backward=rnn_backward_recurrence,
                        chunk_count=chunk_count, num_threads=lambda: get_num_threads())
globals().update(_kernels.export())

__all__ = sorted(_kernels.export()) + ["get_num_threads", "limit_to_one_thread", "openmp_enabled",
                                       "openmp_threads_started", "set_num_threads"]
