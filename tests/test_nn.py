"""The layer stacks against PyTorch, against float64 finite differences, and against bad input.

Tolerances: the error measure is the norm-wise relative error max|actual - expected| / max|expected|
(expected from PyTorch in float64). float64 layers must agree to 1e-9, float32 layers to 1e-4.
For float32 the scale is at least 1: a float32 gradient that is a sum of O(1) terms cancelling to
1e-3 carries only the terms' absolute accuracy, so below unit magnitude the 1e-4 bound is absolute.
"""
import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastrnn.nn as frnn
from fastrnn.kernels import available_backends

torch = pytest.importorskip("torch")
from torch_oracle import torch_run, torch_twin  # noqa: E402

RTOL = {np.float64: 1e-9, np.float32: 1e-4}
BACKENDS = available_backends()
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


def relative_error(actual, expected, floor=1e-30):
    scale = max(float(np.max(np.abs(expected))), floor)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected))) / scale


def make_layer(cell, input_size, hidden_size, dtype=np.float64, backend="reference", **kwargs):
    if cell.startswith("rnn_"):
        return frnn.RNN(input_size, hidden_size, nonlinearity=cell[4:], dtype=dtype, backend=backend, **kwargs)
    return {"lstm": frnn.LSTM, "gru": frnn.GRU}[cell](input_size, hidden_size, dtype=dtype, backend=backend,
                                                        **kwargs)


def run_layer(layer, x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n):
    lstm = layer.cell == "lstm"
    if lstm:
        output, h_n, c_n = layer.forward(x, lengths, h0, c0)
        grad_x = layer.backward(grad_output, grad_h_n, grad_c_n)
    else:
        output, h_n = layer.forward(x, lengths, h0)
        c_n = None
        grad_x = layer.backward(grad_output, grad_h_n)
    return dict(output=output, h_n=h_n, c_n=c_n, grad_x=grad_x, grad_h0=layer.grad_h0,
                grad_c0=layer.grad_c0 if lstm else None, grads=layer.grads)


def random_problem(rng, layer, batch, steps, ragged, with_state):
    D, L, H = layer.num_directions, layer.num_layers, layer.hidden_size
    x = rng.standard_normal((batch, steps, layer.input_size)).astype(layer.dtype)
    lengths = rng.integers(1, steps + 1, size=batch) if ragged else np.full(batch, steps)
    lengths[0] = steps  # padded length is the longest sequence, as pad_packed_sequence returns it
    state = lambda: rng.standard_normal((L * D, batch, H)).astype(layer.dtype) if with_state else None
    h0, c0 = state(), state()
    grad_output = rng.standard_normal((batch, steps, D * H))
    grad_output[np.arange(steps)[None, :] >= lengths[:, None]] = 0.0  # torch pads with zeros there
    grad_h_n = rng.standard_normal((L * D, batch, H))
    grad_c_n = rng.standard_normal((L * D, batch, H))
    return x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n


def compare_with_torch(layer, problem):
    x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n = problem
    ours = run_layer(layer, x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n)
    shape = (layer.num_layers * layer.num_directions, x.shape[0], layer.hidden_size)
    zeros = np.zeros(shape)
    theirs = torch_run(torch_twin(layer), x.astype(np.float64), lengths,
                       zeros if h0 is None else h0.astype(np.float64),
                       zeros if c0 is None else c0.astype(np.float64),
                       grad_output, grad_h_n, grad_c_n)
    floor = 1.0 if layer.dtype == np.float32 else 1e-30
    errors = {key: relative_error(ours[key], theirs[key], floor)
              for key in ("output", "h_n", "c_n", "grad_x", "grad_h0", "grad_c0") if theirs[key] is not None}
    errors.update({f"grad {name}": relative_error(ours["grads"][name], theirs["grads"][name], floor)
                   for name in theirs["grads"]})
    return errors


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@settings(max_examples=25)
@given(cell=st.sampled_from(CELLS), num_layers=st.integers(1, 3), bidirectional=st.booleans(),
       batch=st.integers(1, 17), steps=st.integers(1, 40), input_size=st.integers(1, 6),
       hidden_size=st.integers(1, 9), ragged=st.booleans(), with_state=st.booleans(),
       seed=st.integers(0, 2 ** 31))
