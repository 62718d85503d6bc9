"""The estimators as users meet them: inputs in every accepted form, scikit-learn tooling, persistence,
learning real structure, and clear errors for bad input."""
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning, NotFittedError
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

import fastrnn

QUICK = dict(hidden_size=12, max_epochs=15, random_state=0)


def sine_windows(n=400, window=20, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n + window) * 0.2
    series = np.sin(t) + 0.05 * rng.standard_normal(t.size)
    X = np.stack([series[i:i + window] for i in range(n)])
    return X, series[window:window + n]


def ragged_classification(n=90, seed=0):
    """Sequences of 5-14 steps with 2 features; the class is the sign of the first feature's mean."""
    rng = np.random.default_rng(seed)
    X = [rng.standard_normal((rng.integers(5, 15), 2)) + [0.0, 1.0] for _ in range(n)]
    y = np.array(["up" if x[:, 0].mean() > 0 else "down" for x in X])
    return X, y


# ------------------------------------------------------------------ learning real structure
def test_lstm_forecasts_a_noisy_sine():
    X, y = sine_windows()
    model = fastrnn.LSTMRegressor(hidden_size=32, max_epochs=60, random_state=0).fit(X[:300], y[:300])
    assert model.score(X[300:], y[300:]) > 0.95   # stated target: R^2 > 0.95 on held-out windows


def test_gru_classifies_ragged_sequences():
    X, y = ragged_classification(200)
    model = fastrnn.GRUClassifier(hidden_size=16, max_epochs=40, random_state=0).fit(X[:150], y[:150])
    assert model.score(X[150:], y[150:]) > 0.9    # stated target: accuracy > 0.9 on held-out sequences


def test_sequence_output_learns_a_running_sum():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((200, 12, 1))
    y = np.cumsum(X[:, :, 0], axis=1)
    model = fastrnn.GRURegressor(hidden_size=24, max_epochs=60, output="sequence", random_state=0)
    model.fit(X[:150], y[:150])
    pred = model.predict(X[150:])
    assert pred.shape == (50, 12)
    assert model.score(X[150:], y[150:]) > 0.9


def test_multi_output_and_multiclass():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((120, 8, 3))
    Y = np.stack([X[:, :, 0].mean(1), X[:, :, 1].max(1)], axis=1)
    reg = fastrnn.LSTMRegressor(**QUICK).fit(X, Y)
    assert reg.predict(X).shape == (120, 2)
    labels = np.array(["a", "b", "c"])[np.argmax(X[:, -1, :], axis=1)]
    clf = fastrnn.RNNClassifier(**QUICK).fit(X, labels)
    assert list(clf.classes_) == ["a", "b", "c"]
    proba = clf.predict_proba(X)
    assert proba.shape == (120, 3) and np.allclose(proba.sum(1), 1.0)


# ------------------------------------------------------------------ input forms
def test_ragged_predictions_do_not_depend_on_padding():
    X, y = ragged_classification()
    model = fastrnn.LSTMClassifier(**QUICK).fit(X, y)
    together = model.predict_proba(X)
    one_by_one = np.concatenate([model.predict_proba([x]) for x in X[:10]])
    np.testing.assert_allclose(together[:10], one_by_one, rtol=1e-5, atol=1e-6)


def test_two_d_arrays_and_dataframes_are_univariate_sequences():
    pd = pytest.importorskip("pandas")
    X, y = sine_windows(100)
    model = fastrnn.GRURegressor(**QUICK).fit(pd.DataFrame(X), pd.Series(y))
    assert model.n_features_in_ == 1
    np.testing.assert_array_equal(model.predict(pd.DataFrame(X)), model.predict(X))
    np.testing.assert_array_equal(model.predict(X), model.predict(X[:, :, None]))


def test_predict_in_bounded_batches_matches_one_batch(monkeypatch):
    from fastrnn.estimators import _base
    X, y = sine_windows(100)
    model = fastrnn.LSTMRegressor(**QUICK).fit(X, y)
    whole = model.predict(X)
    monkeypatch.setattr(_base, "PREDICT_BATCH_SIZE", 7)
    np.testing.assert_allclose(model.predict(X), whole, rtol=1e-5, atol=1e-6)  # float32: batch shape changes GEMM rounding


# ------------------------------------------------------------------ scikit-learn tooling
def test_pipeline_with_a_scaler():
    X, y = sine_windows(200)
    pipe = make_pipeline(StandardScaler(), fastrnn.LSTMRegressor(**QUICK)).fit(X, y)
    assert pipe.score(X, y) > 0.5


