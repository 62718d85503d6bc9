"""A single-threaded float32 GEMM on the 16-row group tile (``_tiles.add_group_columns_times_panels``),
for the driver's products.

The driver runs its GEMMs (input projection, weight and input gradients) on NumPy's BLAS, one part per
Python thread. A BLAS that does not know the CPU falls back to narrower kernels: on an AMD Zen 5,
NumPy's OpenBLAS picked its ``Haswell`` (AVX2) kernels and ran at 105 GFLOP/s per core where the
machine's AVX-512 does about 200. :mod:`fastrnn.kernels._gemm` chooses this product instead there.

One signature per function, compiled when this module is imported (``_gemm`` imports it with SLP
vectorisation on, at the first float32 product): operands of any strides take the generic ``A``
layout, so no later shape or view compiles anything.
"""
import numpy as np
from numba import njit, types

from ._aligned import empty_aligned
from ._tiles import COLUMN_GROUP, PANEL, add_group_columns_times_panels
from ._transpose import BLOCK, copy_row_block, transpose_block
from .config import JIT_OPTIONS, read_only


# Steps of k per block. Where all of B's packed panels fit in L2, or K is short, one block: each row
# block then keeps its sums in registers over all of K. Otherwise blocks whose panels fill at most half of
# L2 (the largest power of two of steps, MIN_K_BLOCK to MAX_K_BLOCK), so that they stay there while every
# row block passes over them (the sums go back to memory after each block) beside the row block and the
# other core's traffic. Measured on a Zen 5, both parts of the driver's split products at once (total
# GFLOP/s, steps per block 64 / 128 / 256 / 512): the large shape's weight gradients (2 x 1024 x 1600 x
# 1025, 65 panels) 340 / 331 / 301 / -, medium's (2 x 512 x 6400 x 513, 33 panels) 307 / 309 / 303 / -,
# infer_batch's (2 x 512 x 51200 x 145, 10 panels) - / 224 / 225 / 231. (A fixed 256 steps, chosen earlier
# from one core alone, left the large shape's block of 1.06 MB spilling out of its 1 MiB L2.) Whole
# training steps, paired against 256 steps: large LSTM 1.05-1.08x faster, GRU 1.01-1.04x, medium and
# infer_batch LSTM within noise (0.99-1.01x).
L2_BYTES_FOR_PANELS = 1 << 20
SHORT_K = 512
MIN_K_BLOCK, MAX_K_BLOCK = 64, 512


@njit("intp(intp, intp)", **JIT_OPTIONS)
def k_block_for(K, panels):
    """Steps of k per block for a product of depth K with ``panels`` packed panels (see above)."""
    panel_step_bytes = panels * PANEL * 4
    if K <= SHORT_K or K * panel_step_bytes <= L2_BYTES_FOR_PANELS:
        return max(1, K)
    block = MAX_K_BLOCK
    while block > MIN_K_BLOCK and block * panel_step_bytes > L2_BYTES_FOR_PANELS // 2:
        block //= 2
    return block


