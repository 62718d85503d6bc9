"""Models leave fastrnn unchanged: ONNX (run by ONNX Runtime), skl2onnx, and a PyTorch round trip.

Tolerances: the error measure is max|actual - expected| / max(max|expected|, 1) (values are O(1)).
ONNX Runtime runs float32 recurrent operators only: exported float32 graphs must agree with
fastrnn's float32 answers to 1e-5. The PyTorch round trip is checked in float64 to 1e-9.
"""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fastrnn
import fastrnn.nn as frnn
from fastrnn.export import from_torch, register_skl2onnx, to_onnx, to_torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

ONNX_TOL = 1e-5
TORCH_TOL = 1e-9
CELLS = ("lstm", "gru", "rnn_tanh", "rnn_relu")


def error(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    scale = max(float(np.max(np.abs(expected))), 1.0)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected))) / scale


def make_layer(cell, input_size, hidden_size, dtype=np.float32, **kwargs):
    if cell.startswith("rnn_"):
        return frnn.RNN(input_size, hidden_size, nonlinearity=cell[4:], dtype=dtype, **kwargs)
    return {"lstm": frnn.LSTM, "gru": frnn.GRU}[cell](input_size, hidden_size, dtype=dtype, **kwargs)


def session(proto):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(proto.SerializeToString(), options, providers=["CPUExecutionProvider"])


def run(proto, **feeds):
    sess = session(proto)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feeds)))


# ------------------------------------------------------------------ layers -> ONNX Runtime
@settings(max_examples=40)
@given(cell=st.sampled_from(CELLS), num_layers=st.integers(1, 3), bidirectional=st.booleans(),
       input_size=st.integers(1, 6), hidden_size=st.integers(1, 9), batch=st.integers(1, 6),
       steps=st.integers(1, 9), ragged=st.booleans(), with_state=st.booleans(), seed=st.integers(0, 2 ** 16))
def test_layer_export_matches_fastrnn_in_onnxruntime(cell, num_layers, bidirectional, input_size, hidden_size,
                                                     batch, steps, ragged, with_state, seed):
    rng = np.random.default_rng(seed)
    layer = make_layer(cell, input_size, hidden_size, num_layers=num_layers, bidirectional=bidirectional,
                       random_state=seed).eval()
    x = rng.standard_normal((batch, steps, input_size)).astype(np.float32)
    lengths = rng.integers(1, steps + 1, size=batch) if ragged else np.full(batch, steps)
    state_shape = (num_layers * layer.num_directions, batch, hidden_size)
    h0 = rng.standard_normal(state_shape).astype(np.float32) if with_state else None
    c0 = rng.standard_normal(state_shape).astype(np.float32) if with_state else None
    proto = to_onnx(layer, lengths=ragged, initial_state=with_state)
    feeds = {"input": x}
    if ragged:
        feeds["lengths"] = lengths.astype(np.int64)
    if with_state:
        feeds["h0"] = h0
        if cell == "lstm":
            feeds["c0"] = c0
    got = run(proto, **feeds)
    if cell == "lstm":
        expected = dict(zip(("output", "h_n", "c_n"), layer.forward(x, lengths, h0, c0, need_grad=False)))
    else:
        expected = dict(zip(("output", "h_n"), layer.forward(x, lengths, h0, need_grad=False)))
    assert set(got) == set(expected)
    for name, value in expected.items():
        assert got[name].shape == value.shape, name
        assert error(got[name], value) <= ONNX_TOL, name


def test_exported_graph_is_checked_dynamic_and_written(tmp_path):
    layer = frnn.GRU(3, 4, num_layers=2, bidirectional=True)
    path = tmp_path / "gru.onnx"
    proto = to_onnx(layer, path, opset=17, lengths=True)
    assert isinstance(proto, onnx.ModelProto)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", "time", 3]
    ops = {node.op_type for node in proto.graph.node}
    assert "GRU" in ops and "Scan" not in ops and "Loop" not in ops  # the standard operator, not an unrolled loop
    assert all(a.i == 1 for n in proto.graph.node if n.op_type == "GRU" for a in n.attribute
               if a.name == "linear_before_reset")
    # the same graph answers for other batch sizes and lengths
    sess = session(proto)
    for batch, steps in ((1, 1), (5, 11)):
        x = np.random.default_rng(batch).standard_normal((batch, steps, 3)).astype(np.float32)
        out = sess.run(None, {"input": x, "lengths": np.full(batch, steps, np.int64)})
        assert error(out[0], layer.forward(x, need_grad=False)[0]) <= ONNX_TOL


