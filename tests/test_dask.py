"""fastrnn.dask on a real two-process LocalCluster (2 workers x 2 threads, spawned processes).

Proves: chunked predictions and probabilities are the in-process ones (exactly, chunk for chunk;
within float rounding of one whole-batch call), for regressors and classifiers, 3-D and 2-D input,
both workers and both threads of each busy at once, unknown and empty sample chunks; the bag path
on ragged sequences and univariate series; the model is one key of the graph and is unpickled once
per worker however many chunks that worker runs; Numba's OpenMP kernels run in the workers (no
fork fallback); GridSearchCV under joblib's "dask" backend fits on the workers and picks what it
picks in-process; and the clear errors.
"""
import collections
import logging
import os
import pickle
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
import dask  # noqa: E402
import dask.array as da  # noqa: E402
import dask.bag as db  # noqa: E402
import joblib  # noqa: E402
from sklearn.exceptions import NotFittedError  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402

import fastrnn  # noqa: E402
import fastrnn.dask as fdask  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
# n_threads=1: the kernels and BLAS run one thread per call here and in the workers alike, so the same
# chunk gives the same bits in both places (thread counts change how a batch is split).
SMALL = dict(hidden_size=8, max_epochs=3, random_state=0, backend="cython", n_threads=1)


# ------------------------------------------------------------------ instrumented estimators
# Workers import this module to unpickle these classes; the counters live in each worker process.
_EVENTS = collections.defaultdict(list)  # kind -> records, in the process where they happened


class CountingLSTMRegressor(fastrnn.LSTMRegressor):
    """LSTMRegressor recording, per process, each unpickling, each predict call and each fit."""

    delay_s = 0.0  # an instance may sleep in predict, so that concurrent chunks surely overlap

    def __setstate__(self, state):
        _EVENTS["unpickle"].append(os.getpid())
        super().__setstate__(state)

    def predict(self, X, **kwargs):
        start = time.perf_counter()
        time.sleep(self.delay_s)
        result = super().predict(X, **kwargs)
        _EVENTS["predict"].append((threading.get_ident(), start, time.perf_counter()))
        return result

    def fit(self, X, y, sample_weight=None):
        _EVENTS["fit"].append(os.getpid())
        return super().fit(X, y, sample_weight)


def _worker_events(kind):
    return list(_EVENTS[kind])


def _reset_events():
    _EVENTS.clear()


def _forked_after_openmp():
    return fastrnn.kernels._forked_after_openmp


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=2, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, distributed.Client(cluster) as client:
        yield client


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((240, 12, 3)).astype(np.float32)
    y = X[:, -3:, 0].sum(axis=1) + 0.5 * X[:, 0, 1]
    return X, y


@pytest.fixture(scope="module")
def regressor(data):
    X, y = data
    return fastrnn.LSTMRegressor(**SMALL).fit(X, y)


@pytest.fixture(scope="module")
def classifier(data):
    X, y = data
    labels = np.array(["low", "mid", "high"])[np.digitize(y, np.quantile(y, [1 / 3, 2 / 3]))]
    return fastrnn.GRUClassifier(**SMALL).fit(X, labels)


def chunkwise(method, X, chunk):
    """The in-process answer for the same chunks of samples Dask sees."""
    return np.concatenate([method(X[i:i + chunk]) for i in range(0, len(X), chunk)])


def assert_same(got, X, method, chunk, rtol=1e-5):
    assert np.array_equal(got, chunkwise(method, X, chunk))  # the same batches: bit for bit
    whole = method(X)  # one call over everything: BLAS blocking may differ in the last bit
    if got.dtype.kind == "f":
        np.testing.assert_allclose(got, whole, rtol=rtol, atol=1e-6)
    else:
        assert np.array_equal(got, whole)


# ------------------------------------------------------------------ arrays
@pytest.mark.parametrize("univariate", [False, True], ids=["3d", "2d"])
def test_regressor_predictions_equal_in_process(client, data, univariate):
    X, y = data
    if univariate:
        X = X[:, :, 0]
    model = fastrnn.LSTMRegressor(**SMALL).fit(X, np.stack([y, -y], axis=1))  # two outputs
    dX = da.from_array(X, chunks=(16,) + X.shape[1:-1] + (1,))  # last axis split: rechunked to whole sequences
    result = fdask.predict(model, dX)
    assert result.shape == (240, 2) and result.dtype == np.float32
    assert result.chunks == ((16,) * 15, (2,))
    assert_same(result.compute(), X, model.predict, 16)


