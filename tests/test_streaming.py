"""Stateful inference: a long series predicted chunk by chunk, carrying the state, gives the answers of
predicting it whole — for the layers' ``step`` and the estimators' ``predict(X, state, return_state)``.

Tolerances: the chunked computation runs the same steps in the same order, so answers agree to
1e-6 (float32) and 1e-12 (float64) relative to max(|answer|, 1).
"""
import warnings

import numpy as np
import pytest

import fastrnn
import fastrnn.estimators._base as base
import fastrnn.nn as frnn

TOL = {"float32": 1e-6, "float64": 1e-12}


def error(actual, expected):
    expected = np.asarray(expected, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(actual, dtype=np.float64) - expected))) / max(np.abs(expected).max(), 1.0)


def fitted(kind, cell, output, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((24, 12, 2))
    if kind == "Regressor":
        y = np.cumsum(X[..., 0], axis=1) if output == "sequence" else X[..., 0].sum(axis=1)
    else:
        signal = np.cumsum(X[..., 0], axis=1) if output == "sequence" else X[..., 0].sum(axis=1)
        y = np.digitize(signal, [-1.0, 1.0])
    estimator = getattr(fastrnn, f"{cell}{kind}")(hidden_size=7, num_layers=2, max_epochs=2, output=output,
                                                   dtype=dtype, random_state=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator.fit(X, y)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("output", ["last", "sequence"])
@pytest.mark.parametrize("kind", ["Regressor", "Classifier"])
@pytest.mark.parametrize("cell", ["LSTM", "GRU", "RNN"])
def test_chunked_prediction_equals_whole(cell, kind, output, dtype):
    estimator = fitted(kind, cell, output, dtype)
    answer = estimator.predict if kind == "Regressor" else estimator.predict_proba
    series = np.random.default_rng(1).standard_normal((5, 61, 2))
    whole = answer(series)
    state, pieces = None, []
    for start, stop in ((0, 1), (1, 18), (18, 40), (40, 61)):
        piece, state = answer(series[:, start:stop], state=state, return_state=True)
        pieces.append(piece)
    chunked = np.concatenate(pieces, axis=1) if output == "sequence" else pieces[-1]
    assert chunked.shape == whole.shape
    assert error(chunked, whole) <= TOL[dtype]
    if kind == "Classifier":
        head, state = estimator.predict(series[:, :18], return_state=True)
        tail = estimator.predict(series[:, 18:], state=state)
        whole_labels = estimator.predict(series)
        assert np.array_equal(np.concatenate([head, tail], axis=1) if output == "sequence" else tail, whole_labels)


def test_state_is_each_sequence_own_final_state_for_ragged_chunks():
    estimator = fitted("Regressor", "LSTM", "last", "float64")
    rng = np.random.default_rng(2)
    first = [rng.standard_normal((n, 2)) for n in (3, 9, 5)]
    second = [rng.standard_normal((n, 2)) for n in (4, 2, 7)]
    _, state = estimator.predict(first, return_state=True)
    continued = estimator.predict(second, state=state)
    whole = estimator.predict([np.concatenate([a, b]) for a, b in zip(first, second)])
    assert error(continued, whole) <= TOL["float64"]


def test_state_across_prediction_batches(monkeypatch):
    monkeypatch.setattr(base, "PREDICT_BATCH_SIZE", 4)  # 11 sequences: three batches
    estimator = fitted("Regressor", "GRU", "sequence", "float64")
    series = np.random.default_rng(3).standard_normal((11, 20, 2))
    head, state = estimator.predict(series[:, :8], return_state=True)
    assert state.shape == (2, 11, 7)
    tail = estimator.predict(series[:, 8:], state=state)
    assert error(np.concatenate([head, tail], axis=1), estimator.predict(series)) <= TOL["float64"]


def test_bad_states_are_refused_clearly():
    lstm = fitted("Regressor", "LSTM", "last", "float32")
    X = np.zeros((3, 4, 2))
    h = np.zeros((2, 3, 7))
    with pytest.raises(ValueError, match=r"pair \(h, c\)"):
        lstm.predict(X, state=h)
    with pytest.raises(ValueError, match="shape"):
        lstm.predict(X, state=(h, np.zeros((2, 4, 7))))
    with pytest.raises(ValueError, match="NaN"):
        lstm.predict(X, state=(h, np.full_like(h, np.nan)))
    with pytest.raises(TypeError, match="real numbers"):
        lstm.predict(X, state=(h, h.astype(str)))
    gru = fitted("Regressor", "GRU", "last", "float32")
    with pytest.raises(ValueError, match="shape"):
        gru.predict(X, state=np.zeros((1, 3, 7)))
    bidirectional = fastrnn.GRURegressor(hidden_size=3, max_epochs=1, bidirectional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bidirectional.fit(X + np.arange(4)[None, :, None], np.arange(3.0))
    with pytest.raises(ValueError, match="unidirectional"):
        bidirectional.predict(X, return_state=True)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("make", [frnn.LSTM, frnn.GRU, frnn.RNN,
                                  lambda *a, **k: frnn.RNN(*a, nonlinearity="relu", **k)])
def test_layer_step_by_step_equals_forward(make, dtype):
    layer = make(3, 5, num_layers=2, dtype=dtype, random_state=0).eval()
    x = np.random.default_rng(4).standard_normal((2, 30, 3)).astype(dtype)
    whole = layer.forward(x, need_grad=False)
    state, outputs = None, []
    for t in range(x.shape[1]):
        y_t, state = layer.step(x[:, t], state)
        outputs.append(y_t)
    tol = TOL[np.dtype(dtype).name]
    assert error(np.stack(outputs, axis=1), whole[0]) <= tol
    finals = state if isinstance(state, tuple) else (state,)
    for mine, expected in zip(finals, whole[1:]):
        assert error(mine, expected) <= tol
