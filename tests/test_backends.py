"""Backend selection: the process-wide default, the environment variable, the fallback when Numba is
missing (proved in a subprocess that hides it), thread settings, and models moving between backends.

The kernel parity suites (test_kernels.py, test_nn.py) already run for every available backend.
"""
import os
import subprocess
import sys
import tempfile
import textwrap

import numpy as np
import pytest

import fastrnn
from fastrnn.kernels import available_backends, get_num_threads, num_threads, set_num_threads

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

COMPILED = [b for b in available_backends() if b != "reference"]
QUICK = dict(hidden_size=8, max_epochs=5, batch_size=16, random_state=0)

needs_cython = pytest.mark.skipif("cython" not in available_backends(),
                                  reason="the Cython extension is not built in this checkout")


def sine_windows(n, window=12, seed=0):
    rng = np.random.default_rng(seed)
    series = np.sin(np.arange(n + window) * 0.3) + 0.05 * rng.standard_normal(n + window)
    return fastrnn.make_windows(series, window)


def run_python(code, **env):
    """Run ``code`` in a fresh interpreter; return its stdout and stderr (failing the test on error).

    It runs outside the checkout so that it imports the installed package (with its compiled
    extension), not the source tree.
    """
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env=dict(os.environ, **env), timeout=300, cwd=tempfile.gettempdir())
    assert result.returncode == 0, result.stderr
    return result.stdout, result.stderr


HIDE_NUMBA = """
import sys
class HideNumba:
    def find_spec(self, name, path=None, target=None):
        if name == "numba" or name.startswith("numba."):
            raise ImportError(f"No module named {name!r} (hidden by the test)")
sys.meta_path.insert(0, HideNumba())
"""


@needs_cython
def test_without_numba_auto_falls_back_to_cython_and_fits_and_predicts(tmp_path):
    X, y = sine_windows(120)
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    out, err = run_python(HIDE_NUMBA + textwrap.dedent(f"""
        import pickle, warnings
        import numpy as np
        warnings.simplefilter("always")
        import fastrnn
        assert "numba" not in sys.modules
        X, y = np.load({str(tmp_path / "X.npy")!r}), np.load({str(tmp_path / "y.npy")!r})
        print("available", fastrnn.available_backends())
        print("default", fastrnn.get_default_backend())
        model = fastrnn.LSTMRegressor(hidden_size=8, max_epochs=30, random_state=0).fit(X, y)
        print("backend", model.model_.backend)
        print("r2", model.score(X, y))
        fastrnn.GRUClassifier(hidden_size=8, max_epochs=5, random_state=0).fit(X, y > 0).predict_proba(X)
        np.save({str(tmp_path / "pred.npy")!r}, model.predict(X))
        pickle.dump(model, open({str(tmp_path / "model.pkl")!r}, "wb"))
        assert "numba" not in sys.modules
    """))
    assert "available ['cython', 'reference']" in out
    assert "default cython" in out
    assert err.count("numba is not available") == 1  # one warning, saying what to install
    assert "pip install numba" in err
    assert float(out.split("r2")[1].split()[0]) > 0.8  # the fallback really trains

    # A model fitted without Numba predicts the same with every backend here.
    import pickle
    with open(tmp_path / "model.pkl", "rb") as fh:
        model = pickle.load(fh)
    expected = np.load(tmp_path / "pred.npy")
    for backend in available_backends():
        model.model_.set_backend(backend)
        np.testing.assert_allclose(model.predict(X), expected, rtol=1e-4, atol=1e-5)


def test_environment_variable_and_set_backend_choose_the_default():
    out, _ = run_python("""
        import fastrnn
        print(fastrnn.get_default_backend())
        fastrnn.set_backend("reference")
        print(fastrnn.get_default_backend())
        fastrnn.set_backend("auto")
        print(fastrnn.get_default_backend())
    """, FASTRNN_BACKEND="reference")
    assert out.split() == ["reference", "reference", "reference"]
    out, _ = run_python("import fastrnn; print(fastrnn.get_default_backend())", FASTRNN_BACKEND="")
    assert out.strip() == available_backends()[0]


