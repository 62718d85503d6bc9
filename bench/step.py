"""One recurrent step at batch 1: online (stateful) inference.

    python bench/step.py [--threads 2] [--repeats 5] [--markdown]

Shape: B = 1, I = 16, H = 128 (the latency_b1 shape, one step at a time), float32, all systems with
the same weights. Systems: fastrnn's ``layer.step(x_t, state)`` (each available backend) and the
estimators' ``predict(X, state=..., return_state=True)`` on a one-step chunk; PyTorch's
``nn.LSTMCell``/``nn.GRUCell`` and a ``T = 1`` call of ``nn.LSTM``/``nn.GRU`` under ``no_grad``.
Each system runs in its own process (PyTorch bundles its own OpenMP runtime, which would otherwise
set fastrnn's threading policy). Reported: the fastest call in microseconds (see bench/timing.py)
and each system's time relative to PyTorch's cell.
"""
import argparse
import json
import os
import subprocess
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from timing import time_call  # noqa: E402

I, H = 16, 128


def _weights(cell):
    """PyTorch-layout weights shared by every system (seeded)."""
    gates = {"lstm": 4, "gru": 3}[cell]
    rng = np.random.default_rng(0)
    bound = 1.0 / np.sqrt(H)
    shapes = dict(weight_ih_l0=(gates * H, I), weight_hh_l0=(gates * H, H), bias_ih_l0=(gates * H,),
                  bias_hh_l0=(gates * H,))
    return {name: rng.uniform(-bound, bound, shape).astype(np.float32) for name, shape in shapes.items()}


def _fastrnn_step(cell, backend):
    import fastrnn.nn
    layer = {"lstm": fastrnn.nn.LSTM, "gru": fastrnn.nn.GRU}[cell](I, H, backend=backend).eval()
    layer.load_state_dict(_weights(cell))
    x = np.random.default_rng(1).standard_normal((1, I)).astype(np.float32)
    _, state = layer.step(x)
    return lambda: layer.step(x, state)


def _fastrnn_estimator(cell, backend):
    import warnings

    import fastrnn
    estimator_class = {"lstm": fastrnn.LSTMRegressor, "gru": fastrnn.GRURegressor}[cell]
    X = np.random.default_rng(2).standard_normal((16, 5, I)).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        estimator = estimator_class(hidden_size=H, max_epochs=1, backend=backend).fit(X, X[:, -1, 0])
    estimator.model_.load_state_dict(_weights(cell))
    chunk = X[:1, :1]
    _, state = estimator.predict(chunk, return_state=True)
    return lambda: estimator.predict(chunk, state=state, return_state=True)


def _torch_cell(cell):
    import torch
    module = {"lstm": torch.nn.LSTMCell, "gru": torch.nn.GRUCell}[cell](I, H)
    weights = _weights(cell)
    module.load_state_dict({name[:-3]: torch.from_numpy(value) for name, value in weights.items()})
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, I)).astype(np.float32))
    h = torch.zeros(1, H)
    state = (h, h.clone()) if cell == "lstm" else h

    def step():
        with torch.no_grad():
            return module(x, state)
    return step


def _torch_layer(cell):
    import torch
    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell](I, H, batch_first=True)
    module.load_state_dict({name: torch.from_numpy(value) for name, value in _weights(cell).items()})
    x = torch.from_numpy(np.random.default_rng(1).standard_normal((1, 1, I)).astype(np.float32))
    h = torch.zeros(1, 1, H)
    state = (h, h.clone()) if cell == "lstm" else h

    def step():
        with torch.no_grad():
            return module(x, state)
    return step


def _systems(cell):
    """``{name: factory}``; a factory builds the timed callable inside the child process."""
    import fastrnn
    systems = {}
    for backend in fastrnn.available_backends():
        if backend != "reference":
            systems[f"fastrnn layer.step ({backend})"] = ("fastrnn_step", backend)
    systems[f"fastrnn {cell.upper()}Regressor.predict(state=...) ({fastrnn.get_default_backend()})"] = \
        ("fastrnn_estimator", "auto")
    systems[f"PyTorch nn.{cell.upper()}Cell"] = ("torch_cell", None)
    systems[f"PyTorch nn.{cell.upper()} (T = 1)"] = ("torch_layer", None)
    return systems


def _child(kind, cell, backend, threads, repeats):
    if kind.startswith("torch"):
        import torch
        torch.set_num_threads(threads)
        fn = _torch_cell(cell) if kind == "torch_cell" else _torch_layer(cell)
    else:
        import fastrnn
        fastrnn.set_num_threads(threads)
        fn = _fastrnn_step(cell, backend) if kind == "fastrnn_step" else _fastrnn_estimator(cell, backend)
    _, best = time_call(fn, repeats=repeats, min_time=0.2)
    print(json.dumps(dict(us=best * 1e6)))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--markdown", action="store_true", help="print only the Markdown table")
    parser.add_argument("--child", nargs=3, default=None, help=argparse.SUPPRESS)  # kind cell backend
    args = parser.parse_args(argv)
    if args.child:
        kind, cell, backend = args.child
        return _child(kind, cell, None if backend == "None" else backend, args.threads, args.repeats)
    rows = []
    for cell in args.cells.split(","):
        timings = {}
        for name, (kind, backend) in _systems(cell).items():
            command = [sys.executable, __file__, "--threads", str(args.threads), "--repeats", str(args.repeats),
                       "--child", kind, cell, str(backend)]
            proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
            if proc.returncode != 0:
                print(f"{name}: failed ({proc.stderr.strip().splitlines()[-1:]})", file=sys.stderr)
                continue
            timings[name] = json.loads(proc.stdout.strip().splitlines()[-1])["us"]
        baseline = next((t for n, t in timings.items() if "Cell" in n), None)
        for name, us in timings.items():
            ratio = f"{baseline / us:.2f}×" if baseline else "n/a"
            rows.append(f"| {cell.upper()} | {name} | {us:.1f} | {ratio} |")
    table = ["| cell | system | µs per step | speed vs PyTorch cell |", "|---|---|---|---|"] + rows
    if not args.markdown:
        print(f"One step, B=1 I={I} H={H} float32, {args.threads} threads, fastest of {args.repeats} repeats\n")
    print("\n".join(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
