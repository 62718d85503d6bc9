"""Let LLVM use the full 512-bit vectors on AVX-512 CPUs whose tuning prefers 256 bits.

LLVM's tuning for Intel's AVX-512 cores (Skylake-SP to Sapphire Rapids) sets ``prefer-256-bit``: its
vectorisers then stop at ``ymm`` registers and the register tiles in ``_tiles`` run at half the
machine's FMA width. Measured on a 2-core Intel Xeon with AVX-512 (paired A/B, 2 threads, numba
backend, median time with the preference turned off over time with LLVM's default): small LSTM
inference 0.88, small GRU 0.92, medium GRU 0.91, infer_batch LSTM 0.89, medium LSTM training 0.95,
small GRU training 0.94, large ~1.0 (bound by the weight stream), latency_b1 0.94-1.11 over repeated
runs (noise). AMD's Zen 4 runs a 512-bit operation as two 256-bit halves, so little is expected there
(not measured); CPUs without AVX-512 are left alone.

The features are fixed when Numba builds its code generator, on the process's first ``@njit``, and
apply to every Numba function in the process. So this runs before fastrnn's kernels are defined, and
only if nothing has built that generator yet and the user has not chosen ``NUMBA_CPU_NAME`` or
``NUMBA_CPU_FEATURES`` (then fastrnn keeps their choice; its kernels still work, on ``ymm``).
``FASTRNN_PREFER_256_BIT=1`` keeps LLVM's default. The compiled code's cache key includes the
features, so the on-disk cache keeps the two builds apart.
"""
import os

import llvmlite.binding as llvm
from numba.core import config, registry

PREFER_256 = "prefer-256-bit"


def _code_generator_built():
    return "_toplevel_target_context" in vars(registry.cpu_target)


def use_full_width_vectors():
    """Add ``-prefer-256-bit`` to Numba's CPU features when that widens the vectors here and is still
    possible; return whether Numba's features now allow 512-bit vectors by preference."""
    if config.CPU_FEATURES is not None:
        return f"-{PREFER_256}" in config.CPU_FEATURES.split(",")
    if (os.environ.get("FASTRNN_PREFER_256_BIT") == "1" or config.CPU_NAME is not None
            or not config.ENABLE_AVX or _code_generator_built()):
        return False
    try:
        features = llvm.get_host_cpu_features()
    except RuntimeError:  # no feature map on this platform: leave Numba's default
        return False
    if not features.get("avx512f"):
        return False
    config.CPU_FEATURES = f"{features.flatten()},-{PREFER_256}"
    return True


FULL_WIDTH_VECTORS = use_full_width_vectors()


def describe():
    """One line for ``fastrnn info``: the vector width Numba's code may use here, and why."""
    if FULL_WIDTH_VECTORS:
        return "512-bit (LLVM's prefer-256-bit tuning turned off)"
    return "LLVM's default for this CPU"