def test_classifier_labels_and_probabilities_equal_in_process(client, data, classifier):
    X, _ = data
    dX = da.from_array(X, chunks=(20, 6, 3))
    labels, proba = fdask.predict(classifier, dX), fdask.predict_proba(classifier, dX)
    assert labels.dtype == classifier.classes_.dtype and labels.shape == (240,)
    assert proba.dtype == np.float64 and proba.chunks == ((20,) * 12, (3,))
    got_labels, got_proba = dask.compute(labels, proba)
    assert_same(got_proba, X, classifier.predict_proba, 20, rtol=1e-6)
    assert_same(got_labels, X, classifier.predict, 20)
    assert set(got_labels) == {"low", "mid", "high"}


def test_univariate_classifier_and_sequence_output(client, data):
    X, y = data
    series = X[:, :, 0]
    model = fastrnn.RNNClassifier(**SMALL).fit(series, y > 0)
    proba = fdask.predict_proba(model, da.from_array(series, chunks=(30, 12)))
    assert proba.shape == (240, 2)
    assert_same(proba.compute(), series, model.predict_proba, 30, rtol=1e-6)
    per_step = fastrnn.GRURegressor(output="sequence", **SMALL).fit(X, X[:, :, :2])
    result = fdask.predict(per_step, da.from_array(X, chunks=(40, 12, 3)))
    assert result.shape == (240, 12, 2) and result.chunks[1:] == ((12,), (2,))
    assert_same(result.compute(), X, per_step.predict, 40)


def test_unknown_and_empty_sample_chunks(client, data, regressor):
    X, y = data
    keep = y > np.quantile(y, 0.3)
    keep[:40] = False  # the first two chunks end up empty
    filtered = da.from_array(X, chunks=(20, 12, 3))[da.from_array(keep, chunks=20)]
    assert np.isnan(filtered.shape[0])
    result = fdask.predict(regressor, filtered)
    np.testing.assert_allclose(result.compute(), regressor.predict(X[keep]), rtol=1e-5, atol=1e-6)


def test_both_workers_and_both_threads_run_concurrently(client, data):
    X, y = data
    model = CountingLSTMRegressor(**SMALL).fit(X, y)
    model.delay_s = 0.05
    client.run(_reset_events)
    got = fdask.predict(model, da.from_array(X, chunks=(8, 12, 3))).compute()  # 30 chunks
    assert_same(got, X, model.predict, 8)
    calls = client.run(_worker_events, "predict")
    assert len(calls) == 2 and sum(map(len, calls.values())) == 30
    for records in calls.values():
        intervals = sorted((start, stop) for _, start, stop in records)
        assert any(later[0] < earlier[1] for earlier, later in zip(intervals, intervals[1:])), \
            "each worker should run two chunks at once on its two threads"


def test_numba_kernels_run_in_the_spawned_workers(client, data):
    X, y = data
    model = fastrnn.LSTMRegressor(**dict(SMALL, backend="numba")).fit(X, y)  # the parent ran OpenMP threads
    got = fdask.predict(model, da.from_array(X, chunks=(24, 12, 3))).compute()
    assert_same(got, X, model.predict, 24)  # bit for bit: no fallback to the Cython kernels
    assert not any(client.run(_forked_after_openmp).values())


# ------------------------------------------------------------------ the model travels once per worker
def test_model_is_one_key_of_the_graph(regressor, data):
    X, _ = data
    result = fdask.predict(regressor, da.from_array(X, chunks=(10, 12, 3)))
    graph = dict(result.__dask_graph__())
    weights = regressor.model_.state_dict()["weight_hh_l0"].tobytes()
    holders = [key for key, task in graph.items() if weights in pickle.dumps(task)]
    assert len(holders) == 1
    block_keys = [key for key in graph if key[0] == result.name]
    assert len(block_keys) == 24
    assert all(holders[0] in dask.core.get_dependencies(graph, key) for key in block_keys)
    # the same model twice in one graph is still one key
    twice = dask.array.stack([result, fdask.predict(regressor, da.from_array(X, chunks=(10, 12, 3)) * 2)])
    assert sum(weights in pickle.dumps(task) for task in dict(twice.__dask_graph__()).values()) == 1


