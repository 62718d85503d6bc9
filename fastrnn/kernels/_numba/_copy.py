"""Row copies for the kernels, as plain loops in their own small compiled functions.

Slice assignment (``a[:, :I] = b``) is general broadcasting code that Numba types and lowers anew
at every use; in the time-loop kernels that roughly doubled compile time. These compile once per
signature and are shared.
"""
from numba import njit, prange, types

from ._tiles import PANEL, SAME_L1_SET_BYTES
from ._transpose import BLOCK, copy_row_block, transpose_block
from .config import JIT_OPTIONS, PARALLEL_OPTIONS, read_only


@njit(**JIT_OPTIONS)
def copy_row(dst, src):
    """``dst[:n] = src[:n]`` with ``n = len(src)`` (1-D arrays)."""
    for j in range(src.shape[0]):
        dst[j] = src[j]


@njit(**JIT_OPTIONS)
def copy_rows(dst, col0, src):
    """``dst[r, col0:col0 + m] = src[r, :]`` for every row of ``src`` (m, the columns of ``src``)."""
    for r in range(src.shape[0]):
        d, s = dst[r], src[r]
        for j in range(s.shape[0]):
            d[col0 + j] = s[j]


@njit(inline="always", **JIT_OPTIONS)
def gather_other_units(vector, row, h_col, u0, u1):
    """``vector[:H - (u1 - u0)]`` = the hidden units of ``row`` (H of them from ``h_col`` on) outside
    ``[u0, u1)``, in order: what a column-split part multiplies by its late panels."""
    H = row.shape[0] - h_col
    for j in range(u0):
        vector[j] = row[h_col + j]
    for j in range(u1, H):
        vector[j - (u1 - u0)] = row[h_col + j]


@njit(**JIT_OPTIONS)
def fill_rows(dst, rows, src):
    """``dst[r, :len(src)] = src`` for ``r < rows``."""
    for r in range(rows):
        d = dst[r]
        for j in range(src.shape[0]):
            d[j] = src[j]


@njit(**JIT_OPTIONS)
def zero_rows(dst, rows):
    """``dst[:rows] = 0``."""
    for r in range(rows):
        d = dst[r]
        for j in range(d.shape[0]):
            d[j] = 0


@njit(**JIT_OPTIONS)
def pack_unit_group(packed, w, col0, group, n_groups):
    """Pack hidden-unit group ``group``'s rows of ``w`` into the 16-column panels the tiles read.

    ``w`` (n_gates * H, K) as stored (gate-major, H = 16 * n_groups); ``packed`` (n_gates * n_groups,
    >= col0 + K, 16): ``packed[q * n_groups + group, col0 + k, c] = w[q * H + 16 * group + c, k]`` for
    every gate ``q`` (the layout of ``_driver.pack_panels``, one group's share of it).

    Both C-contiguous. Whole 16 x 16 blocks go through :func:`._transpose.transpose_block` (3.5x the
    scalar copy's speed); the last ``K % 16`` columns of ``w`` are copied one panel row at a time, each
    written whole from a strided read of 16 weight rows (writing one value per panel row instead took
    twice as long).
    """
    n_gates = packed.shape[0] // n_groups
    H = 16 * n_groups
    for q in range(n_gates):
        pack_panel_rows(packed[q * n_groups + group], col0, w, q * H + 16 * group, 0, w.shape[1])


@njit(**JIT_OPTIONS)
def pack_panel_rows(panel, dst_row0, w, row0, k0, k1):
    """``panel[dst_row0 + k - k0, c] = w[row0 + c, k]`` for ``k0 <= k < k1`` and ``c < 16``: columns ``k0 .. k1``
    of 16 rows of ``w`` (C-contiguous), transposed into rows of one panel (2-D, C-contiguous)."""
    whole = k0 + (k1 - k0) // BLOCK * BLOCK
    for k in range(k0, whole, BLOCK):
        transpose_block(panel, dst_row0 + k - k0, w, row0, k)
    rows = w[row0:row0 + 16]
    for k in range(whole, k1):
        dst = panel[dst_row0 + k - k0]
        for c in range(16):
            dst[c] = rows[c, k]


