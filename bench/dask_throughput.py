"""Dask scale-out: batch-prediction throughput in-process vs on a LocalCluster; prints a Markdown table.

    python bench/dask_throughput.py [--chunks 16] [--repeats 3] [--backend auto] [--no-single-worker]

The infer_batch shape: chunks of B = 1024 sequences, T = 100, I = 16, H = 128, one LSTM layer,
float32; ``--chunks`` of them (16: 16384 sequences, 105 MB). The model is an ``LSTMRegressor`` (fitted
for one epoch on 32 random sequences, then given the benchmark's shared weights): prediction is
what is measured, input validation and scaling included. Systems, on the same sequences:

- in-process: ``estimator.predict(X)`` on the whole array, with 2 and with 1 kernel/BLAS threads;
- 2 plain processes (``multiprocessing``, spawn, no Dask), each predicting chunks it already holds:
  what two processes can do on this machine, the ceiling for the 2-worker cluster;
- ``fastrnn.dask.predict(estimator, X).compute()`` on a LocalCluster of 2 worker processes x 1
  thread, and (unless ``--no-single-worker``) of 1 worker x 2 threads. The sequences are generated
  on the workers and persisted before timing (data-local, as on a cluster that loaded its data), so
  the time is the graph's submission, shipping the model, the predictions and gathering them.
  "Kernel threads per task" is the estimator's ``n_threads`` there (Dask runs one task per thread).

All systems are started and warmed up first (every process loads the JIT kernels), then each
repeat times every system once, in turn; a figure is a system's fastest repeat. Load from elsewhere
on the machine still counts (the table gives the load average): run it on a quiet machine.
"""
import argparse
import contextlib
import copy
import logging
import multiprocessing
import os
import sys
import time
import warnings

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from shapes import SHAPES  # noqa: E402

SHAPE = SHAPES["infer_batch"]