@njit(types.float32[:, :, :, ::1](types.intp, types.intp), **JIT_OPTIONS)
def empty_packed(K, N):
    """An uninitialised (ceil(K / kb), ceil(N / 16), kb, 16) array, kb = :func:`k_block_for`: the layout in
    which :func:`pack_columns` packs a (K, N) float32 operand for :func:`multiply_packed`."""
    panels = -(-N // PANEL)
    kb = k_block_for(K, panels)
    return empty_aligned((-(-K // kb), panels, kb, PANEL), np.empty(0, dtype=np.float32))


@njit(types.void(read_only(types.float32, 2), types.float32[:, :, :, ::1]), **JIT_OPTIONS)
def pack_columns(b, packed):
    """``packed[j, p, k, c] = b[j * kb + k, 16 p + c]`` for b (K, N) of any strides, with zeros past
    column N and past step K.

    packed (ceil(K / kb), ceil(N / 16), kb, 16): per block of ``kb`` steps, the panel layout of ``_tiles``.
    """
    K, N = b.shape
    n_blocks, P, kb = packed.shape[0], packed.shape[1], packed.shape[2]
    rows_contiguous = b.strides[1] == b.itemsize
    for j in range(n_blocks):
        for p in range(P):
            first = p * PANEL
            width = min(PANEL, N - first)
            panel = packed[j, p]
            for k in range(kb):
                step = j * kb + k
                if rows_contiguous and width == PANEL and step < K:
                    # one vector copy: the element loop below stays scalar on strides Numba cannot know
                    # (one core of a Zen 5: the medium shape's 6400 x 513 operands 1.6-2.0 -> 0.72 ms)
                    copy_row_block(panel, k, b, step, first)
                    continue
                row = panel[k]
                filled = width if step < K else 0  # zeros past step K
                for c in range(filled):
                    row[c] = b[step, first + c]
                for c in range(filled, PANEL):
                    row[c] = 0


@njit(types.void(read_only(types.float32, 2), types.intp, types.float32[:, :, ::1]), **JIT_OPTIONS)
def pack_row_blocks(a, k0, columns):
    """``columns[g, k, r] = a[16 g + r, k0 + k]`` for a (M, K) of any strides; zeros past row M and step K.

    columns (ceil(M / 16), kb, 16): each block of 16 rows of ``a``, steps ``k0 .. k0 + kb - 1``, as the
    column tile reads them. ``a`` is read along its memory: by rows, or, for a transposed view (the
    weight gradients' ``d_pre^T``), a step of all rows at a time.
    """
    M, K = a.shape
    n_groups, kb = columns.shape[0], columns.shape[1]
    steps = min(kb, K - k0)
    if steps < kb or M % COLUMN_GROUP:
        columns[:] = 0
    if a.strides[1] == a.itemsize:  # rows: whole 16 x 16 blocks in vector registers (3.0 -> 0.68 ms here
        for g in range(n_groups):    # for the medium shape's 3200 x 1024 input-gradient operand)
            block = columns[g]
            first = g * COLUMN_GROUP
            rows = min(COLUMN_GROUP, M - first)
            whole = steps - steps % BLOCK if rows == COLUMN_GROUP else 0
            for k in range(0, whole, BLOCK):
                transpose_block(block, k, a, first, k0 + k)
            for r in range(rows):
                source = a[first + r, k0:k0 + steps]
                for k in range(whole, steps):
                    block[k, r] = source[k]
    elif a.strides[0] == a.itemsize:  # a transposed view: a step's 16 rows are one vector copy (the small
        steps_by_rows = a.T            # shape's 256 x 1600 weight-gradient operand 0.100 -> 0.051 ms)
        for g in range(n_groups):
            block = columns[g]
            first = g * COLUMN_GROUP
            if first + COLUMN_GROUP <= M:
                for k in range(steps):
                    copy_row_block(block, k, steps_by_rows, k0 + k, first)
            else:
                for k in range(steps):
                    for r in range(M - first):
                        block[k, r] = steps_by_rows[k0 + k, first + r]
    else:
        for k in range(steps):
            source = a[:, k0 + k]
            for g in range(n_groups):
                target = columns[g, k]
                first = g * COLUMN_GROUP
                for r in range(min(COLUMN_GROUP, M - first)):
                    target[r] = source[first + r]


@njit(types.void(read_only(types.float32, 2), types.float32[:, :, :, ::1], types.intp, types.float32[:, :]),
      **JIT_OPTIONS)
def multiply_packed(a, packed, first_panel, out):
    """``out = a @ B[:, 16 first_panel:16 first_panel + N]`` with B packed by :func:`pack_columns`.

    a (M, K) of any strides; packed (KB, P, kb, 16) holding at least ``first_panel + ceil(N / 16)`` panels,
    and zeros past step K; out (M, N) of any strides. For each block of kb steps, the rows of ``a`` are
    packed 16 at a time (:func:`pack_row_blocks`) and each block is multiplied by the step block's panels in
    one column tile; the tiles add into a (M padded to 16, N padded to 16) sum, whose first N columns
    ``out`` receives. (A column range of one packed B serves several products: the GRU n gate's two sides.)
    """
    M, K = a.shape
    N = out.shape[1]
    n_blocks, kb = packed.shape[0], packed.shape[2]
    P = -(-N // PANEL)
    if first_panel < 0 or first_panel + P > packed.shape[1] or n_blocks * kb < K:
        raise ValueError("multiply_packed: the packed operand has fewer panels or steps than the product reads")
    n_groups = -(-M // COLUMN_GROUP)
    columns = np.empty((n_groups, kb, COLUMN_GROUP), dtype=a.dtype)
    total = np.zeros((n_groups * COLUMN_GROUP, P * PANEL), dtype=a.dtype)
    for j in range(n_blocks):
        pack_row_blocks(a, j * kb, columns)
        panels = packed[j][first_panel:first_panel + P]
        for g in range(n_groups):
            add_group_columns_times_panels(total[g * COLUMN_GROUP:(g + 1) * COLUMN_GROUP], columns[g], panels)
    for r in range(M):
        out[r] = total[r, :N]


@njit(types.void(read_only(types.float32, 2), read_only(types.float32, 2), types.float32[:, :]), **JIT_OPTIONS)
def multiply(a, b, out):
    """``out = a @ b`` for a (M, K), b (K, N) and out (M, N) of any strides: ``b`` packed
    (:func:`pack_columns` into :func:`empty_packed`), then :func:`multiply_packed`."""
    packed = empty_packed(b.shape[0], b.shape[1])
    pack_columns(b, packed)
    multiply_packed(a, packed, 0, out)
