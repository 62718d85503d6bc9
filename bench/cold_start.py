"""Cold start: how long a fresh process takes from launch to its first prediction.

    python bench/cold_start.py [--threads 2] [--backends cython,numba] [--markdown]

The scenario is a CPU-only service that starts often: a new Python process imports fastrnn, loads a
model and predicts one batch of 64 sequences of 50 steps (the ``small`` shape: I 8, H 64). Two kinds
of model: a fitted ``LSTMRegressor`` unpickled (scikit-learn is imported with it), and the engine
alone, a ``fastrnn.nn.LSTM`` whose state dict is read from an ``.npz`` file. Each backend runs in its own fresh process; Numba twice, with one
fresh ``NUMBA_CACHE_DIR``: ``cold`` (the first-ever compile) and ``cached`` (a later process that
finds the compiled kernels on disk). Reported per run: interpreter start-up, ``import fastrnn``,
unpickling, the first ``predict``, the steady-state ``predict`` (fastest of 20 more calls in the
same process), and the wall time from launch to the first prediction.
"""
import argparse
import json
import os
import pickle
import subprocess
import sys
import tempfile
import time

BATCH, STEPS, FEATURES, HIDDEN = 64, 50, 8, 64  # the "small" shape


def _load_estimator(path):
    with open(path, "rb") as fh:
        model = pickle.load(fh)
    return model.predict


def _load_layer(path):
    import numpy as np

    import fastrnn.nn
    layer = fastrnn.nn.LSTM(FEATURES, HIDDEN, dtype=np.float32)
    with np.load(path) as weights:
        layer.load_state_dict(dict(weights))
    return lambda X: layer.forward(X, need_grad=False)[0]


def _child(kind, model_path, launched_at):
    started = time.time()
    t0 = time.perf_counter()
    import numpy as np

    import fastrnn
    t1 = time.perf_counter()
    predict = {"estimator": _load_estimator, "layer": _load_layer}[kind](model_path)
    X = np.random.default_rng(1).standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
    t2 = time.perf_counter()
    predict(X)
    t3 = time.perf_counter()
    first_prediction_at = time.time()
    steady = []
    for _ in range(20):
        start = time.perf_counter()
        predict(X)
        steady.append(time.perf_counter() - start)
    print(json.dumps(dict(backend=fastrnn.get_default_backend(), model=kind, startup_s=started - launched_at,
                          import_s=t1 - t0, load_s=t2 - t1, first_predict_s=t3 - t2, steady_s=min(steady),
                          to_first_prediction_s=first_prediction_at - launched_at,
                          numba_loaded="numba" in sys.modules, sklearn_loaded="sklearn" in sys.modules)))


def _save_models(work):
    """Write ``estimator.pkl`` and ``layer.npz`` into ``work``; return their paths by kind."""
    import numpy as np

    import fastrnn
    rng = np.random.default_rng(0)
    X = rng.standard_normal((BATCH, STEPS, FEATURES)).astype(np.float32)
    y = X[:, -5:, 0].sum(axis=1)
    model = fastrnn.LSTMRegressor(hidden_size=HIDDEN, max_epochs=2, random_state=0, backend="reference").fit(X, y)
    model.set_params(backend="auto")
    model.model_.set_backend("auto")  # the process-wide default decides, as in a deployed service
    paths = dict(estimator=os.path.join(work, "estimator.pkl"), layer=os.path.join(work, "layer.npz"))
    with open(paths["estimator"], "wb") as fh:
        pickle.dump(model, fh)
    np.savez(paths["layer"], **model.model_.state_dict())
    return paths


def _run_child(kind, model_path, backend, threads, cache_dir):
    env = dict(os.environ, FASTRNN_BACKEND=backend, NUMBA_NUM_THREADS=str(threads), OMP_NUM_THREADS=str(threads),
               OPENBLAS_NUM_THREADS=str(threads), NUMBA_CACHE_DIR=cache_dir)
    launched_at = time.time()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", kind, model_path,
                           repr(launched_at)],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    if proc.returncode != 0:
        raise RuntimeError(f"cold-start child for {backend} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(threads=2, backends=None):
    """Run every scenario; returns a list of result dicts (one per backend and cache state)."""
    from fastrnn.kernels import available_backends

    backends = backends or [b for b in available_backends() if b != "reference"]
    results = []
    with tempfile.TemporaryDirectory(prefix="fastrnn-cold-start-") as work:
        paths = _save_models(work)
        for backend in backends:
            if backend == "numba":
                cache = os.path.join(work, "numba-cache")
                os.makedirs(cache)
                runs = [("estimator", "cold (first compile)"), ("estimator", "cached"), ("layer", "cached")]
            else:
                cache = os.path.join(work, "unused")
                runs = [("estimator", "no JIT"), ("layer", "no JIT")]
            for kind, cache_state in runs:
                results.append(dict(_run_child(kind, paths[kind], backend, threads, cache), cache=cache_state))
    return results


def render(results, threads):
    """The Markdown section for bench/RESULTS.md."""
    lines = [f"## Cold start: launch to first prediction (B{BATCH} T{STEPS} I{FEATURES} H{HIDDEN} LSTMRegressor, "
             f"{threads} threads)", "",
             "Each row is a fresh process (`bench/cold_start.py`): interpreter start-up, `import fastrnn`, unpickling "
             "the fitted estimator (or reading the layer's weights), the first `predict`, then the fastest of 20 "
             "more (steady state). The last "
             "column divides the first prediction's cost after import by the steady-state call.", "",
             "| model | backend | Numba cache | start-up ms | import ms | load ms | first predict ms | steady predict ms "
             "| launch → first prediction ms | first / steady |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        model = "LSTMRegressor (pickle)" if r["model"] == "estimator" else "nn.LSTM (npz state dict)"
        lines.append(f"| {model} | {r['backend']} | {r['cache']} | {1e3 * r['startup_s']:.0f} | {1e3 * r['import_s']:.0f} | "
                     f"{1e3 * r['load_s']:.1f} | {1e3 * r['first_predict_s']:.1f} | {1e3 * r['steady_s']:.2f} | "
                     f"{1e3 * r['to_first_prediction_s']:.0f} | {r['first_predict_s'] / r['steady_s']:.1f}× |")
    return "\n".join(lines + [""])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] == "--child":
        return _child(argv[1], argv[2], float(argv[3]))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--backends", default=None, help="comma-separated (default: every compiled one)")
    args = parser.parse_args(argv)
    results = measure(args.threads, args.backends.split(",") if args.backends else None)
    print(render(results, args.threads))


if __name__ == "__main__":
    main()
