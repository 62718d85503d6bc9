"""pytest-benchmark cases: fastrnn on every standard shape x cell x {inference, training} x backend.

Run with ``pytest bench/`` (see bench/README.md); the unit suite ``pytest tests`` never collects this.
"""
import pytest

from _cases import get_problem, run_benchmark
from runners import backend_supports, fastrnn_call
from shapes import CELLS, MODES, SHAPES


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_fastrnn(benchmark, problem_cache, shape_name, cell, mode, backend):
    reason = backend_supports(backend, cell)
    if reason:
        pytest.skip(f"fastrnn backend {backend!r} has no {cell} kernels here: {reason}")
    shape = SHAPES[shape_name]
    x, y, state = get_problem(problem_cache, shape, cell)
    call = fastrnn_call(shape, cell, mode, backend, x, y, state)
    run_benchmark(benchmark, call, shape, cell, mode, f"fastrnn[{backend}]")
