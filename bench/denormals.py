"""Do denormal numbers slow fastrnn down? A training step whose activations underflow, timed beside
the same step at ordinary magnitudes (weights and inputs scaled by 1e-20, biases by 1e-40).

    python bench/denormals.py [--backends numba,cython] [--repeats 7]

float32 numbers below 1.18e-38 are denormal; on many CPUs arithmetic on them is far slower unless
the FPU flushes them to zero (FTZ/DAZ). Here the weights and inputs are scaled so that the gate
pre-activations, hidden states and gradients of an LSTM (B64 T50 I8 H64) land in the denormal range,
and the forward + backward time is compared with the same layer at ordinary scale. A ratio near 1
means no flush-to-zero is needed on this machine; the script also reports the share of denormal
values in the hidden states, to show the slow case really is denormal.
"""
import argparse
import time

import numpy as np


def _denormal_share(values):
    tiny = np.finfo(np.float32).tiny
    nonzero = values[values != 0]
    return float(np.mean(np.abs(nonzero) < tiny)) if nonzero.size else 0.0


def measure(backends=None, repeats=7):
    import fastrnn
    import fastrnn.nn as frnn

    backends = backends or [b for b in fastrnn.available_backends() if b != "reference"]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((64, 50, 8)).astype(np.float32)
    rows = []
    for backend in backends:
        timings = {}
        shares = {}
        for label, scale in (("ordinary", 1.0), ("underflowing", 1e-20)):
            layer = frnn.LSTM(8, 64, dtype=np.float32, backend=backend, random_state=0)
            # weights and inputs ~1e-20, biases ~1e-40: pre-activations, cell and hidden states ~1e-40,
            # denormal in float32
            layer.load_state_dict({k: (v * (scale * scale if k.startswith("bias") else scale)).astype(np.float32)
                                   for k, v in layer.state_dict().items()})
            inputs = (x * scale).astype(np.float32)
            grad = np.full((64, 50, 64), 1e-30 if scale < 1 else 1.0, dtype=np.float32)
            for _ in range(2):
                out = layer.forward(inputs)[0]
                layer.backward(grad)
            best = np.inf
            for _ in range(repeats):
                start = time.perf_counter()
                out = layer.forward(inputs)[0]
                layer.backward(grad)
                best = min(best, time.perf_counter() - start)
            timings[label] = best
            shares[label] = _denormal_share(out)
        rows.append(dict(backend=backend, ordinary_ms=1e3 * timings["ordinary"],
                         underflowing_ms=1e3 * timings["underflowing"],
                         ratio=timings["underflowing"] / timings["ordinary"],
                         denormal_share=shares["underflowing"]))
    return rows


def render(rows):
    lines = ["## Denormals: a training step whose activations underflow (LSTM B64 T50 I8 H64, float32)", "",
             "`bench/denormals.py`: forward + backward at ordinary magnitudes and with weights and inputs scaled "
             "by 1e-20, biases by 1e-40 (pre-activations and states ~1e-40, below float32's smallest normal "
             "number 1.2e-38). Fastest of 7.", "",
             "| backend | ordinary ms | underflowing ms | slow-down | denormal share of hidden states |",
             "|---|---|---|---|---|"]
    lines += [f"| {r['backend']} | {r['ordinary_ms']:.2f} | {r['underflowing_ms']:.2f} | {r['ratio']:.2f}× | "
              f"{100 * r['denormal_share']:.0f}% |" for r in rows]
    return "\n".join(lines + [""])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=None)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    print(render(measure(args.backends.split(",") if args.backends else None, args.repeats)))


if __name__ == "__main__":
    main()
