"""The Numba backend: fused, batch-parallel time loops compiled on first use and cached on disk.

Exposes ``{cell}_forward`` / ``{cell}_backward`` for every cell with the contract of
:mod:`fastrnn.kernels.reference` (plus ``need_grad=False`` on forward to skip saving activations).
"""
import numba  # an ImportError here makes the registry fall back to another backend

from .._driver import FusedKernels
from ._chunks import chunk_count
from .gru import gru_backward_recurrence, gru_forward_recurrence
from .lstm import lstm_backward_recurrence, lstm_forward_recurrence
from .rnn import rnn_backward_recurrence, rnn_forward_recurrence

_kernels = FusedKernels(lstm_forward=lstm_forward_recurrence, lstm_backward=lstm_backward_recurrence,
                        gru_forward=gru_forward_recurrence, gru_backward=gru_backward_recurrence,
                        rnn_forward=rnn_forward_recurrence, rnn_backward=rnn_backward_recurrence,
                        chunk_count=chunk_count)
globals().update(_kernels.export())


def set_num_threads(n):
    """Threads the Numba kernels split a batch over (at most ``NUMBA_NUM_THREADS``)."""
    n = int(n)
    if n < 1:
        raise ValueError(f"the number of threads must be at least 1; got {n}")
    numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))


def get_num_threads():
    """Threads the Numba kernels currently use."""
    return numba.get_num_threads()


__all__ = sorted(_kernels.export()) + ["get_num_threads", "set_num_threads"]
