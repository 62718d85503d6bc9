"""Compilation settings shared by every Numba kernel, in one place."""
from numba import types

# fastmath lets LLVM vectorise the gate loops and fuse multiply-adds; error_model="numpy" removes the
# zero-division branch Numba otherwise puts on every float division (it blocks vectorisation).
JIT_OPTIONS = dict(nogil=True, cache=True, fastmath=True, error_model="numpy")
PARALLEL_OPTIONS = dict(JIT_OPTIONS, parallel=True)
# The register tiles leave out ``reassoc``: with it LLVM may vectorise a tile's k loop as a reduction
# instead of packing its columns, and on AVX-512 CPUs (znver4) it did, spilling the 64 accumulators
# to the stack (7 instead of ~110 GFLOP/s per core, measured). Without it the only vector form is the columns'.
TILE_OPTIONS = dict(JIT_OPTIONS, fastmath={"contract", "nnan", "ninf", "nsz", "arcp", "afn"})


def read_only(dtype, ndim, layout="A"):
    """The Numba type of an array argument that a function with explicit signatures only reads: writable
    arrays convert to it, and read-only ones (a memory-mapped model's weights) match it too, where a
    writable array type would reject them."""
    return types.Array(dtype, ndim, layout, readonly=True)
