"""Vectorisable activations for the Numba kernels, chosen by dtype at compile time.

float32 uses a rational approximation of tanh (about 3 ulp, well inside the float32 parity
tolerance) because libm's scalar ``tanh`` cannot be vectorised by LLVM and dominated small shapes.
float64 keeps the exact libm function, so float64 results match the reference to rounding.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .config import JIT_OPTIONS

_CLAMP = np.float32(7.90531110763549805)  # tanh(x) rounds to +-1 in float32 beyond this
_A1, _A3, _A5, _A7 = (np.float32(4.89352455891786e-03), np.float32(6.37261928875436e-04),
                      np.float32(1.48572235717979e-05), np.float32(5.12229709037114e-08))
_A9, _A11, _A13 = (np.float32(-8.60467152213735e-11), np.float32(2.00018790482477e-13),
                   np.float32(-2.76076847742355e-16))
_B0, _B2, _B4, _B6 = (np.float32(4.89352518554385e-03), np.float32(2.26843463243900e-03),
                      np.float32(1.18534705686654e-04), np.float32(1.19825839466702e-06))


@njit(inline="always", **JIT_OPTIONS)
def tanh_f32(x):
    """float32 tanh as a 13/6 rational polynomial on a clamped argument: branch-free, vectorisable."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _A13 + _A11
    p = x2 * p + _A9
    p = x2 * p + _A7
    p = x2 * p + _A5
    p = x2 * p + _A3
    p = x2 * p + _A1
    q = x2 * _B6 + _B4
    q = x2 * q + _B2
    q = x2 * q + _B0
    return x * p / q


def tanh(x):
    """tanh for kernels: the rational form for float32, libm for float64."""
    raise NotImplementedError  # only callable from jitted code


def sigmoid(x):
    """Logistic function for kernels, as ``0.5 * tanh(x / 2) + 0.5`` (finite everywhere)."""
    raise NotImplementedError  # only callable from jitted code


@overload(tanh, inline="always", jit_options=JIT_OPTIONS)
def _tanh_impl(x):
    if x == types.float32:
        return lambda x: tanh_f32(x)
    return lambda x: np.tanh(x)


@overload(sigmoid, inline="always", jit_options=JIT_OPTIONS)
def _sigmoid_impl(x):
    if x == types.float32:
        return lambda x: np.float32(0.5) * tanh_f32(np.float32(0.5) * x) + np.float32(0.5)
    return lambda x: 0.5 * np.tanh(0.5 * x) + 0.5


def one_of(array):
    """The number 1 in ``array``'s float type, so float32 kernels never promote to float64."""
    raise NotImplementedError  # only callable from jitted code


@overload(one_of, inline="always", jit_options=JIT_OPTIONS)
def _one_of_impl(array):
    if array.dtype == types.float32:
        return lambda array: np.float32(1.0)
    return lambda array: 1.0
