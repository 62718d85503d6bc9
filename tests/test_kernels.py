"""Every compiled backend against the NumPy reference, kernel by kernel (no PyTorch needed).

Tolerance: norm-wise relative error max|fast - reference| / max|reference| <= 1e-9 in float64 and
1e-4 in float32 (float32 kernels may use a rational tanh good to a few ulp).
"""
import numpy as np
import pytest

from fastrnn.kernels import available_backends, cell_kernels

CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
GATES = {"lstm": 4, "gru": 3, "rnn_tanh": 1, "rnn_relu": 1}
RTOL = {np.float64: 1e-9, np.float32: 1e-4}
FAST_BACKENDS = [b for b in available_backends() if b != "reference"]

pytestmark = pytest.mark.skipif(not FAST_BACKENDS, reason="no compiled backend available")


def relative_error(actual, expected):
    return float(np.max(np.abs(actual - expected))) / max(float(np.max(np.abs(expected))), 1e-30)


def problem(cell, dtype, steps, batch, inputs, hidden, ragged, with_final_grads, seed=0):
    rng = np.random.default_rng(seed)
    G = GATES[cell]
    cast = lambda a: np.ascontiguousarray(a, dtype=dtype)
    weights = tuple(cast(rng.uniform(-0.6, 0.6, shape))
                    for shape in ((G * hidden, inputs), (G * hidden, hidden), (G * hidden,), (G * hidden,)))
    lengths = rng.integers(1, steps + 1, size=batch) if ragged else np.full(batch, steps)
    lengths[-1] = 1 if ragged else steps
    x = cast(rng.standard_normal((steps, batch, inputs)))
    h0 = cast(rng.standard_normal((batch, hidden)))
    c0 = cast(rng.standard_normal((batch, hidden))) if cell == "lstm" else None
    grad_out = cast(rng.standard_normal((steps, batch, hidden)))
    final = lambda: cast(rng.standard_normal((batch, hidden))) if with_final_grads else None
    grad_h_n = final()
    grad_c_n = final() if cell == "lstm" else None
    return x, lengths.astype(np.int64), weights, h0, c0, grad_out, grad_h_n, grad_c_n


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("steps, batch, inputs, hidden, ragged, with_final_grads", [
    (1, 1, 1, 1, False, False),      # the smallest problem there is
    (9, 1, 3, 5, False, True),       # a batch of one (no batch split)
    (11, 13, 4, 7, True, True),      # ragged, batch larger than the thread count, odd sizes
    (6, 5, 2, 33, True, False),      # hidden size not a multiple of any vector width
])
def test_backend_matches_reference(backend, dtype, cell, steps, batch, inputs, hidden, ragged,
                                   with_final_grads):
    x, lengths, weights, h0, c0, grad_out, grad_h_n, grad_c_n = problem(
        cell, dtype, steps, batch, inputs, hidden, ragged, with_final_grads)
    fast_forward, fast_backward = cell_kernels(cell, backend)
    ref_forward, ref_backward = cell_kernels(cell, "reference")
    fast = fast_forward(x, lengths, weights, h0, c0)
    ref = ref_forward(x, lengths, weights, h0, c0)
    for got, want in zip(fast[:3], ref[:3]):
        if want is not None:
            assert got.dtype == dtype
            assert relative_error(got, want) <= RTOL[dtype]
    fast_grads = fast_backward(weights, fast[3], grad_out, grad_h_n, grad_c_n)
    ref_grads = ref_backward(weights, ref[3], grad_out, grad_h_n, grad_c_n)
    flat = lambda g: list(g[:3]) + list(g[3])
    for got, want in zip(flat(fast_grads), flat(ref_grads)):
        if want is not None:
            assert got.dtype == dtype
            assert relative_error(got, want) <= RTOL[dtype]


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_inference_mode_gives_the_same_outputs_and_keeps_nothing(backend, cell):
    x, lengths, weights, h0, c0, *_ = problem(cell, np.float32, 8, 6, 3, 10, True, False)
    forward, _ = cell_kernels(cell, backend)
    trained = forward(x, lengths, weights, h0, c0)
    inferred = forward(x, lengths, weights, h0, c0, need_grad=False)
    assert inferred[3] is None
    for a, b in zip(trained[:3], inferred[:3]):
        if a is not None:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("backend", FAST_BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_finished_rows_output_zero_and_inputs_are_untouched(backend, cell):
    x, lengths, weights, h0, c0, grad_out, grad_h_n, grad_c_n = problem(cell, np.float64, 7, 4, 2, 6, True, True)
    copies = [a.copy() for a in (x, h0, grad_out) + weights]
    forward, backward = cell_kernels(cell, backend)
    out, *_, cache = forward(x, lengths, weights, h0, c0)
    grad_x = backward(weights, cache, grad_out, grad_h_n, grad_c_n)[0]
    finished = np.arange(7)[:, None] >= lengths[None, :]
    assert np.all(out[finished] == 0.0) and np.all(grad_x[finished] == 0.0)
    for before, after in zip(copies, (x, h0, grad_out) + weights):
        np.testing.assert_array_equal(before, after)


def test_generated_register_tiles_are_up_to_date():
    """``_tiles.py`` is generated; an edit to the generator must be followed by regenerating it."""
    import os

    from fastrnn.kernels._numba import _generate_tiles
    path = os.path.join(os.path.dirname(_generate_tiles.__file__), "_tiles.py")
    with open(path) as fh:
        assert fh.read() == _generate_tiles.source(), "run python -m fastrnn.kernels._numba._generate_tiles"
