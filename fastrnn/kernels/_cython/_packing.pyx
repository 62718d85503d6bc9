# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Weight packing for the kernels' tiles, compiled: :func:`fastrnn.kernels._driver.pack_panels` calls
it for every kernel call, where NumPy's transposing copy cost 60 us for an H=128 LSTM (more than the
rest of a one-step call)."""
from cython cimport floating


def pack_block(const floating[:, :] block, floating[:, :, ::1] packed, Py_ssize_t offset):
    """Write ``block`` (N, K), any strides, transposed into ``packed`` (ceil(N/16), K_total, 16) at
    columns ``offset:offset+K``: ``packed[n // 16, offset + k, n % 16] = block[n, k]``."""
    cdef Py_ssize_t N = block.shape[0], K = block.shape[1], n, k, c, p, rows
    if packed.shape[2] != 16 or packed.shape[0] * 16 < N or offset + K > packed.shape[1]:
        raise ValueError("packed has the wrong shape for this block")
    with nogil:
        # Panel by panel, column by column: the 16 writes of a packed row are contiguous, and the
        # reads walk 16 rows of the block side by side.
        for p in range((N + 15) // 16):
            rows = min(16, N - 16 * p)
            for k in range(K):
                for c in range(rows):
                    packed[p, offset + k, c] = block[16 * p + c, k]
