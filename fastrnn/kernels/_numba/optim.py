"""One-pass optimiser updates for :mod:`fastrnn.nn.optim` (each NumPy-expression form makes ~10 passes)."""
import numpy as np
from numba import njit

from .config import JIT_OPTIONS


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
