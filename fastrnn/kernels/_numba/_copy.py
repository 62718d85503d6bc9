"""Row copies for the kernels, as plain loops in their own small compiled functions.

Slice assignment (``a[:, :I] = b``) is general broadcasting code that Numba types and lowers anew
at every use; in the time-loop kernels that roughly doubled compile time. These compile once per
signature and are shared.
"""
from numba import njit

from .config import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def copy_row(dst, src):
    """``dst[:n] = src[:n]`` with ``n = len(src)`` (1-D arrays)."""
    for j in range(src.shape[0]):
        dst[j] = src[j]


@njit(**JIT_OPTIONS)
def copy_rows(dst, col0, src):
    """``dst[r, col0:col0 + m] = src[r, :]`` for every row of ``src`` (m, the columns of ``src``)."""
    for r in range(src.shape[0]):
        d, s = dst[r], src[r]
        for j in range(s.shape[0]):
            d[col0 + j] = s[j]


@njit(**JIT_OPTIONS)
def fill_rows(dst, rows, src):
    """``dst[r, :len(src)] = src`` for ``r < rows``."""
    for r in range(rows):
        d = dst[r]
        for j in range(src.shape[0]):
            d[j] = src[j]


@njit(**JIT_OPTIONS)
def zero_rows(dst, rows):
    """``dst[:rows] = 0``."""
    for r in range(rows):
        d = dst[r]
        for j in range(d.shape[0]):
            d[j] = 0
