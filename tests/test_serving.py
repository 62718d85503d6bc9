"""Serving patterns: one fitted model called from many Python threads at once, and from worker
processes forked after the parent used it (pre-fork servers). Every backend; never a hang (each
wait has a time-out) and never a crash.

Threads must give exactly the serial answers. Forked workers give them exactly too, except on the
Numba backend under GNU OpenMP, whose kernels cannot run in a forked child: there fastrnn falls back
to the Cython kernels (or the reference) on one thread, equal within float32 rounding (rtol 1e-5).
"""
import multiprocessing
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import fastrnn
from fastrnn.kernels import available_backends

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
TIMEOUT_S = 120


def sine_windows(n=120, window=15):
    series = np.sin(np.arange(n + window) * 0.37)
    X, y = fastrnn.make_windows(series, window)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def fitted():
    X, y = sine_windows()
    return fastrnn.LSTMRegressor(hidden_size=16, max_epochs=3, random_state=0).fit(X, y), X


@pytest.mark.parametrize("backend", available_backends())
def test_many_threads_at_once_give_the_serial_answers(fitted, backend):
    model, X = fitted
    model.model_.set_backend(backend)
    expected = model.predict(X)
    with ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(model.predict, X) for _ in range(24)]
        results = [future.result(timeout=TIMEOUT_S) for future in futures]
    for result in results:
        assert np.array_equal(result, expected)


_SHARED = {}


def _predict_in_worker(_):
    model, X = _SHARED["model"], _SHARED["X"]
    return model.predict(X)


@pytest.mark.parametrize("backend", available_backends())
def test_workers_forked_after_the_parent_used_the_model(fitted, backend):
    model, X = fitted
    model.model_.set_backend(backend)
    expected = model.predict(X)  # the parent has run the kernels (and their threads) before forking
    _SHARED.update(model=model, X=X)
    context = multiprocessing.get_context("fork")
    with context.Pool(2) as pool:
        results = pool.map_async(_predict_in_worker, range(4), chunksize=1).get(timeout=TIMEOUT_S)
    numba_omp_child = backend == "numba" and fastrnn.kernels._loaded["numba"].openmp_threads_started()
    for result in results:
        if numba_omp_child:
            np.testing.assert_allclose(result, expected, rtol=1e-5, atol=1e-6)
        else:
            assert np.array_equal(result, expected)
    assert np.array_equal(model.predict(X), expected)  # the parent is unaffected
