"""Serving benchmark: one shared model answering single-sequence requests from a pool of client threads.

    python bench/serve.py [--seconds 3] [--clients 1,2,4] [--cells lstm] [--threads 2]

Each request is one sequence (B = 1, T = 100, I = 16, H = 128: the latency_b1 shape). Closed loop:
every client thread sends its next request as soon as the last one is answered, for ``--seconds``.
Reported per system and client count: requests per second, p50 and p99 latency. Systems, all with
the same weights: the fastrnn layer (``nn.LSTM.forward(need_grad=False)``), the fastrnn estimator
(``LSTMRegressor.predict``, input validation and scaling included), and an ONNX Runtime session of
the same layer exported from PyTorch (``intra_op_num_threads=--threads``), if installed.
"""
import argparse
import os
import sys
import threading
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from shapes import SHAPES  # noqa: E402

SHAPE = SHAPES["latency_b1"]


def _systems(cell, threads):
    """``{name: callable(x)}`` for every system available here, all with the same weights."""
    import fastrnn
    from runners import _layer_class, reference_state

    state = reference_state(SHAPE, cell)
    layer = _layer_class(cell)(SHAPE.I, SHAPE.H)
    layer.load_state_dict(state)
    layer.eval()
    systems = {f"fastrnn nn.{cell.upper()} ({fastrnn.get_default_backend()})":
               lambda x: layer.forward(x, need_grad=False)[0]}

    estimator_class = {"lstm": fastrnn.LSTMRegressor, "gru": fastrnn.GRURegressor}[cell]
    rng = np.random.default_rng(0)
    X = rng.standard_normal((32, SHAPE.T, SHAPE.I)).astype(np.float32)
    estimator = estimator_class(hidden_size=SHAPE.H, max_epochs=1, random_state=0).fit(X, X[:, -1, 0])
    estimator.model_.load_state_dict(state)
    systems[f"fastrnn {estimator_class.__name__}.predict"] = estimator.predict
    try:
        import onnxruntime as ort

        from runners import export_onnx
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(export_onnx(SHAPE, cell, state), options, providers=["CPUExecutionProvider"])
        systems["ONNX Runtime session"] = lambda x: session.run(None, {"x": x})[0]
    except ImportError as exc:
        print(f"ONNX Runtime or PyTorch missing ({exc}); pip install onnxruntime torch==2.13.0", file=sys.stderr)
    return systems


def load_test(call, clients, seconds):
    """Run ``clients`` closed-loop client threads for ``seconds``; return (requests/s, p50 ms, p99 ms)."""
    rng = np.random.default_rng(1)
    requests = [rng.standard_normal((1, SHAPE.T, SHAPE.I)).astype(np.float32) for _ in range(16)]
    for x in requests[:3]:
        call(x)  # warm-up (first calls, compilation)
    latencies = [[] for _ in range(clients)]
    start_barrier = threading.Barrier(clients + 1)
    stop_at = [0.0]

    def client(k):
        start_barrier.wait()
        i = k
        while time.perf_counter() < stop_at[0]:
            x = requests[i % len(requests)]
            t0 = time.perf_counter()
            call(x)
            latencies[k].append(time.perf_counter() - t0)
            i += 1

    workers = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for worker in workers:
        worker.start()
    stop_at[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start_barrier.wait()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    all_ms = np.concatenate([np.asarray(l) for l in latencies]) * 1e3
    return len(all_ms) / elapsed, float(np.percentile(all_ms, 50)), float(np.percentile(all_ms, 99))


def measure(cells=("lstm",), clients=(1, 2, 4), seconds=3.0, threads=2):
    """Every system × client count; a list of result dicts."""
    from runners import set_threads

    set_threads(threads)
    rows = []
    for cell in cells:
        for name, call in _systems(cell, threads).items():
            for n in clients:
                rps, p50, p99 = load_test(call, n, seconds)
                rows.append(dict(cell=cell, system=name, clients=n, rps=rps, p50=p50, p99=p99))
                print(f"  serve {cell} {name} x{n}: {rps:.0f} req/s, p50 {p50:.3f} ms, p99 {p99:.3f} ms",
                      file=sys.stderr, flush=True)
    return rows


def render(rows, seconds, threads):
    """The Markdown section for bench/RESULTS.md."""
    lines = [f"## Serving: single-sequence requests from client threads ({SHAPE.label()}, {threads} threads "
             f"per system)", "",
             f"`bench/serve.py`: closed-loop client threads for {seconds:g} s each, one shared model per system "
             "(same weights). Latency is per request, as the client sees it.", "",
             "| cell | system | clients | requests/s | p50 ms | p99 ms |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['cell']} | {r['system']} | {r['clients']} | {r['rps']:.0f} | {r['p50']:.3f} | {r['p99']:.3f} |"
              for r in rows]
    return "\n".join(lines + [""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--clients", default="1,2,4")
    parser.add_argument("--cells", default="lstm")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    rows = measure(args.cells.split(","), [int(c) for c in args.clients.split(",")], args.seconds, args.threads)
    print(render(rows, args.seconds, args.threads))


if __name__ == "__main__":
    main()
