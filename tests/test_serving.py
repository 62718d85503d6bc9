"""Serving patterns: one fitted model called from many Python threads at once, and from worker
processes forked after the parent used it (pre-fork servers), every backend, never a hang (each
wait has a time-out) and never a crash; and predict's memory on a million sequences.

Threads must give exactly the serial answers. Forked workers give them exactly too, except on the
Numba backend under GNU OpenMP, whose kernels cannot run in a forked child: there fastrnn falls back
to the Cython kernels (or the reference) on one thread, equal within float32 rounding (rtol 1e-5).
"""
import json
import multiprocessing
import os
import subprocess
import sys
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
def test_workers_forked_after_the_parent_used_the_model(fitted, backend, monkeypatch):
    model, X = fitted
    model.model_.set_backend(backend)
    # split even this small batch over the threads, so that the parent's worker threads have started
    monkeypatch.setattr(fastrnn.kernels._driver, "batch_split_pays", lambda *args: True)
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


_MEMORY_SCRIPT = r"""
import json, sys
import numpy as np
import fastrnn

def status(key):
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) / 1024 for line in fh if line.startswith(key))

rng = np.random.default_rng(0)
X = rng.standard_normal((1_000_000, 50, 4), dtype=np.float32)
model = fastrnn.LSTMRegressor(hidden_size=16, max_epochs=1, random_state=0).fit(X[:256], X[:256, -1, 0])
small = X[:512]
for _ in range(5):
    model.predict(small)
settled = status("VmRSS")
for _ in range(200):
    model.predict(small)
growth = status("VmRSS") - settled
with open("/proc/self/clear_refs", "w") as fh:
    fh.write("5")  # reset the high-water mark: from here on it measures predict alone
before = status("VmRSS")
y = model.predict(X)
peak_above = status("VmHWM") - before - y.nbytes / 2 ** 20
print(json.dumps(dict(growth_mib=growth, peak_above_mib=peak_above, finite=bool(np.isfinite(y).all()),
                      shape=list(y.shape))))
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc to measure RSS")
def test_predict_memory_is_bounded_and_does_not_grow(tmp_path):
    """10^6 sequences (T=50, 4 features, float32: 763 MiB): predict's peak memory stays within 256 MiB
    of the input and the output; 200 repeated predict calls do not grow the process."""
    done = subprocess.run([sys.executable, "-c", _MEMORY_SCRIPT], capture_output=True, text=True, cwd=tmp_path,
                          timeout=600)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["shape"] == [1_000_000] and result["finite"]
    assert result["peak_above_mib"] <= 256, result
    assert result["growth_mib"] <= 8, result
