"""Peak memory of one training step, measured in a fresh process (run by peers.py).

    python bench/memory.py --system fastrnn|torch --cell lstm [--backend numba] [--threads 2]

Method: import everything and run one tiny training step first (so JIT compilation, oneDNN
initialisation and lazy imports are not counted), build the model and the inputs of the memory
shape (B=32, T=2000, I=16, H=128), then reset the kernel's resident-set high-water mark
(``echo 5 > /proc/self/clear_refs``, Linux >= 4.0), run one training step and read ``VmHWM``.
The step's peak is ``VmHWM - VmRSS`` just before it: every byte the step touched, whoever
allocated it (NumPy, Numba's runtime, PyTorch's allocator, BLAS workspaces). Where clear_refs is not
writable it falls back to ``ru_maxrss`` after minus ``VmRSS`` before, which is also exact unless an
earlier moment of the process already peaked higher (then it under-reports; the output says which).
Prints one JSON object.
"""
import argparse
import gc
import json
import os
import resource
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from shapes import MEMORY_SHAPE, Shape, make_inputs  # noqa: E402


def _status_kib(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak():
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def _step(system, cell, backend, shape):
    from runners import fastrnn_call, reference_state, torch_call

    x, y = make_inputs(shape)
    state = reference_state(shape, cell)
    if system == "torch":
        return torch_call(shape, cell, "training", x, y, state)
    return fastrnn_call(shape, cell, "training", backend, x, y, state)


def measure(system, cell, backend, threads):
    from runners import set_threads

    if system == "torch":
        import torch  # noqa: F401  (imported before set_threads so that its thread count is set)
    set_threads(threads)
    tiny = Shape("warmup", B=2, T=5, I=MEMORY_SHAPE.I, H=MEMORY_SHAPE.H)
    _step(system, cell, backend, tiny)()
    step = _step(system, cell, backend, MEMORY_SHAPE)
    gc.collect()
    before_kib = _status_kib("VmRSS")
    exact = _reset_peak()
    step()
    if exact:
        peak_kib = _status_kib("VmHWM")
        method = "VmHWM after clear_refs"
    else:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        method = "ru_maxrss (clear_refs unavailable: may under-report)"
    return {"system": system, "cell": cell, "backend": backend, "rss_before_mib": before_kib / 1024,
            "peak_rss_mib": peak_kib / 1024, "step_peak_mib": (peak_kib - before_kib) / 1024,
            "method": method}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--system", choices=("fastrnn", "torch"), required=True)
    parser.add_argument("--cell", choices=("lstm", "gru"), required=True)
    parser.add_argument("--backend", default="auto", help="fastrnn backend (ignored for torch)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.system, args.cell, args.backend, args.threads)))


if __name__ == "__main__":
    main()
