"""pytest-benchmark cases for the peers on the same shapes: PyTorch (inference and training step)
and ONNX Runtime (inference). Skipped, with the install command, when a peer does not import.

Each case lands in the same benchmark group as fastrnn's (``{shape}-{cell}-{mode}``), so the report
puts them side by side.
"""
import pytest

from _cases import get_problem, run_benchmark
from shapes import CELLS, MODES, SHAPES


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_torch(benchmark, problem_cache, shape_name, cell, mode):
    pytest.importorskip("torch", reason="PyTorch peer: pip install torch==2.13.0")
    from runners import torch_call

    shape = SHAPES[shape_name]
    x, y, state = get_problem(problem_cache, shape, cell)
    run_benchmark(benchmark, torch_call(shape, cell, mode, x, y, state), shape, cell, mode, "torch")


@pytest.mark.parametrize("mode", ["inference"])
@pytest.mark.parametrize("cell", CELLS)
@pytest.mark.parametrize("shape_name", list(SHAPES))
def test_onnxruntime(benchmark, problem_cache, bench_threads, shape_name, cell, mode):
    pytest.importorskip("onnxruntime", reason="ONNX Runtime peer: pip install onnxruntime")
    pytest.importorskip("torch", reason="the ONNX models are exported from PyTorch: pip install torch==2.13.0")
    from runners import onnx_call

    shape = SHAPES[shape_name]
    x, y, state = get_problem(problem_cache, shape, cell)
    call = onnx_call(shape, cell, x, state, bench_threads)
    run_benchmark(benchmark, call, shape, cell, mode, "onnxruntime")