def test_model_is_shipped_once_per_worker(client, data):
    X, y = data
    model = CountingLSTMRegressor(**SMALL).fit(X, y)
    model.delay_s = 0.01
    client.run(_reset_events)
    result = fdask.predict(model, da.from_array(X, chunks=(5, 12, 3)))  # 48 chunks
    assert_same(result.compute(), X, model.predict, 5)
    unpickled = client.run(_worker_events, "unpickle")
    calls = client.run(_worker_events, "predict")
    assert all(len(calls[worker]) >= 2 for worker in calls)  # each worker ran several chunks...
    assert all(len(pids) == 1 for pids in unpickled.values()), unpickled  # ...and received the model once
    model_key = dask.delayed(model, pure=True).key
    transfers = client.run(lambda dask_worker: sum(model_key in log["keys"]
                                                  for log in dask_worker.transfer_incoming_log))
    assert sum(transfers.values()) <= 1  # one worker loaded it from the graph, the other copied it once


# ------------------------------------------------------------------ bags of ragged sequences
def test_bag_of_ragged_sequences(client, regressor, classifier):
    rng = np.random.default_rng(1)
    sequences = [rng.standard_normal((int(n), 3)) for n in rng.integers(2, 30, size=57)]
    bag = db.from_sequence(sequences, npartitions=6)
    predictions, labels, proba = dask.compute(fdask.predict(regressor, bag), fdask.predict(classifier, bag),
                                              fdask.predict_proba(classifier, bag))
    np.testing.assert_allclose(predictions, regressor.predict(sequences), rtol=1e-5, atol=1e-6)
    assert list(labels) == list(classifier.predict(sequences))
    np.testing.assert_allclose(np.stack(proba), classifier.predict_proba(sequences), rtol=1e-6, atol=1e-7)
    partitions = dask.compute(*bag.to_delayed())
    exact = np.concatenate([regressor.predict(list(partition)) for partition in partitions])
    assert np.array_equal(np.asarray(predictions), exact)  # each partition is one ragged batch


def test_bag_of_univariate_series(client, data):
    X, y = data
    model = fastrnn.LSTMRegressor(**SMALL).fit(X[:, :, 0], y)
    rng = np.random.default_rng(2)
    series = [rng.standard_normal(int(n)) for n in rng.integers(3, 20, size=20)]
    got = fdask.predict(model, db.from_sequence(series, partition_size=4)).compute()
    np.testing.assert_allclose(got, model.predict(series), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ hyper-parameter search
def test_grid_search_on_the_cluster(client, data):
    X, y = data
    search = GridSearchCV(CountingLSTMRegressor(**SMALL), {"hidden_size": [4, 8], "learning_rate": [1e-5, 1e-2]},
                          cv=2, n_jobs=-1)
    client.run(_reset_events)
    with joblib.parallel_backend("dask"):
        search.fit(X, y)
    local = GridSearchCV(fastrnn.LSTMRegressor(**SMALL), search.param_grid, cv=2).fit(X, y)
    assert search.best_params_ == local.best_params_
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], local.cv_results_["mean_test_score"],
                               rtol=1e-4)
    fits = client.run(_worker_events, "fit")
    assert sum(map(len, fits.values())) >= 8  # the 4 candidates x 2 folds ran on the workers


# ------------------------------------------------------------------ errors
def test_errors(regressor, data):
    X, _ = data
    dX = da.from_array(X, chunks=(50, 12, 3))
    with pytest.raises(NotFittedError):
        fdask.predict(fastrnn.LSTMRegressor(), dX)
    with pytest.raises(TypeError, match="dask.array.Array"):
        fdask.predict(regressor, X)
    with pytest.raises(TypeError, match="dask.bag.Bag"):
        fdask.predict(regressor, list(X))
    with pytest.raises(TypeError, match="predict_proba"):
        fdask.predict_proba(regressor, dX)
    with pytest.raises(TypeError, match="real numbers"):
        fdask.predict(regressor, da.from_array(np.array([["a", "b"]])))
    with pytest.raises(ValueError, match="features"):
        fdask.predict(regressor, da.zeros((10, 12, 4), chunks=5))
    with pytest.raises(ValueError, match="4-D"):
        fdask.predict(regressor, da.zeros((10, 12, 3, 1), chunks=5))


def test_missing_dask_says_what_to_install():
    code = ("import sys; sys.modules['dask'] = None\n"
            "import fastrnn.dask\n"
            "try:\n    fastrnn.dask.predict(None, None)\n"
            "except ImportError as exc:\n    print(exc)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert 'pip install "fastrnn[dask]"' in out.stdout, out.stderr