def test_float64_export_runs_in_the_onnx_reference_evaluator():
    from onnx.reference import ReferenceEvaluator
    layer = frnn.LSTM(2, 3, num_layers=2, dtype=np.float64)
    proto = to_onnx(layer, dtype="float64")
    x = np.random.default_rng(0).standard_normal((3, 4, 2))
    output = ReferenceEvaluator(proto).run(None, {"input": x})[0]
    assert output.dtype == np.float64
    assert error(output, layer.forward(x, need_grad=False)[0]) <= 1e-9


# ------------------------------------------------------------------ estimators -> ONNX Runtime
def _data(rng, n=48, steps=7, features=3):
    return rng.standard_normal((n, steps, features)).astype(np.float32) * 2.0 + 1.0


def _targets(X, target, output):
    """Targets of kind ``target`` learnable from ``X``: regression (1-D/2-D) or labels (int/str)."""
    signal = X[:, :, 0].sum(axis=1)
    if target == "1d":
        return signal if output == "last" else np.cumsum(X[:, :, 0], axis=1)
    if target == "2d":
        return np.stack([signal, -signal], axis=1)
    if target == "binary_str":
        return np.where(signal > np.median(signal), "yes", "no")
    bins = np.digitize(signal if output == "last" else np.cumsum(X[:, :, 0], axis=1),
                       np.quantile(signal, [0.33, 0.66]))
    return bins if target == "multi_int" else np.array(["low", "mid", "high"])[bins]


ESTIMATOR_CONFIGS = [
    ("LSTMRegressor", dict(num_layers=2, bidirectional=True), "1d", "last"),
    ("GRURegressor", dict(), "2d", "last"),
    ("RNNRegressor", dict(nonlinearity="relu"), "1d", "sequence"),
    ("LSTMClassifier", dict(), "binary_str", "last"),
    ("GRUClassifier", dict(bidirectional=True), "multi_int", "last"),
    ("RNNClassifier", dict(num_layers=2), "multi_str", "sequence"),
]


def _fitted(name, params, target, output, seed=0):
    rng = np.random.default_rng(seed)
    X = _data(rng)
    y = _targets(X, target, output)
    estimator = getattr(fastrnn, name)(hidden_size=6, max_epochs=3, random_state=seed, output=output, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, y)
    return estimator, X


@pytest.mark.parametrize("name,params,target,output", ESTIMATOR_CONFIGS)
def test_estimator_export_matches_predict(name, params, target, output):
    estimator, X = _fitted(name, params, target, output)
    rng = np.random.default_rng(1)
    lengths = rng.integers(1, X.shape[1] + 1, size=X.shape[0])
    lengths[0] = X.shape[1]
    ragged = [x[:n] for x, n in zip(X, lengths)]
    for with_lengths in (False, True):
        proto = to_onnx(estimator, lengths=with_lengths)
        feeds = {"X": X}
        if with_lengths:
            padded = X.copy()
            padded[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = 123.0  # padding must not matter
            feeds = {"X": padded, "lengths": lengths.astype(np.int64)}
        got = run(proto, **feeds)
        sequences = ragged if with_lengths else X
        if hasattr(estimator, "classes_"):
            expected_proba, expected_label = estimator.predict_proba(sequences), estimator.predict(sequences)
            if output == "sequence" and with_lengths:
                for i, n in enumerate(lengths):
                    assert error(got["probabilities"][i, :n], expected_proba[i]) <= ONNX_TOL
                    assert np.array_equal(got["label"][i, :n], expected_label[i])
                continue
            assert error(got["probabilities"], expected_proba) <= ONNX_TOL
            assert np.array_equal(estimator.classes_[got["label_index"]], expected_label)
            assert np.array_equal(got["label"], expected_label)
        else:
            expected = estimator.predict(sequences)
            if output == "sequence" and with_lengths:
                for i, n in enumerate(lengths):
                    assert error(got["predictions"][i, :n], expected[i]) <= ONNX_TOL
                continue
            assert got["predictions"].shape == expected.shape
            assert error(got["predictions"], expected) <= ONNX_TOL


def test_export_errors_are_clear():
    with pytest.raises(TypeError, match="fastrnn.nn.LSTM/GRU/RNN layers and fitted fastrnn estimators"):
        to_onnx(object())
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError, match="not fitted"):
        to_onnx(fastrnn.LSTMRegressor())
    with pytest.raises(ValueError, match="opset"):
        to_onnx(frnn.LSTM(1, 2), opset=9)
    with pytest.raises(ValueError, match="dtype"):
        to_onnx(frnn.LSTM(1, 2), dtype="float16")
    estimator, _ = _fitted("GRURegressor", {}, "1d", "last")
    with pytest.raises(ValueError, match="initial_state"):
        to_onnx(estimator, initial_state=True)


