"""Vectorisable activations for the Numba kernels, chosen by dtype at compile time.

float32 uses a rational approximation of tanh (under 9 ulp, well inside the float32 parity
tolerance) because libm's scalar ``tanh`` cannot be vectorised by LLVM and dominated small shapes.
float64 keeps the exact libm function, so float64 results match the reference to rounding.
"""
import numpy as np
from numba import njit, types
from numba.extending import overload

from .config import JIT_OPTIONS

# tanh(x) ~ x P(x^2) / Q(x^2), P of degree 4 and Q of degree 3 (a least-error fit in float32 made for
# fastrnn; the fitting script is not kept, tests/test_numerics.py checks the result): 7 multiply-adds
# where the earlier 13/6 form took 9, for 5.1e-7 most absolute error (8.5 ulp) against 4.0e-7 (6.6 ulp).
# The clamp is where the fit first reaches 1.0 in float32: beyond it tanh is exactly +-1, and it never
# exceeds 1 (so sigmoid stays in [0, 1]). A vector tanh went from 17 to 15 instructions (inspect_asm,
# AVX-512); paired runs on a Zen 5 (16 rounds, fastest of each): small LSTM inference 1.01x, infer_batch
# LSTM 1.06x, both within that machine's run-to-run noise.
_CLAMP = np.float32(7.59634)
_P0, _P1, _P2, _P3, _P4 = (np.float32(0.9999998), np.float32(0.12720482), np.float32(0.0027047559),
                           np.float32(7.2256703e-06), np.float32(-6.2570273e-09))
_Q1, _Q2, _Q3 = np.float32(0.4605366), np.float32(0.022885747), np.float32(0.00019782103)


@njit(inline="always", **JIT_OPTIONS)
def tanh_f32(x):
    """float32 tanh as a 9/6 rational polynomial on a clamped argument: branch-free, vectorisable."""
    x = min(max(x, -_CLAMP), _CLAMP)
    x2 = x * x
    p = x2 * _P4 + _P3
    p = x2 * p + _P2
    p = x2 * p + _P1
    p = x2 * p + _P0
    q = x2 * _Q3 + _Q2
    q = x2 * q + _Q1
    q = x2 * q + np.float32(1)
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
