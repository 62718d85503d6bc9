"""Helpers shared by the pytest-benchmark cases (test_bench_*.py)."""
import time

from runners import reference_state
from shapes import make_inputs, step_flops


def get_problem(cache, shape, cell):
    """``(x, y, state)`` for ``(shape, cell)``, made once and kept in the session's ``cache``."""
    key = (shape.name, cell)
    if key not in cache:
        x, y = make_inputs(shape)
        cache[key] = (x, y, reference_state(shape, cell))
    return cache[key]


def run_benchmark(benchmark, call, shape, cell, mode, system):
    """Time ``call`` with pytest-benchmark after one untimed warm-up call (JIT compile, buffers).

    The warm-up's duration is kept in ``extra_info['first_call_s']`` so compile time is tracked too,
    without polluting the mean that ``--benchmark-compare-fail=mean:10%`` compares.
    """
    start = time.perf_counter()
    call()
    benchmark.extra_info["first_call_s"] = time.perf_counter() - start
    benchmark.extra_info["system"] = system
    benchmark.extra_info["gflop_per_call"] = step_flops(shape, cell, mode) / 1e9
    benchmark.group = f"{shape.name}-{cell}-{mode}"
    benchmark(call)
