"""Numerics: very long sequences, float32 training against float64, saturation and denormals.

Tolerances are stated per test. Timing of the denormal case is measured in bench/denormals.py, not here.
"""
import numpy as np
import pytest

import fastrnn
import fastrnn.nn as frnn
from fastrnn.kernels import available_backends

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
COMPILED = [b for b in available_backends() if b != "reference"]


def make(cell, backend, dtype, **kwargs):
    if cell.startswith("rnn_"):
        return frnn.RNN(3, 6, nonlinearity=cell[4:], dtype=dtype, backend=backend, random_state=0, **kwargs)
    return {"lstm": frnn.LSTM, "gru": frnn.GRU}[cell](3, 6, dtype=dtype, backend=backend, random_state=0, **kwargs)


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn_tanh", "rnn_relu"])
def test_ten_thousand_steps_forward_and_backward(backend, cell):
    """T = 10^4: outputs and every gradient finite and equal to the reference (float64, 1e-9 relative)."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 10_000, 3))
    results = []
    for b in (backend, "reference"):
        layer = make(cell, b, np.float64)
        output = layer.forward(x)[0]
        grad_x = layer.backward(np.ones_like(output))
        results.append((output, grad_x, layer.grads))
    (out, gx, grads), (ref_out, ref_gx, ref_grads) = results
    for got, want in [(out, ref_out), (gx, ref_gx)] + [(grads[k], ref_grads[k]) for k in ref_grads]:
        assert np.all(np.isfinite(got))
        assert np.max(np.abs(got - want)) <= 1e-9 * max(1.0, np.max(np.abs(want)))


def test_float32_training_tracks_float64():
    """Same data, same seed: the float32 model's loss curve and predictions follow float64's
    (loss within 1% at every epoch, predictions within 1e-2 of the target scale)."""
    rng = np.random.default_rng(0)
    series = np.sin(np.arange(400) * 0.2) + 0.1 * rng.standard_normal(400)
    X, y = fastrnn.make_windows(series, 12)
    models = {dtype: fastrnn.LSTMRegressor(hidden_size=16, max_epochs=15, random_state=0, dtype=dtype,
                                           shuffle=False).fit(X, y) for dtype in ("float32", "float64")}
    loss32, loss64 = np.array(models["float32"].loss_curve_), np.array(models["float64"].loss_curve_)
    assert len(loss32) == len(loss64)
    assert np.all(np.abs(loss32 - loss64) <= 0.01 * loss64)
    assert np.max(np.abs(models["float32"].predict(X) - models["float64"].predict(X))) <= 1e-2 * np.std(y)


@pytest.mark.parametrize("backend", COMPILED)
def test_underflowing_activations_stay_finite_and_the_callers_fp_state_is_kept(backend):
    """Weights and inputs ~1e-20, biases ~1e-40: states in float32's denormal range (or flushed to 0,
    as the Cython kernels do). Results finite and tiny; afterwards this thread still computes
    denormals (a kernel that flushes them restores the floating-point state it found)."""
    layer = frnn.LSTM(3, 6, dtype=np.float32, backend=backend, random_state=0)
    layer.load_state_dict({k: (v * (1e-40 if k.startswith("bias") else 1e-20)).astype(np.float32)
                           for k, v in layer.state_dict().items()})
    x = (np.random.default_rng(0).standard_normal((4, 20, 3)) * 1e-20).astype(np.float32)
    output = layer.forward(x)[0]
    grad_x = layer.backward(np.full_like(output, 1e-30))
    assert np.all(np.isfinite(output)) and np.all(np.abs(output) < 1e-37)
    assert np.all(np.isfinite(grad_x))
    tiny = np.array([1e-39], dtype=np.float32)
    assert (tiny * np.float32(0.5))[0] != 0.0, "the caller's thread now flushes denormals"


def test_the_float32_tanh_of_the_numba_kernels_is_within_6e_7_and_never_past_one():
    """The rational tanh every float32 Numba kernel uses (sigmoid included, as 0.5 tanh(x/2) + 0.5), on
    every 2e-5 step of [-20, 20]: at most 6e-7 from tanh (float64), odd, and within [-1, 1], so a
    sigmoid never leaves [0, 1]."""
    pytest.importorskip("numba")
    from numba import njit

    from fastrnn.kernels._numba.activations import tanh

    @njit
    def each_tanh(x):
        out = np.empty_like(x)
        for i in range(x.size):
            out[i] = tanh(x[i])
        return out

    half = np.linspace(0, 20, 1_000_001).astype(np.float32)
    x = np.concatenate([-half[:0:-1], half])
    y = each_tanh(x)
    assert y.dtype == np.float32
    assert np.abs(y - np.tanh(x.astype(np.float64))).max() <= 6e-7
    assert np.abs(y).max() <= 1 and np.array_equal(y, -y[::-1])
    assert y[0] == -1 and y[-1] == 1  # saturates exactly
