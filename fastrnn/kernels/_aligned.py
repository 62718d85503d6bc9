"""NumPy arrays whose data start on a cache line, for the packed weight panels (the driver's side of
``_numba._aligned``, which says what it is worth): NumPy aligns to 16 bytes only."""
import numpy as np

CACHE_LINE = 64  # bytes


def empty_aligned(shape, dtype):
    """``np.empty(shape, dtype)``, C-contiguous, its first element at a multiple of ``CACHE_LINE`` bytes."""
    dtype = np.dtype(dtype)
    size = int(np.prod(shape, dtype=np.int64))
    buffer = np.empty(size * dtype.itemsize + CACHE_LINE, dtype=np.uint8)
    start = -buffer.ctypes.data % CACHE_LINE
    return buffer[start:start + size * dtype.itemsize].view(dtype).reshape(shape)
