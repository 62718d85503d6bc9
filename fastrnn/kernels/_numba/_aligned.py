"""Arrays whose data start on a cache line, for the weight panels the register tiles load.

Numba's ``np.empty`` aligns to 32 bytes and NumPy's to 16; a 64-byte panel row (16 float32) that starts
elsewhere spans two cache lines, and every such load costs two. One core of an Intel Ice Lake, the
group tile (``_tiles.add_group_times_panels``, 16 rows), panels at a 64-byte boundary against 16 or 32
bytes past one, interleaved runs (K x N, GFLOP/s): 320 x 1024 125 against 94-96, 512 x 1024 110 against
87, 1024 x 2048 92 against 74-76, 144 x 512 133 against 105.
"""
import numpy as np
from numba import njit

from .._aligned import CACHE_LINE
from .config import JIT_OPTIONS


@njit(**JIT_OPTIONS)
def empty_aligned(shape, like):
    """``np.empty(shape, like.dtype)``, C-contiguous, its first element at a multiple of ``CACHE_LINE`` bytes."""
    size = 1
    for extent in shape:
        size *= extent
    spare = CACHE_LINE // like.itemsize
    buffer = np.empty(size + spare, dtype=like.dtype)
    start = (-buffer.ctypes.data) % CACHE_LINE // like.itemsize
    return buffer[start:start + size].reshape(shape)