def test_matches_pytorch(backend, dtype, cell, num_layers, bidirectional, batch, steps, input_size,
                         hidden_size, ragged, with_state, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(cell, input_size, hidden_size, dtype, backend, num_layers=num_layers,
                       bidirectional=bidirectional, random_state=seed)
    errors = compare_with_torch(layer, random_problem(rng, layer, batch, steps, ragged, with_state))
    worst = max(errors, key=errors.get)
    assert errors[worst] <= RTOL[dtype], f"{worst}: relative error {errors[worst]:.3g} > {RTOL[dtype]}"


@pytest.mark.parametrize("cell", ("lstm", "gru"))
def test_swapped_gates_are_caught(cell):
    """The parity check has teeth: exchanging two gate blocks of one weight breaks it."""
    rng = np.random.default_rng(0)
    layer = make_layer(cell, 3, 5, bidirectional=True, num_layers=2)
    problem = random_problem(rng, layer, 4, 6, ragged=True, with_state=True)
    assert max(compare_with_torch(layer, problem).values()) <= RTOL[np.float64]
    twin = torch_twin(layer)
    H = layer.hidden_size
    weight = layer.params["weight_hh_l1_reverse"]
    weight[:2 * H] = np.concatenate([weight[H:2 * H], weight[:H]])  # swap the first two gates
    ours = run_layer(layer, *problem)
    x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n = problem
    theirs = torch_run(twin, x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n)
    assert relative_error(ours["output"], theirs["output"]) > 1e-3


# ------------------------------------------------------------------ finite differences (no PyTorch)
def scalar_loss(layer, x, lengths, h0, c0, weights_out):
    """A scalar that touches every output: sum of outputs and final states times fixed weights."""
    result = layer.forward(x, lengths, h0, c0) if layer.cell == "lstm" else layer.forward(x, lengths, h0)
    return sum(float(np.sum(r * w)) for r, w in zip(result, weights_out))


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_gradients_match_finite_differences(backend, cell):
    rng = np.random.default_rng(1)
    layer = make_layer(cell, 3, 4, np.float64, backend, num_layers=2, bidirectional=True, random_state=2)
    x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n = random_problem(rng, layer, 3, 5, True, True)
    lstm = cell == "lstm"
    weights_out = (grad_output, grad_h_n, grad_c_n) if lstm else (grad_output, grad_h_n)
    analytic = run_layer(layer, x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n)
    loss = lambda: scalar_loss(layer, x, lengths, h0, c0 if lstm else None, weights_out)
    eps = 1e-6

    def numeric(array, index):
        saved = array[index]
        array[index] = saved + eps
        up = loss()
        array[index] = saved - eps
        down = loss()
        array[index] = saved
        return (up - down) / (2 * eps)

    checks = [(x, analytic["grad_x"]), (h0, analytic["grad_h0"])]
    if lstm:
        checks.append((c0, analytic["grad_c0"]))
    checks += [(layer.params[name], analytic["grads"][name]) for name in layer.params]
    for array, grad in checks:
        for flat in rng.choice(array.size, size=min(array.size, 6), replace=False):
            index = np.unravel_index(flat, array.shape)
            assert numeric(array, index) == pytest.approx(grad[index], rel=1e-6, abs=1e-8)


# ------------------------------------------------------------------ backends agree with the reference
@pytest.mark.parametrize("backend", [b for b in BACKENDS if b != "reference"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cell", CELLS)
def test_backend_matches_reference_layer(backend, dtype, cell):
    rng = np.random.default_rng(3)
    fast = make_layer(cell, 5, 7, dtype, backend, num_layers=2, bidirectional=True, random_state=4)
    slow = make_layer(cell, 5, 7, dtype, "reference", num_layers=2, bidirectional=True, random_state=4)
    problem = random_problem(rng, fast, 9, 13, ragged=True, with_state=True)
    a, b = run_layer(fast, *problem), run_layer(slow, *problem)
    for key in ("output", "h_n", "c_n", "grad_x", "grad_h0", "grad_c0"):
        if b[key] is not None:
            assert relative_error(a[key], b[key]) <= RTOL[dtype], key
    for name in b["grads"]:
        assert relative_error(a["grads"][name], b["grads"][name]) <= RTOL[dtype], name


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("cell", CELLS)
def test_backward_without_input_gradient_gives_the_same_weight_gradients(backend, cell):
    """``need_input_grad=False`` (inputs that are data) returns None and changes no other gradient:
    only the bottom layer's product with ``W_ih`` is skipped, the layers above still get theirs."""
    rng = np.random.default_rng(5)
    layer = make_layer(cell, 5, 16, np.float32, backend, num_layers=2, bidirectional=True, random_state=1)
    x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n = random_problem(rng, layer, 6, 9, ragged=True,
                                                                        with_state=True)
    lstm = layer.cell == "lstm"
    results = []
    for need_input_grad in (True, False):
        layer.forward(x, lengths, h0, c0) if lstm else layer.forward(x, lengths, h0)
        extra = (grad_c_n,) if lstm else ()
        grad_x = layer.backward(grad_output, grad_h_n, *extra, need_input_grad=need_input_grad)
        results.append((grad_x, {k: v.copy() for k, v in layer.grads.items()}, layer.grad_h0.copy()))
    (grad_x, grads, grad_h0), (no_grad_x, grads_without, grad_h0_without) = results
    assert grad_x.shape == x.shape and no_grad_x is None
    assert grads.keys() == grads_without.keys()
    for name in grads:
        np.testing.assert_array_equal(grads_without[name], grads[name], err_msg=name)
    np.testing.assert_array_equal(grad_h0_without, grad_h0)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("bidirectional", (False, True), ids=("uni", "bi"))
@pytest.mark.parametrize("cell", ("lstm", "gru", "rnn_tanh"))
def test_backward_reads_grad_output_of_any_memory_layout(backend, cell, bidirectional):
    """The kernels read the gradient at the outputs batch-first, straight from the caller's array; one
    laid out otherwise in memory (time-major, or every other element) gives exactly the same gradients."""
    rng = np.random.default_rng(11)
    layer = make_layer(cell, 5, 16, np.float32, backend, num_layers=2, bidirectional=bidirectional, random_state=2)
    x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n = random_problem(rng, layer, 6, 9, ragged=True,
                                                                        with_state=False)
    grad_output = grad_output.astype(np.float32)
    time_major_memory = np.ascontiguousarray(grad_output.transpose(1, 0, 2)).transpose(1, 0, 2)
    strided = np.repeat(grad_output, 2, axis=2)[:, :, ::2]
    results = []
    for grad in (grad_output, time_major_memory, strided):
        layer.forward(x, lengths)
        grad_x = layer.backward(grad)
        results.append((grad_x, {k: v.copy() for k, v in layer.grads.items()}))
    for grad_x, grads in results[1:]:
        np.testing.assert_array_equal(grad_x, results[0][0])
        for name in grads:
            np.testing.assert_array_equal(grads[name], results[0][1][name], err_msg=name)


def test_reverse_within_lengths_reverses_each_row_into_batch_first_memory():
    from fastrnn.nn.rnn import reverse_within_lengths

    seq = np.arange(4 * 3 * 2, dtype=np.float32).reshape(4, 3, 2)  # (T, B, F)
    lengths = np.array([4, 2, 1])
    reversed_seq = reverse_within_lengths(seq, lengths)
    for b, length in enumerate(lengths):
        np.testing.assert_array_equal(reversed_seq[:length, b], seq[:length, b][::-1])
        np.testing.assert_array_equal(reversed_seq[length:, b], seq[length:, b])  # padding untouched
    assert reversed_seq.transpose(1, 0, 2).flags.c_contiguous  # what the compiled kernels read without a copy
    np.testing.assert_array_equal(reverse_within_lengths(reversed_seq, lengths), seq)


# ------------------------------------------------------------------ state dicts, dropout, modes
def test_state_dict_round_trip_with_pytorch():
    layer = frnn.LSTM(4, 6, num_layers=2, bidirectional=True, dtype=np.float64, random_state=0)
    module = torch_twin(layer)
    assert list(module.state_dict()) == list(layer.state_dict())
    other = frnn.LSTM(4, 6, num_layers=2, bidirectional=True, dtype=np.float64, random_state=1)
    other.load_state_dict(module.state_dict())
    for name, value in layer.state_dict().items():
        np.testing.assert_array_equal(other.params[name], value)


def test_load_state_dict_rejects_bad_input_without_changing_anything():
    layer = frnn.GRU(3, 4, random_state=0)
    before = layer.state_dict()
    bad = layer.state_dict()
    bad["weight_hh_l0"] = np.zeros((5, 5))
    with pytest.raises(ValueError, match="weight_hh_l0"):
        layer.load_state_dict(bad)
    with pytest.raises(KeyError, match="missing"):
        layer.load_state_dict({"weight_ih_l0": before["weight_ih_l0"]})
    for name, value in before.items():
        np.testing.assert_array_equal(layer.params[name], value)


def test_dropout_is_seeded_and_training_only():
    x = np.random.default_rng(0).standard_normal((4, 6, 3))
    make = lambda: frnn.GRU(3, 5, num_layers=3, dropout=0.5, dtype=np.float64, random_state=7)
    a, b = make(), make()
    out_a, out_b = a.forward(x)[0], b.forward(x)[0]
    np.testing.assert_array_equal(out_a, out_b)
    eval_out = a.eval().forward(x)[0]
    assert not np.allclose(eval_out, out_a)
    np.testing.assert_array_equal(eval_out, a.forward(x)[0])


@pytest.mark.parametrize("backend", BACKENDS)
def test_dropout_gradient_matches_finite_differences(backend):
    layer = frnn.LSTM(2, 3, num_layers=2, dropout=0.3, dtype=np.float64, backend=backend, random_state=0)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((2, 4, 2))
    weight = rng.standard_normal((2, 4, 3))

    def loss():
        layer._rng = np.random.default_rng(11)  # the same dropout masks on every call
        return float(np.sum(layer.forward(x)[0] * weight))

    loss()
    grad_x = layer.backward(weight)
    eps = 1e-6
    for index in [(0, 0, 0), (1, 3, 1), (0, 2, 1)]:
        saved = x[index]
        x[index] = saved + eps
        up = loss()
        x[index] = saved - eps
        down = loss()
        x[index] = saved
        assert (up - down) / (2 * eps) == pytest.approx(grad_x[index], rel=1e-6, abs=1e-9)


def test_outputs_past_length_are_zero_and_states_taken_at_each_end():
    layer = frnn.RNN(2, 3, bidirectional=True, dtype=np.float64, random_state=0)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 5, 2))
    output, h_n = layer.forward(x, lengths=[5, 2])
    assert np.all(output[1, 2:] == 0.0)
    short, h_short = layer.forward(x[1:, :2])
    np.testing.assert_allclose(output[1, :2], short[0], rtol=1e-12)
    np.testing.assert_allclose(h_n[:, 1], h_short[:, 0], rtol=1e-12)


def test_pickle_keeps_weights_and_drops_activations():
    layer = frnn.LSTM(3, 4, random_state=0)
    layer.forward(np.ones((2, 3, 3)))
    clone = pickle.loads(pickle.dumps(layer))
    assert clone._saved is None
    np.testing.assert_array_equal(clone.forward(np.ones((2, 3, 3)))[0], layer.forward(np.ones((2, 3, 3)))[0])


@pytest.mark.parametrize("x, error, match", [
    (np.ones((2, 3)), ValueError, "3-D"),
    (np.ones((2, 3, 4)), ValueError, "features"),
    (np.full((1, 2, 3), np.nan), ValueError, "NaN"),
    (np.zeros((0, 2, 3)), ValueError, "at least one"),
    (np.zeros((2, 0, 3)), ValueError, "at least one"),
    (np.array([[["a", "b", "c"]]]), TypeError, "real numbers"),
])
def test_bad_input_is_refused(x, error, match):
    with pytest.raises(error, match=match):
        frnn.LSTM(3, 4).forward(x)


def test_bad_lengths_states_and_order_are_refused():
    layer = frnn.LSTM(3, 4)
    x = np.ones((2, 5, 3))
    with pytest.raises(ValueError, match="lengths"):
        layer.forward(x, lengths=[5])
    with pytest.raises(ValueError, match=r"\[1, 5\]"):
        layer.forward(x, lengths=[0, 5])
    with pytest.raises(ValueError, match="h0"):
        layer.forward(x, h0=np.zeros((2, 2, 4)))
    with pytest.raises(RuntimeError, match="forward"):
        frnn.GRU(3, 4).backward(np.zeros((2, 5, 4)))
    with pytest.raises(ValueError, match="nonlinearity"):
        frnn.RNN(3, 4, nonlinearity="sigmoid")
    with pytest.raises(TypeError, match="dtype"):
        frnn.GRU(3, 4, dtype=np.int32)


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("cell", CELLS)
def test_step_by_step_equals_whole_sequence(cell, dtype):
    layer = make_layer(cell, 3, 5, dtype, "auto", num_layers=2, random_state=0)
    x = np.random.default_rng(0).standard_normal((4, 7, 3)).astype(dtype)
    whole = layer.forward(x)
    state, outputs = None, []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        outputs.append(y_t)
    np.testing.assert_allclose(np.stack(outputs, axis=1), whole[0], rtol=RTOL[dtype], atol=RTOL[dtype])
    final_h = state[0] if cell == "lstm" else state
    np.testing.assert_allclose(final_h, whole[1], rtol=RTOL[dtype], atol=RTOL[dtype])
    with pytest.raises(ValueError, match="unidirectional"):
        make_layer(cell, 3, 5, bidirectional=True).step(x[:, 0])
