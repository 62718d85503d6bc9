"""Wall-clock timing shared by the peer script: first call apart, then best of several repeats."""
import time

import numpy as np


def time_call(fn, repeats=5, min_time=0.05):
    """Time ``fn()``; return ``(first_call_s, best_s)``.

    The first call (JIT compile, buffer allocation, lazy imports) is timed on its own; after one more
    warm-up call each of ``repeats`` repeats runs ``fn`` enough times to last about ``min_time``
    seconds, every call timed on its own, and the fastest call is returned: on a shared machine the
    minimum is the estimate least disturbed by other processes (a mean would charge fastrnn or a peer
    for a time slice it lost to a neighbour).
    """
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    start = time.perf_counter()
    fn()
    one = time.perf_counter() - start
    number = max(1, int(min_time / max(one, 1e-7)))
    best = float("inf")
    for _ in range(repeats):
        for _ in range(number):
            start = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - start)
    return first, best


def sgemm_gflops(threads, n=2048, repeats=5):
    """GFLOP/s of NumPy's float32 ``(n, n) @ (n, n)`` with BLAS limited to ``threads`` threads."""
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n)).astype(np.float32)
    b = rng.standard_normal((n, n)).astype(np.float32)
    out = np.empty((n, n), dtype=np.float32)
    with threadpool_limits(threads, user_api="blas"):
        _, best = time_call(lambda: np.matmul(a, b, out=out), repeats=repeats, min_time=0.0)
    return 2.0 * n ** 3 / best / 1e9


def blas_architecture():
    """The CPU kernel family NumPy's BLAS picked here (e.g. OpenBLAS's ``Haswell`` or ``SkylakeX``), or None."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") == "blas":
            return info.get("architecture")
    return None


def onnxruntime_sgemm_gflops(threads, n=2048, repeats=5):
    """GFLOP/s of ONNX Runtime's float32 ``MatMul`` (its MLAS kernels) on ``(n, n) @ (n, n)`` with
    ``threads`` intra-op threads, or None where ``onnxruntime`` or ``onnx`` is not installed.

    A second measure of the machine's sgemm speed: NumPy's OpenBLAS falls back to its AVX2 kernels on
    CPUs it does not know (an AMD Zen 5 read as ``Haswell`` ran at half the AVX-512 rate), and a
    roofline against that would flatter fastrnn.
    """
    try:
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    shape = [n, n]
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "b"], ["c"])], "sgemm",
        [helper.make_tensor_value_info(name, TensorProto.FLOAT, shape) for name in ("a", "b")],
        [helper.make_tensor_value_info("c", TensorProto.FLOAT, shape)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8  # readable by every onnxruntime the bench extra admits
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    feed = {name: rng.standard_normal(shape).astype(np.float32) for name in ("a", "b")}
    _, best = time_call(lambda: session.run(None, feed), repeats=repeats, min_time=0.0)
    return 2.0 * n ** 3 / best / 1e9


def format_ms(value):
    """Milliseconds for a table: three decimals below 1, two below 100, none above; an em dash for None."""
    if value is None:
        return "—"
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"
