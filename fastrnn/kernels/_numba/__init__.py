"""The Numba backend: fused, batch-parallel time loops compiled on first use and cached on disk.

Exposes ``{cell}_forward`` / ``{cell}_backward`` for every cell with the contract of
:mod:`fastrnn.kernels.reference` (plus ``need_grad=False`` on forward to skip saving activations).
"""
import numba  # noqa: F401  (an ImportError here makes the registry fall back to another backend)

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

__all__ = sorted(_kernels.export())
