"""The recurrent product of one block of batch rows, accumulated in place (no BLAS in threads).

BLAS must not be called inside ``prange`` (OpenBLAS inside an OpenMP region is slow and warns), so
each thread multiplies its own rows by the weights with these loops. Four rows share each weight
load; the innermost loop runs over contiguous weight columns, which LLVM vectorises.
"""
from numba import njit

from .config import JIT_OPTIONS

ROW_BLOCK = 4


@njit(inline="always", **JIT_OPTIONS)
def add_rows_times_matrix(acc, vectors, row0, rows, matrix):
    """``acc[r, :] += vectors[row0 + r, :] @ matrix`` for ``r < rows`` (``rows <= ROW_BLOCK``).

    acc (ROW_BLOCK, N); vectors (B, K); matrix (K, N) C-contiguous.
    """
    K, N = matrix.shape
    if rows == ROW_BLOCK:
        for k in range(K):
            v0 = vectors[row0, k]
            v1 = vectors[row0 + 1, k]
            v2 = vectors[row0 + 2, k]
            v3 = vectors[row0 + 3, k]
            w = matrix[k]
            a0, a1, a2, a3 = acc[0], acc[1], acc[2], acc[3]
            for j in range(N):
                wj = w[j]
                a0[j] += v0 * wj
                a1[j] += v1 * wj
                a2[j] += v2 * wj
                a3[j] += v3 * wj
    else:
        for r in range(rows):
            a = acc[r]
            for k in range(K):
                v = vectors[row0 + r, k]
                w = matrix[k]
                for j in range(N):
                    a[j] += v * w[j]
