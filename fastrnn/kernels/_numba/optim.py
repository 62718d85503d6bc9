"""One-pass optimiser updates for :mod:`fastrnn.nn.optim` (each NumPy-expression form makes ~10 passes)."""
import numba
import numpy as np
from numba import njit, prange

from .config import JIT_OPTIONS, PARALLEL_OPTIONS

# Parameters with at least this many values are updated by all the threads (:func:`adam_update_split`).
# Measured on 2 cores of a Zen 5 right after a parallel kernel (its workers still spinning), one pass
# serial / split: 16k float32 values 7.8 / 8.3 us, 32k 14.1 / 12.0, 64k 24.4 / 16.6, 2M (a large LSTM's
# weights) 903 / 493 us.
MIN_VALUES_TO_SPLIT = 1 << 15


@njit(**JIT_OPTIONS)
def adam_update(param, grad, m, v, beta_1, beta_2, epsilon, step):
    """One Adam step in place, element by element: ``m`` and ``v`` are the moment estimates, ``step`` the
    bias-corrected learning rate. All arrays 1-D, C-contiguous, of one float dtype; the scalars in that
    dtype (so float32 parameters are updated in float32)."""
    one = beta_1 - beta_1 + 1
    for j in range(param.shape[0]):
        g = grad[j]
        m[j] = beta_1 * m[j] + (one - beta_1) * g
        v[j] = beta_2 * v[j] + (one - beta_2) * (g * g)
        param[j] -= step * (m[j] / (np.sqrt(v[j]) + epsilon))


@njit(**PARALLEL_OPTIONS)
def adam_update_parts(param, grad, m, v, beta_1, beta_2, epsilon, step, parts):
    """:func:`adam_update` over ``parts`` contiguous blocks of the arrays, one per thread."""
    n = param.shape[0]
    for k in prange(parts):
        lo, hi = k * n // parts, (k + 1) * n // parts
        adam_update(param[lo:hi], grad[lo:hi], m[lo:hi], v[lo:hi], beta_1, beta_2, epsilon, step)


def adam_update_split(param, grad, m, v, beta_1, beta_2, epsilon, step):
    """:func:`adam_update`, split over the Numba threads for parameters of :data:`MIN_VALUES_TO_SPLIT`
    values or more. Not for a process forked after OpenMP threads started (``kernels.compiled_adam_update``
    hands out the serial one there)."""
    parts = numba.get_num_threads() if param.shape[0] >= MIN_VALUES_TO_SPLIT else 1  # (small: no call)
    if parts > 1:
        adam_update_parts(param, grad, m, v, beta_1, beta_2, epsilon, step, parts)
    else:
        adam_update(param, grad, m, v, beta_1, beta_2, epsilon, step)
