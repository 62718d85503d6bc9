"""First-call (JIT compile) time per kernel family, measured in a fresh process (run by peers.py).

    python bench/first_call.py --backend numba --cells lstm,gru [--threads 2]

For each cell: the first inference forward and the first training step on the ``small`` shape
(compile of the forward and backward families), then the first call on two other shapes
(``latency_b1``, ``large``): with few signatures those cost no more than a warm call. peers.py runs
it twice with one fresh ``NUMBA_CACHE_DIR``: ``cold`` (empty cache, real compile) and ``cached``
(what a new process pays when ``cache=True`` finds the compiled code on disk). Prints one JSON object.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from shapes import SHAPES, make_inputs  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def measure(backend, cells, threads):
    start = time.perf_counter()
    import fastrnn  # noqa: F401
    from runners import backend_supports, fastrnn_call, reference_state, set_threads

    result = {"import_s": time.perf_counter() - start, "cells": {}}
    set_threads(threads)
    for cell in cells:
        reason = backend_supports(backend, cell)
        if reason:
            result["cells"][cell] = {"error": reason}
            continue
        timings = {}
        try:
            for shape_name in ("small", "latency_b1", "large"):
                shape = SHAPES[shape_name]
                x, y = make_inputs(shape)
                state = reference_state(shape, cell)
                for mode in ("inference", "training"):
                    call = fastrnn_call(shape, cell, mode, backend, x, y, state)
                    first = _timed(call)
                    warm = min(_timed(call) for _ in range(3))
                    timings[f"{shape_name}/{mode}"] = {"first_s": first, "warm_s": warm}
        except Exception as exc:  # report, do not hide, a kernel that fails
            timings["error"] = f"{type(exc).__name__}: {exc}"
        result["cells"][cell] = timings
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", default="numba")
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    print(json.dumps(measure(args.backend, args.cells.split(","), args.threads)))


if __name__ == "__main__":
    main()
