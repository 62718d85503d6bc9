"""The driver's matrix products: NumPy's BLAS, or fastrnn's own GEMM where that BLAS is narrower.

OpenBLAS picks its kernels by the CPU it recognises; on one it does not know it falls back to older
ones. NumPy's OpenBLAS read an AMD Zen 5 as ``Haswell`` and ran AVX2 kernels: 105 GFLOP/s per core,
against about 200 for AVX-512 code on that machine (ONNX Runtime's MLAS; OpenBLAS's own ``SkylakeX``
kernels when forced with ``OPENBLAS_CORETYPE``). Where Numba's code uses 512-bit vectors and NumPy's
OpenBLAS runs kernels without AVX-512, float32 products go to :mod:`fastrnn.kernels._numba.gemm`
instead: the driver's products of the large, medium and infer_batch shapes ran there at 115-165
GFLOP/s per core, packing included, against 95-105 on that BLAS. Paired training steps, 2 threads
(median time ratio, this GEMM over the BLAS; measured while the large shape's inputs were still
projected before the time loop, which that shape's inference then gained 0.84-0.89 from): large LSTM
and GRU 0.89 and 0.84, medium 0.92 and 0.94, infer_batch 0.93 and 1.06 (the GRU's a loss).
``FASTRNN_GEMM=blas`` or ``=numba`` forces the choice.
"""
import os
import threading

import numpy as np

# OpenBLAS kernel families (threadpoolctl's "architecture") that use AVX-512.
AVX512_OPENBLAS_KERNELS = {"skylakex", "cooperlake", "sapphirerapids"}
MIN_ROWS = 16  # fewer rows than a tile's 16 pad the tile more than they fill it: BLAS then
# Thin products stay on the BLAS too: every element of ``a`` is copied into the tile's layout once, for
# only 2N FLOPs of work, and a second panel less than half full is mostly padding. One core of a Zen 5,
# BLAS time over this GEMM's: N = 17-24 0.97-1.02, N = 25 1.06-1.20, N = 32 1.29-1.37, N = 73 1.39-1.47.
MIN_COLUMNS = 25
# Below this many FLOPs the packing and the calls cost more than the faster tile saves (same machine: a
# 0.64 MFLOP weight gradient 0.87, 1.3 MFLOP 1.06, 1.9-3.7 MFLOP 1.08-1.20, the small shape's 60 MFLOP
# parts 1.39).
MIN_FLOPS = 1.5e6

_choice = []  # [bool] once decided: whether float32 products use the Numba GEMM
_gemm_module = []  # [gemm module, gradients module] once imported
_compile_lock = threading.Lock()


def blas_is_narrower():
    """Whether NumPy's BLAS is OpenBLAS running kernels without AVX-512 while Numba's code here uses
    512-bit vectors."""
    from ._numba._vector_width import FULL_WIDTH_VECTORS

    if not FULL_WIDTH_VECTORS:
        return False
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return False
    for info in threadpool_info():
        if info.get("user_api") == "blas" and info.get("internal_api") == "openblas":
            architecture = (info.get("architecture") or "").lower()
            return bool(architecture) and architecture not in AVX512_OPENBLAS_KERNELS
    return False


def uses_numba_gemm():
    """Whether float32 products run on the Numba GEMM (decided once per process)."""
    if not _choice:
        forced = os.environ.get("FASTRNN_GEMM", "").lower()
        if forced in ("blas", "numba"):
            use = forced == "numba"
        else:
            try:
                use = blas_is_narrower()
            except ImportError:  # no Numba: the BLAS it is
                use = False
        _choice.append(use)
    return _choice[0]


def describe():
    """One line for ``fastrnn info``: which code runs the driver's float32 GEMMs, and why."""
    if uses_numba_gemm():
        return "fastrnn's Numba GEMM (NumPy's BLAS runs narrower vectors here)"
    return "NumPy's BLAS"


def _numba_gemm():
    """The module :mod:`._numba.gemm`, imported (its one signature per function compiled, or loaded from
    Numba's cache) with LLVM's SLP vectoriser on: the register tile becomes packed FMAs only with it
    (see ``_numba.__init__``), and so does :mod:`._numba.gradients`, which calls it and is imported with
    it. The products run on several Python threads, so under a lock."""
    if not _gemm_module:
        with _compile_lock:
            if not _gemm_module:
                import numba

                previous = numba.config.SLP_VECTORIZE
                numba.config.SLP_VECTORIZE = 1
                try:
                    from ._numba import gemm, gradients
                finally:
                    numba.config.SLP_VECTORIZE = previous
                _gemm_module.extend((gemm, gradients))
    return _gemm_module[0]


def numba_gradients():
    """The module :mod:`._numba.gradients` where float32 products run on the Numba GEMM, else None (also in
    a child forked after OpenMP threads started, where its parallel kernels cannot run)."""
    from . import numba_parallel_usable  # the package imports this module: imported at call time

    if not uses_numba_gemm() or not numba_parallel_usable():
        return None
    _numba_gemm()
    return _gemm_module[1]


def _numba_matmul(a, b, out):
    target = np.empty((a.shape[0], b.shape[1]), dtype=np.float32) if out is None else out
    _numba_gemm().multiply(a, b, target)
    return target


def matmul(a, b, out=None):
    """``a @ b`` for 2-D ``a`` (M, K) and ``b`` (K, N) of any strides, into ``out`` (M, N) if given;
    returns the product. float32 on the Numba GEMM where :func:`uses_numba_gemm`, else ``np.matmul``."""
    if (a.dtype == np.float32 and b.dtype == np.float32 and (out is None or out.dtype == np.float32)
            and a.ndim == b.ndim == 2 and uses_numba_gemm()):
        # compiled with the first float32 product of any size (a small training step's), so that a
        # later, larger shape compiles nothing
        _numba_gemm()
        if (a.shape[0] >= MIN_ROWS and b.shape[1] >= MIN_COLUMNS
                and 2.0 * a.shape[0] * a.shape[1] * b.shape[1] >= MIN_FLOPS):
            return _numba_matmul(a, b, out)
    return np.matmul(a, b, out=out)