def test_missing_optional_packages_name_what_to_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["onnx"] = None
        sys.modules["torch"] = None
        sys.modules["skl2onnx"] = None
        import fastrnn.nn as frnn
        from fastrnn.export import to_onnx, to_torch, register_skl2onnx
        for call in (lambda: to_onnx(frnn.LSTM(1, 2)), lambda: to_torch(frnn.LSTM(1, 2)), register_skl2onnx):
            try:
                call()
            except ImportError as error:
                print(error)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert 'pip install "fastrnn[onnx]"' in lines[0]
    assert 'pip install "fastrnn[torch]"' in lines[1]
    assert 'pip install "fastrnn[onnx]"' in lines[2]


# ------------------------------------------------------------------ skl2onnx
skl2onnx = pytest.importorskip("skl2onnx")


@pytest.mark.parametrize("name,params,target", [(n, p, t) for n, p, t, o in ESTIMATOR_CONFIGS if o == "last"])
def test_skl2onnx_converts_fitted_estimators(name, params, target):
    register_skl2onnx()
    estimator, X = _fitted(name, params, target, "last", seed=3)
    proto = skl2onnx.to_onnx(estimator, X[:1])
    got = run(proto, X=X)
    names = list(got)
    if hasattr(estimator, "classes_"):
        labels = got[names[0]]
        assert np.array_equal(labels, estimator.predict(X))
        zipped = got[names[1]]  # skl2onnx's ZipMap: one {class: probability} per sample
        proba = np.array([[row[c] for c in estimator.classes_] for row in zipped])
        assert error(proba, estimator.predict_proba(X)) <= ONNX_TOL
        plain = run(skl2onnx.to_onnx(estimator, X[:1], options={"zipmap": False}), X=X)
        assert error(plain["probabilities"], estimator.predict_proba(X)) <= ONNX_TOL
    else:
        assert error(got[names[0]], estimator.predict(X)) <= ONNX_TOL


def test_skl2onnx_univariate_2d_input_and_any_length():
    from skl2onnx.common.data_types import FloatTensorType
    register_skl2onnx()
    rng = np.random.default_rng(4)
    X = rng.standard_normal((30, 9)).astype(np.float32)
    estimator = fastrnn.LSTMRegressor(hidden_size=5, max_epochs=2, n_iter_no_change=1, random_state=0)
    estimator.fit(X, X.sum(axis=1))
    got = run(skl2onnx.to_onnx(estimator, X[:1]), X=X)
    assert error(next(iter(got.values())), estimator.predict(X)) <= ONNX_TOL
    proto = skl2onnx.to_onnx(estimator, initial_types=[("X", FloatTensorType([None, None, 1]))])
    longer = rng.standard_normal((4, 20, 1)).astype(np.float32)
    assert error(next(iter(run(proto, X=longer).values())), estimator.predict(longer)) <= ONNX_TOL


# ------------------------------------------------------------------ PyTorch round trip
torch = pytest.importorskip("torch")


@settings(max_examples=30)
@given(cell=st.sampled_from(CELLS), num_layers=st.integers(1, 3), bidirectional=st.booleans(),
       input_size=st.integers(1, 5), hidden_size=st.integers(1, 7), batch=st.integers(1, 5),
       steps=st.integers(1, 8), seed=st.integers(0, 2 ** 16))