def test_unknown_or_missing_backends_are_refused_clearly():
    with pytest.raises(ValueError, match="backend must be one of"):
        fastrnn.set_backend("fortran")
    with pytest.raises(ValueError, match="backend must be one of"):
        fastrnn.LSTMRegressor(backend="gpu").fit(*sine_windows(20))


@needs_cython
def test_cython_build_follows_the_cpu_unless_the_environment_names_one():
    """The Cython backend imports the AVX2 build when it was built and the CPU runs it; the variable
    ``FASTRNN_CYTHON_BUILD`` picks the portable one; a name that cannot run here warns and is ignored."""
    from fastrnn.kernels import _cython
    runnable = _cython.runnable_builds()
    assert runnable[0] == "baseline" and set(runnable) <= set(_cython.BUILDS)
    show = "import fastrnn.kernels._cython as c; print(c.BUILD, c.import_build(c.BUILD).uses_avx2())"
    out, _ = run_python(show, FASTRNN_CYTHON_BUILD="")
    assert out.split() == [runnable[-1], str(runnable[-1] == "avx2")]
    out, _ = run_python(show, FASTRNN_CYTHON_BUILD="baseline")
    assert out.split() == ["baseline", "False"]
    out, err = run_python(show, FASTRNN_CYTHON_BUILD="avx-9000")
    assert out.split()[0] == runnable[-1]
    assert "FASTRNN_CYTHON_BUILD='avx-9000' is not one of baseline, avx2" in err


@needs_cython
def test_cython_avx2_build_is_not_chosen_on_a_cpu_without_it(monkeypatch):
    from fastrnn.kernels import _cython
    monkeypatch.setattr(_cython, "cpu_has_avx2_fma", lambda: False)
    monkeypatch.setenv("FASTRNN_CYTHON_BUILD", "avx2")
    assert _cython.runnable_builds() == ["baseline"]
    with pytest.warns(RuntimeWarning, match="this CPU lacks AVX2/FMA; using the 'baseline' Cython build"):
        assert _cython._chosen_build() == "baseline"


@pytest.mark.parametrize("backend", COMPILED)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_fit_with_one_backend_predict_with_every_other(backend, dtype):
    X, y = sine_windows(60)
    model = fastrnn.GRURegressor(**QUICK, dtype=dtype, backend=backend).fit(X, y)
    expected = model.predict(X)
    for other in available_backends():
        model.model_.set_backend(other)
        np.testing.assert_allclose(model.predict(X), expected, rtol=1e-4 if dtype == "float32" else 1e-9,
                                   atol=1e-6 if dtype == "float32" else 1e-12)


@pytest.mark.skipif(not COMPILED, reason="no compiled backend")
def test_thread_settings_apply_and_restore():
    before = get_num_threads()
    with num_threads(1):
        assert get_num_threads() == 1
    assert get_num_threads() == before
    set_num_threads(before)
    with pytest.raises(ValueError, match="at least 1"):
        set_num_threads(0)


def test_estimator_thread_limit_sets_kernels_and_blas_for_the_block_only(monkeypatch):
    threadpoolctl = pytest.importorskip("threadpoolctl")
    from fastrnn.estimators._base import thread_limit
    from fastrnn.kernels import _split_gemm

    monkeypatch.setattr(_split_gemm, "_blas", None)  # look the libraries up now, with all of them loaded
    blas_threads = lambda: [lib["num_threads"] for lib in threadpoolctl.threadpool_info()
                            if lib["user_api"] == "blas"]
    kernels_before, blas_before = get_num_threads(), blas_threads()
    assert blas_before
    with thread_limit(1):
        assert get_num_threads() == 1 and set(blas_threads()) == {1}
    assert get_num_threads() == kernels_before and blas_threads() == blas_before


@pytest.mark.parametrize("backend", COMPILED)
def test_one_thread_and_all_threads_give_the_same_model(backend, monkeypatch):
    from fastrnn.kernels import _driver

    monkeypatch.setattr(_driver, "batch_split_pays", lambda *args: True)  # split these small batches too
    X, y = sine_windows(70)
    params = dict(QUICK, dtype="float64", backend=backend)
    a = fastrnn.LSTMRegressor(**params, n_threads=1).fit(X, y)
    b = fastrnn.LSTMRegressor(**params, n_threads=2).fit(X, y)
    np.testing.assert_allclose(a.predict(X), b.predict(X), rtol=1e-9)