def test_grid_search_and_cross_validation_on_3d_arrays():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 6, 2))
    y = X[:, :, 0].sum(axis=1)
    search = GridSearchCV(fastrnn.GRURegressor(**QUICK), {"hidden_size": [4, 8]}, cv=2, n_jobs=2).fit(X, y)
    assert search.best_params_["hidden_size"] in (4, 8)
    assert len(cross_val_score(fastrnn.GRURegressor(**QUICK), X, y, cv=3)) == 3


def test_grid_search_and_cross_validation_on_ragged_lists():
    X, y = ragged_classification(60)
    search = GridSearchCV(fastrnn.LSTMClassifier(**QUICK), {"hidden_size": [4, 8]}, cv=2, n_jobs=2).fit(X, y)
    assert search.best_estimator_.predict(X[:3]).shape == (3,)
    scores = cross_val_score(fastrnn.LSTMClassifier(**QUICK), X, y, cv=3)
    assert scores.shape == (3,) and np.all((0 <= scores) & (scores <= 1))


def test_clone_and_same_random_state_give_identical_models():
    X, y = sine_windows(100)
    a = fastrnn.LSTMRegressor(**QUICK).fit(X, y)
    b = clone(a).fit(X, y)
    for name, value in a.model_.params.items():
        np.testing.assert_array_equal(value, b.model_.params[name])
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    c = fastrnn.LSTMRegressor(**dict(QUICK, random_state=1)).fit(X, y)
    assert not np.array_equal(a.predict(X), c.predict(X))


@pytest.mark.parametrize("dump", ["pickle", "joblib"])
def test_persisted_model_predicts_bit_identically_in_a_new_process(tmp_path, dump):
    X, y = ragged_classification(40)
    model = fastrnn.GRUClassifier(**QUICK).fit(X, y)
    path = tmp_path / "model.bin"
    np.save(tmp_path / "X.npy", np.array(X, dtype=object), allow_pickle=True)
    np.save(tmp_path / "expected.npy", model.predict_proba(X))
    if dump == "pickle":
        path.write_bytes(pickle.dumps(model))
        load = "import pickle; model = pickle.loads(open(sys.argv[1], 'rb').read())"
    else:
        joblib.dump(model, path)
        load = "import joblib; model = joblib.load(sys.argv[1])"
    script = (f"import sys, numpy as np; {load}\n"
              "X = list(np.load(sys.argv[2], allow_pickle=True))\n"
              "assert np.array_equal(model.predict_proba(X), np.load(sys.argv[3])), 'predictions differ'\n")
    subprocess.run([sys.executable, "-c", script, str(path), str(tmp_path / "X.npy"),
                    str(tmp_path / "expected.npy")], check=True, cwd=tmp_path)  # the installed package


# ------------------------------------------------------------------ training policy
def test_partial_fit_and_warm_start_continue_training():
    X, y = sine_windows(120)
    model = fastrnn.LSTMRegressor(**QUICK)
    for _ in range(3):
        model.partial_fit(X, y)
    assert model.n_iter_ == 3 and len(model.loss_curve_) == 3 and model.t_ == 3 * len(X)
    warm = fastrnn.LSTMRegressor(**dict(QUICK, max_epochs=3, warm_start=True))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warm.fit(X, y)
        first = warm.model_.state_dict()
        warm.fit(X, y)
    assert warm.n_iter_ == 6
    assert any(not np.array_equal(first[k], v) for k, v in warm.model_.params.items())
    clf = fastrnn.GRUClassifier(**QUICK)
    with pytest.raises(ValueError, match="classes must be passed"):
        clf.partial_fit(X, y > 0)
    clf.partial_fit(X, y > 0, classes=[False, True])
    with pytest.raises(ValueError, match="not seen"):
        clf.partial_fit(X, np.where(y > 0, 2, 0))


def test_early_stopping_records_validation_scores_and_keeps_the_best():
    X, y = sine_windows(200)
    model = fastrnn.GRURegressor(**dict(QUICK, max_epochs=40, early_stopping=True, n_iter_no_change=3)).fit(X, y)
    assert len(model.validation_scores_) == model.n_iter_
    assert model.best_validation_score_ == max(model.validation_scores_)


def test_convergence_warning_when_epochs_run_out():
    X, y = sine_windows(60)
    with pytest.warns(ConvergenceWarning, match="max_epochs=2"):
        fastrnn.RNNRegressor(**dict(QUICK, max_epochs=2)).fit(X, y)


def test_interrupted_fit_leaves_a_usable_model(monkeypatch):
    from fastrnn.estimators._base import BaseRecurrentEstimator
    X, y = sine_windows(100)
    original = BaseRecurrentEstimator._train_step
    calls = {"n": 0}

    def interrupted(self, *args):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(BaseRecurrentEstimator, "_train_step", interrupted)
    with pytest.warns(UserWarning, match="interrupted"):
        model = fastrnn.LSTMRegressor(**QUICK).fit(X, y)
    assert np.all(np.isfinite(model.predict(X)))