def test_torch_round_trip(cell, num_layers, bidirectional, input_size, hidden_size, batch, steps, seed):
    layer = make_layer(cell, input_size, hidden_size, dtype=np.float64, num_layers=num_layers,
                       bidirectional=bidirectional, random_state=seed)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, steps, input_size))
    h0 = rng.standard_normal((num_layers * layer.num_directions, batch, hidden_size))
    module = to_torch(layer)
    assert isinstance(module, TORCH_TYPES[cell]) and module.batch_first and not module.training
    with torch.no_grad():
        state = (torch.tensor(h0), torch.tensor(h0 * 0.5)) if cell == "lstm" else torch.tensor(h0)
        out, final = module(torch.tensor(x), state)
    ours = layer.forward(x, None, h0, h0 * 0.5, need_grad=False) if cell == "lstm" else \
        layer.forward(x, None, h0, need_grad=False)
    assert error(out.numpy(), ours[0]) <= TORCH_TOL
    finals = final if cell == "lstm" else (final,)
    for theirs, mine in zip(finals, ours[1:]):
        assert error(theirs.numpy(), mine) <= TORCH_TOL
    back = from_torch(module)
    assert type(back) is type(layer) and back.dtype == np.float64 and back.cell == layer.cell
    for name, value in layer.params.items():
        assert np.array_equal(back.params[name], value), name
    assert error(back.forward(x, need_grad=False)[0], layer.forward(x, need_grad=False)[0]) == 0.0


TORCH_TYPES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN}


@pytest.mark.parametrize("module_factory", [
    lambda: torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, dropout=0.25),
    lambda: torch.nn.GRU(3, 4, batch_first=False),
    lambda: torch.nn.RNN(3, 4, nonlinearity="relu", num_layers=3, dtype=torch.float64),
    lambda: torch.nn.LSTM(3, 4, bias=False, dtype=torch.float64),
])
def test_from_torch_reproduces_the_module(module_factory):
    torch.manual_seed(0)
    module = module_factory().eval()
    layer = from_torch(module).eval()
    assert layer.dropout == module.dropout and layer.num_layers == module.num_layers
    x = np.random.default_rng(0).standard_normal((2, 5, 3))
    dtype = np.float64 if module.weight_ih_l0.dtype == torch.float64 else np.float32
    xt = torch.tensor(x, dtype=module.weight_ih_l0.dtype)
    with torch.no_grad():
        expected = module(xt if module.batch_first else xt.transpose(0, 1))[0]
    expected = expected.numpy() if module.batch_first else expected.transpose(0, 1).numpy()
    got = layer.forward(x.astype(dtype), need_grad=False)[0]
    assert error(got, expected) <= (TORCH_TOL if dtype == np.float64 else 1e-5)


def test_from_torch_refuses_what_fastrnn_lacks():
    with pytest.raises(ValueError, match="proj_size"):
        from_torch(torch.nn.LSTM(3, 4, proj_size=2))
    with pytest.raises(ValueError, match="float32 or float64"):
        from_torch(torch.nn.GRU(3, 4).half())
    with pytest.raises(TypeError, match="LSTMCell"):
        from_torch(torch.nn.LSTMCell(3, 4))


@pytest.mark.parametrize("name,params,target,output", ESTIMATOR_CONFIGS)
def test_estimator_to_torch_matches_predict(name, params, target, output):
    estimator, X = _fitted(name, params, target, output)
    estimator.set_params(dtype="float64")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator.fit(X, _targets(X, target, output))
    module = to_torch(estimator)
    X64 = X.astype(np.float64)
    lengths = np.random.default_rng(2).integers(1, X.shape[1] + 1, size=X.shape[0])
    lengths[0] = X.shape[1]
    with torch.no_grad():
        full = module(torch.tensor(X64)).numpy()
        packed = module(torch.tensor(X64), torch.tensor(lengths)).numpy()
    answer = estimator.predict_proba if hasattr(estimator, "classes_") else estimator.predict
    assert error(full, answer(X64)) <= TORCH_TOL
    ragged_answer = answer([x[:n] for x, n in zip(X64, lengths)])
    if output == "sequence":
        for i, n in enumerate(lengths):
            assert error(packed[i, :n], ragged_answer[i]) <= TORCH_TOL
    else:
        assert error(packed, ragged_answer) <= TORCH_TOL