@njit(**JIT_OPTIONS)
def pack_block(block, packed, offset):
    """``packed[n // 16, offset + k, n % 16] = block[n, k]``: ``_driver.pack_panels``'s packing loop for a
    C-contiguous ``block`` (N, K) into ``packed`` (ceil(N / 16), >= offset + K, 16), C-contiguous too.

    Whole 16 x 16 blocks through :func:`._transpose.transpose_block`, the rest element by element
    (the large shape's 8 MB of LSTM weights: 0.19 ms on one core of a Zen 5, 0.61 with the Cython
    loop, which reads 16 rows side by side one element at a time).
    """
    N, K = block.shape
    full_panels, whole = N // PANEL, K - K % BLOCK
    for p in range(full_panels):
        panel = packed[p]
        for k0 in range(0, whole, BLOCK):
            transpose_block(panel, offset + k0, block, PANEL * p, k0)
        for k in range(whole, K):
            for c in range(PANEL):
                panel[offset + k, c] = block[PANEL * p + c, k]
    for p in range(full_panels, -(-N // PANEL)):
        for k in range(K):
            for c in range(N - PANEL * p):
                packed[p, offset + k, c] = block[PANEL * p + c, k]


@njit(**JIT_OPTIONS)
def pack_strided_block(block, packed, offset):
    """:func:`pack_block` for ``block`` (N, K) of any strides: through its transpose where rows are
    contiguous, as 16-value vector copies where columns are (a transposed view such as ``W_hh.T``, whose
    panels are runs of its memory), else element by element."""
    N, K = block.shape
    if block.strides[1] == block.itemsize:
        pack_block(block, packed, offset)
        return
    full_panels = N // PANEL
    if block.strides[0] == block.itemsize:
        columns = block.T
        for p in range(full_panels):
            panel = packed[p]
            for k in range(K):
                copy_row_block(panel, offset + k, columns, k, PANEL * p)
    else:
        full_panels = 0
    for p in range(full_panels, -(-N // PANEL)):
        for k in range(K):
            for c in range(min(PANEL, N - PANEL * p)):
                packed[p, offset + k, c] = block[PANEL * p + c, k]


@njit([types.void(read_only(dtype, 2), read_only(dtype, 2), dtype[:, :, ::1], types.intp)
       for dtype in (types.float32, types.float64)], **PARALLEL_OPTIONS)
def pack_panels_in_parts(first, second, packed, parts):
    """``_driver.pack_panels`` of the blocks ``[first | second]`` (N, K1) and (N, K2), any strides (K2 may
    be 0), into ``packed`` (ceil(N / 16), K1 + K2, 16), a range of panels per part, on the OpenMP threads:
    Python helper threads lost a core to the workers still spinning after the kernel before (the large
    shape's packing took 1.1 ms of a training step against 0.2-0.4 alone)."""
    P = packed.shape[0]
    for k in prange(parts):
        p0, p1 = k * P // parts, (k + 1) * P // parts
        pack_strided_block(first[p0 * PANEL:p1 * PANEL], packed[p0:p1], 0)
        if second.shape[1]:
            pack_strided_block(second[p0 * PANEL:p1 * PANEL], packed[p0:p1], first.shape[1])


@njit(**JIT_OPTIONS)
def pack_unit_group_bias(packed, bias, group):
    """Put hidden-unit group ``group``'s biases side by side: ``packed[group, 16 * q + c] = bias[q * H + 16 *
    group + c]`` for every gate ``q``, where ``bias`` is (n_gates * H,), gate-major, and ``packed`` (H / 16,
    n_gates * 16): one copy then starts a step's accumulators for the group's panels
    (:func:`pack_unit_group`'s gate order)."""
    n_gates = packed.shape[1] // PANEL
    H = bias.shape[0] // n_gates
    row = packed[group]
    for q in range(n_gates):
        for c in range(PANEL):
            row[q * PANEL + c] = bias[q * H + PANEL * group + c]


@njit(**JIT_OPTIONS)
def padded_row_length(length, itemsize):
    """Elements per row of a work array whose rows hold ``length`` values and feed the group tile: one
    panel more where ``length`` values are a multiple of 4 KiB, so that the tile's 16 reads of a step do
    not all fall in one L1 set (see ``_tiles.add_rows_times_panels``)."""
    return length + (PANEL if (length * itemsize) % SAME_L1_SET_BYTES == 0 else 0)
