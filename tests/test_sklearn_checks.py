"""scikit-learn's estimator checks on all six estimators.

The only checks expected to fail are those that assume ``n_features_in_ == X.shape[1]``: here a 2-D
``X`` is a batch of univariate sequences, so ``n_features_in_`` (features per time step) is 1 and a
2-D ``X`` with fewer columns is simply a batch of shorter sequences. Each is replaced below by a
3-D version of the same check.
"""
import numpy as np
import pytest
from sklearn.base import clone, is_classifier
from sklearn.utils.estimator_checks import parametrize_with_checks

import fastrnn

N_FEATURES_CHECKS = {
    "check_n_features_in": "n_features_in_ counts features per time step, not X.shape[1]",
    "check_n_features_in_after_fitting": "n_features_in_ counts features per time step, not X.shape[1]",
    "check_estimators_partial_fit_n_features": "fewer columns of a 2-D X are shorter sequences, not fewer features",
    "check_classifiers_train": "asserts predict fails on X[:, :-1], which is a valid batch of shorter sequences",
}

# Small settings that still learn the checks' toy problems quickly. check_sample_weight_equivalence
# compares two trainings at rtol 1e-7, so the learning rate is kept moderate: a larger one lets
# summation-order rounding grow past that over 200 epochs.
FAST = dict(hidden_size=16, max_epochs=200, batch_size=32, learning_rate=0.01, random_state=0, dtype="float64")
CLASSES = (fastrnn.LSTMRegressor, fastrnn.GRURegressor, fastrnn.RNNRegressor,
           fastrnn.LSTMClassifier, fastrnn.GRUClassifier, fastrnn.RNNClassifier)
ESTIMATORS = [cls(**FAST) for cls in CLASSES]


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=lambda est: N_FEATURES_CHECKS)
def test_sklearn_compatible(estimator, check):
    check(estimator)


def _sequence_problem(estimator, n_samples=120, n_features=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_samples, 6, n_features))
    signal = X[:, :, 0].sum(axis=1) - X[:, -1, 1]
    if is_classifier(estimator):
        y = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))  # three balanced classes
    else:
        y = signal
    return X, y


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_n_features_in_3d(estimator):
    """3-D version of check_n_features_in and check_n_features_in_after_fitting."""
    est = clone(estimator).set_params(max_epochs=2)
    X, y = _sequence_problem(est)
    assert not hasattr(est, "n_features_in_")
    est.fit(X, y)
    assert est.n_features_in_ == X.shape[2] == 3
    for method in ("predict", "score"):
        with pytest.raises(ValueError, match="2 features per time step.*fitted with 3"):
            getattr(est, method)(*((X[:, :, :2],) if method == "predict" else (X[:, :, :2], y)))


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: type(e).__name__)
def test_partial_fit_n_features_3d(estimator):
    """3-D version of check_estimators_partial_fit_n_features."""
    est = clone(estimator)
    X, y = _sequence_problem(est)
    kwargs = {"classes": np.unique(y)} if is_classifier(est) else {}
    est.partial_fit(X, y, **kwargs)
    with pytest.raises(ValueError, match="features per time step"):
        est.partial_fit(X[:, :, :2], y)


@pytest.mark.parametrize("estimator", [e for e in ESTIMATORS if is_classifier(e)], ids=lambda e: type(e).__name__)
def test_classifiers_train_3d(estimator):
    """3-D version of check_classifiers_train: learns a 3-class problem (training accuracy > 0.83, as
    the check asks), refuses malformed input, and its probabilities are consistent with predict."""
    est = clone(estimator)
    X, y = _sequence_problem(est, n_samples=150)
    with pytest.raises(ValueError):
        est.fit(X, y[:-1])
    est.fit(X, y)
    assert np.mean(est.predict(X) == y) > 0.83
    with pytest.raises(ValueError, match="features per time step"):
        est.predict(X[:, :, :2])
    proba = est.predict_proba(X)
    assert proba.shape == (len(X), 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-12)
    np.testing.assert_array_equal(est.classes_[proba.argmax(axis=1)], est.predict(X))