def make_estimator(backend):
    """An LSTMRegressor of the infer_batch shape with the shared benchmark weights."""
    import fastrnn
    from runners import reference_state

    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, SHAPE.T, SHAPE.I)).astype(np.float32)
    estimator = fastrnn.LSTMRegressor(hidden_size=SHAPE.H, max_epochs=1, backend=backend, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # one epoch does not converge; the weights are replaced anyway
        estimator.fit(X, X[:, -1, 0])
    estimator.model_.load_state_dict(reference_state(SHAPE, "lstm"))
    estimator.predict(X[:2])  # leaves training mode, as a served model would have
    return estimator


def _warm_up(estimator):
    """Runs in each worker process: load (or compile) the kernels before anything is timed."""
    x = np.random.default_rng(1).standard_normal((8, SHAPE.T, SHAPE.I)).astype(np.float32)
    estimator.predict(x)


def start_cluster(stack, n_workers, threads_per_worker, estimator, chunks):
    """A LocalCluster (closed with ``stack``) holding the sequences; returns ``(client, X on the workers)``."""
    import dask.array as da
    import distributed

    cluster = stack.enter_context(distributed.LocalCluster(
        n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True, dashboard_address=":0",
        silence_logs=logging.ERROR))
    client = stack.enter_context(distributed.Client(cluster, set_as_default=False))
    X = da.random.default_rng(0).standard_normal((chunks * SHAPE.B, SHAPE.T, SHAPE.I), dtype=np.float32,
                                                 chunks=(SHAPE.B, SHAPE.T, SHAPE.I))
    X = client.persist(X)
    with client.as_current():
        distributed.wait(X)
    client.run(_warm_up, estimator)
    return client, X


_POOL_STATE = {}


def _pool_init(estimator):
    _POOL_STATE["model"] = estimator
    _POOL_STATE["X"] = np.random.default_rng(2).standard_normal((SHAPE.B, SHAPE.T, SHAPE.I)).astype(np.float32)
    _warm_up(estimator)


def _pool_predict(_):
    return _POOL_STATE["model"].predict(_POOL_STATE["X"])


def systems(stack, estimator, chunks, single_worker):
    """``[(row, call)]``: every system, started and warmed up; ``call()`` predicts all the sequences once."""
    import fastrnn.dask

    def threads(n):
        return copy.deepcopy(estimator).set_params(n_threads=n)

    def on(client, X, model):
        return lambda: client.compute(fastrnn.dask.predict(model, X), sync=True)

    client, X = start_cluster(stack, 2, 1, estimator, chunks)
    local = client.compute(X, sync=True)  # the same sequences, in this process
    result = []
    for n in (2, 1):
        model = threads(n)
        model.predict(local[:SHAPE.B])  # warm-up
        result.append((dict(system="in-process `predict`", layout="1 process", threads=n),
                       lambda model=model: model.predict(local)))
    # the machine's ceiling for two processes: plain spawned processes predicting chunks they already hold
    pool = stack.enter_context(multiprocessing.get_context("spawn").Pool(2, _pool_init, (threads(1),)))
    pool.map(_pool_predict, range(2), chunksize=1)
    result.append((dict(system="2 plain processes (no Dask)", layout="2 processes x 1 thread", threads=1),
                   lambda: pool.map(_pool_predict, range(chunks), chunksize=1)))
    for n in (1, 2):
        result.append((dict(system="`fastrnn.dask.predict`", layout="2 workers x 1 thread", threads=n),
                       on(client, X, threads(n))))
    if single_worker:
        client_1x2, X_1x2 = start_cluster(stack, 1, 2, estimator, chunks)
        result.append((dict(system="`fastrnn.dask.predict`", layout="1 worker x 2 threads", threads=1),
                       on(client_1x2, X_1x2, threads(1))))
    return result


def measure(chunks=16, repeats=3, backend="auto", single_worker=True):
    """A list of result rows (dicts with ``rate`` in sequences/s).

    Every system stays up for the whole run and the repeats go round all of them in turn, so load
    from elsewhere on the machine falls on each system alike; each row keeps its fastest repeat.
    """
    estimator = make_estimator(backend)
    with contextlib.ExitStack() as stack:
        entries = systems(stack, estimator, chunks, single_worker)
        best = [float("inf")] * len(entries)
        for _ in range(repeats):
            for i, (row, call) in enumerate(entries):
                start = time.perf_counter()
                call()
                best[i] = min(best[i], time.perf_counter() - start)
        rows = [dict(row, rate=chunks * SHAPE.B / seconds) for (row, _), seconds in zip(entries, best)]
    for row in rows:
        print(f"  {row['system']}, {row['layout']}, n_threads={row['threads']}: {row['rate']:.0f} sequences/s",
              file=sys.stderr, flush=True)
    return rows


def render(rows, chunks, repeats, backend, load=None):
    import fastrnn

    baseline = rows[0]["rate"]
    name = fastrnn.get_default_backend() if backend == "auto" else backend
    lines = [f"## Dask scale-out: batch prediction ({SHAPE.label()} per chunk, {chunks} chunks, LSTM, float32, "
             f"{name} backend)", "",
             f"`bench/dask_throughput.py`: fastest of {repeats} runs; {os.cpu_count()} cores on this machine"
             + ("" if load is None else f" (1-minute load average {load[0]:.1f} before, {load[1]:.1f} after)")
             + ". Cluster rows include submitting the graph, shipping the model and gathering the predictions.", "",
             "| system | processes x threads | kernel threads per task | sequences/s | vs in-process (2 threads) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['system']} | {r['layout']} | {r['threads']} | {r['rate']:.0f} | {r['rate'] / baseline:.2f} |"
              for r in rows]
    return "\n".join(lines + [""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backend", default="auto", choices=("auto", "numba", "cython", "reference"))
    parser.add_argument("--no-single-worker", action="store_true", help="skip the 1 worker x 2 threads cluster")
    args = parser.parse_args(argv)
    if args.chunks < 1 or args.repeats < 1:
        raise SystemExit("--chunks and --repeats must be at least 1")
    load_before = os.getloadavg()[0]
    rows = measure(args.chunks, args.repeats, args.backend, not args.no_single_worker)
    print(render(rows, args.chunks, args.repeats, args.backend, (load_before, os.getloadavg()[0])))


if __name__ == "__main__":
    main()