def test_diverging_training_warns_and_keeps_finite_weights():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((64, 20, 2))
    y = X[:, :, 0].sum(axis=1)
    model = fastrnn.RNNRegressor(nonlinearity="relu", optimizer="sgd", learning_rate=50.0, clip_grad_norm=None,
                                 max_epochs=20, random_state=0)
    with pytest.warns(ConvergenceWarning, match="diverged"):
        model.fit(X, y)
    assert all(np.all(np.isfinite(v)) for v in model.model_.params.values())
    assert all(np.isfinite(loss) for loss in model.loss_curve_)


def test_verbose_prints_a_progress_line_per_epoch(capsys):
    X, y = sine_windows(60)
    fastrnn.GRURegressor(**dict(QUICK, max_epochs=3, verbose=True, tol=-1.0)).fit(X, y)
    lines = [l for l in capsys.readouterr().err.splitlines() if l.startswith("epoch")]
    assert len(lines) == 3 and "loss" in lines[0]


def test_n_threads_and_backends_give_the_same_model():
    X, y = sine_windows(80)
    a = fastrnn.LSTMRegressor(**dict(QUICK, max_epochs=3, dtype="float64", n_threads=1)).fit(X, y)
    b = fastrnn.LSTMRegressor(**dict(QUICK, max_epochs=3, dtype="float64", backend="reference")).fit(X, y)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-8)
    a.model_.set_backend("reference")
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-8)


# ------------------------------------------------------------------ bad input
@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 5, 2))
    return fastrnn.LSTMClassifier(**QUICK).fit(X, np.where(X[:, 0, 0] > 0, "a", "b")), X


@pytest.mark.parametrize("bad, error, match", [
    (lambda X: np.where(X > 1, np.nan, X), ValueError, "NaN"),
    (lambda X: np.where(X > 1, np.inf, X), ValueError, "infinity"),
    (lambda X: X[:, :, 0, None, None], ValueError, "4-D"),
    (lambda X: X[0, 0], ValueError, "2D"),
    (lambda X: X[:, :, :1], ValueError, "1 features per time step.*fitted with 2"),
    (lambda X: [X[0], X[1][:0]], ValueError, "zero-length"),
    (lambda X: [X[0][:3], X[1][:, :1]], ValueError, "different numbers of features"),
    (lambda X: X.astype(str).astype(object) + "x", ValueError, "convert"),
    (lambda X: X[:0], ValueError, "0 sample"),
])
def test_bad_input_to_predict_is_refused_clearly(fitted, bad, error, match):
    model, X = fitted
    with pytest.raises(error, match=match):
        model.predict(bad(X))


@pytest.mark.parametrize("X", [
    np.random.default_rng(0).standard_normal((3, 4, 2)).astype(np.float32),
    np.random.default_rng(1).standard_normal((3, 4)),  # univariate, float64
    np.random.default_rng(2).standard_normal((3, 8, 2))[:, ::2],  # not contiguous
    np.full((2, 3, 1), 3e38, dtype=np.float32),  # finite, near the float32 limit
])
def test_plain_arrays_skip_check_array_with_the_same_result(X, monkeypatch):
    from fastrnn import _validation

    for dtype in (np.float32, np.float64):
        fast = _validation.check_sequences(X, dtype=dtype)
        with monkeypatch.context() as patched:
            patched.setattr(_validation, "_is_plain_finite_float_array", lambda X: False)
            full = _validation.check_sequences(X, dtype=dtype)
        for a, b in zip(fast, full):
            assert a.dtype == b.dtype and a.flags.c_contiguous
            np.testing.assert_array_equal(a, b)


def test_bad_fit_calls_are_refused_clearly(fitted):
    model, X = fitted
    with pytest.raises(NotFittedError):
        fastrnn.GRURegressor().predict(X)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        fastrnn.GRURegressor(**QUICK).fit(X, np.zeros(len(X) - 1))
    with pytest.raises(ValueError, match="only one class"):
        fastrnn.GRUClassifier(**QUICK).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        fastrnn.GRUClassifier(**QUICK).fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="NaN"):
        fastrnn.GRURegressor(**QUICK).fit(X, np.full(len(X), np.nan))
    with pytest.raises(ValueError, match="hidden_size"):
        fastrnn.GRURegressor(hidden_size=0).fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="requires y"):
        fastrnn.GRURegressor().fit(X, None)


def test_inputs_are_not_modified(fitted):
    model, X = fitted
    X_ro = X.copy()
    X_ro.setflags(write=False)
    before = X_ro.copy()
    model.predict(X_ro)
    np.testing.assert_array_equal(X_ro, before)
