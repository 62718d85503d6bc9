"""The Numba backend: fused, batch-parallel kernels compiled on first use and cached on disk.

Exposes ``{cell}_forward`` / ``{cell}_backward`` for every cell with the contract of
:mod:`fastrnn.kernels.reference` (plus ``need_grad=False`` on forward to skip saving activations).
"""
import numba  # noqa: F401  (an ImportError here makes the registry fall back to another backend)

from .gru import gru_backward, gru_forward
from .lstm import lstm_backward, lstm_forward
from .rnn import rnn_relu_backward, rnn_relu_forward, rnn_tanh_backward, rnn_tanh_forward

__all__ = ["lstm_forward", "lstm_backward", "gru_forward", "gru_backward", "rnn_tanh_forward",
           "rnn_tanh_backward", "rnn_relu_forward", "rnn_relu_backward"]
