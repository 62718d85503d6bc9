"""The weight and input gradient products after a backward time loop, as one parallel loop on the
OpenMP threads (float32, where :mod:`fastrnn.kernels._gemm` runs products on :mod:`.gemm`).

The driver's other way runs its parts on Python threads (:mod:`fastrnn.kernels._split_gemm`). Right
after the backward kernel, though, the OpenMP workers still spin for a while (``_openmp``: fastrnn's
short spin), and on two cores one of them took a core from those threads: the small LSTM's weight
gradients 0.49 ms alone, 0.71 ms after a kernel (Zen 5). Here the spinning workers run the parts.

Each part has a block of steps, a block of gate rows, and a block of (step, row) pairs for the input
gradient; :func:`fastrnn.kernels._driver.weight_and_input_gradients` says which of these the parts split
and which they share. The operands ``[x_t | 1 | h_{t-1}]`` are packed into the GEMM's panels straight from
the batch-first arrays, by each part for its own steps, or, where the parts share all steps, once by all
threads first (:func:`pack_gradient_operands_in_parts`; each part packed all of them before).

Compile time: a function that calls the GEMM re-optimises the tile code it links, so this module takes
~8 s to compile on a cold cache (Numba's cache then loads it in ~0.02 s).
"""
import numpy as np
from numba import njit, prange, types

from ._tiles import PANEL
from .config import JIT_OPTIONS, PARALLEL_OPTIONS, read_only
from .gemm import empty_packed, multiply, multiply_packed

# The operands only read (read-only types: a memory-mapped model's weights match them too)
_STATES = read_only(types.float32, 3, "C")  # x (B, T, I), out (B, T, H): batch-first
_INITIAL = read_only(types.float32, 2, "C")  # h0 (B, H)
_MATRIX = read_only(types.float32, 2)  # d2, tail2, w_ih


_PACKED = types.float32[:, :, :, ::1]  # (KB, P, kb, 16): gemm.pack_columns' layout


@njit(types.void(_STATES, _STATES, _INITIAL, types.intp, types.intp, types.intp, types.intp, types.intp, _PACKED),
      **JIT_OPTIONS)
def pack_gradient_operands(x, out, h0, first_step, stop_step, first_column, row0, row1, packed):
    """Rows ``row0 <= r < row1`` of the operands ``[x_t | 1 | h_{t-1}]`` of steps ``first_step .. stop_step - 1``,
    packed as :func:`.gemm.pack_columns` packs them: ``packed[r // kb, p, r % kb, c] = operands[r, first_column +
    16 p + c]``, where row ``r`` is batch row ``r % B`` at step ``first_step + r // B``, ``h_{t-1} = out[b, t-1]``
    and ``h_{-1} = h0[b]``; zeros past the I + 1 + H columns and past the steps' rows.

    x (B, T, I), out (B, T, H): batch-first and C-contiguous, so each row copy is vector code; h0 (B, H).
    Built straight from those arrays: no unpacked operands in between.
    """
    B, I = x.shape[0], x.shape[2]
    H = out.shape[2]
    width = I + 1 + H
    P, kb = packed.shape[1], packed.shape[2]
    rows = (stop_step - first_step) * B
    row = np.zeros(max(width, first_column + P * PANEL), dtype=packed.dtype)  # zeros past width stay
    inputs, states = row[:I], row[I + 1:width]  # (slices: an offset index would be wrapped, scalar code)
    row[I] = 1
    for r in range(row0, row1):
        if r < rows:
            t, b = first_step + r // B, r % B
            source = x[b, t]
            for i in range(I):
                inputs[i] = source[i]
            state = out[b, t - 1] if t > 0 else h0[b]
            for j in range(H):
                states[j] = state[j]
        block, k = r // kb, r % kb
        for p in range(P):
            target = packed[block, p, k]
            if r < rows:
                chunk = row[first_column + p * PANEL:first_column + (p + 1) * PANEL]
                for c in range(PANEL):
                    target[c] = chunk[c]
            else:
                for c in range(PANEL):
                    target[c] = 0


@njit(types.void(_STATES, _STATES, _INITIAL, _PACKED, types.intp), **PARALLEL_OPTIONS)
def pack_gradient_operands_in_parts(x, out, h0, packed, parts):
    """:func:`pack_gradient_operands` of all steps' operands, a block of ``packed``'s step blocks per thread
    (for parts that split the gate rows: each reads all the steps, from this one packing)."""
    T = x.shape[1]
    n_blocks, kb = packed.shape[0], packed.shape[2]
    for k in prange(parts):
        first, stop = k * n_blocks // parts, (k + 1) * n_blocks // parts
        pack_gradient_operands(x, out, h0, 0, T, 0, first * kb, stop * kb, packed)


@njit(types.void(_MATRIX, _MATRIX, _STATES, _STATES, _INITIAL, _PACKED, types.intp[:, ::1], types.intp[:, ::1],
                 types.intp[:, ::1], types.intp, types.float32[:, :, ::1], types.float32[:, ::1], _MATRIX,
                 types.float32[:, ::1]), **PARALLEL_OPTIONS)
def gradient_parts(d2, tail2, x, out, h0, shared_packed, steps, gate_rows, input_rows, split, merged, gb_hh,
                   w_ih, grad_x):
    """Part k of ``len(steps)``, one per thread, computes (each range a ``(start, stop)`` row of its array):

    - for steps ``steps[k]`` and gate rows ``gate_rows[k]`` (two ranges: ``[0]:[1]`` of the rows the two
      sides share, below ``split``, and ``[2]:[3]`` of GRU's n gate, at or above it), ``[gW_ih | gb_ih | gW_hh]``
      into ``merged[k]`` (or ``merged[0]`` when it has one slot: the parts split the gate rows) and ``gb_hh``
      likewise;
    - ``grad_x`` for the (step, row) pairs ``input_rows[k]`` (when ``grad_x`` has rows).

    d2 (T*B, G) the gradient at the pre-activations, time-major; its first ``split`` columns are shared by
    the two sides, the rest (GRU's n gate) is the recurrent side's, whose input side is ``tail2``
    (T*B, G - split; no columns otherwise). x (B, T, I), out (B, T, H), h0 (B, H) as
    :func:`pack_gradient_operands` takes them; shared_packed all steps' operands packed already (for parts
    that split the gate rows: each reads all steps), or no blocks (each part packs its own steps').
    merged (slots, G, I+1+H), gb_hh (slots, G); w_ih (G, I); grad_x (T*B, I) or no rows.

    One packing of the operands serves every product of a part: the n gate's input side reads its first
    panels (``[x | 1]``, the extra columns dropped), and its recurrent side (``[1 | h]``) the panels from
    column I on where I is a multiple of 16 (else a packing of its own).
    """
    B, I = x.shape[0], x.shape[2]
    H = out.shape[2]
    G = d2.shape[1]
    for k in prange(steps.shape[0]):
        slot = np.intp(k) if merged.shape[0] > 1 else 0  # (a prange index is unsigned: mixed, a float)
        first, stop = steps[k, 0], steps[k, 1]
        if shared_packed.shape[0]:
            packed = shared_packed
        else:
            packed = empty_packed((stop - first) * B, I + 1 + H)
            pack_gradient_operands(x, out, h0, first, stop, 0, 0, packed.shape[0] * packed.shape[2], packed)
        d_rows = d2[first * B:stop * B]
        a, b = gate_rows[k, 0], gate_rows[k, 1]
        if b > a:
            multiply_packed(d_rows[:, a:b].T, packed, 0, merged[slot, a:b])
            for j in range(a, b):
                gb_hh[slot, j] = merged[slot, j, I]
        n0, n1 = gate_rows[k, 2], gate_rows[k, 3]
        if n1 > n0:  # GRU's n gate: each side has its own gradient
            recurrent = np.empty((n1 - n0, H + 1), dtype=d2.dtype)
            if I % PANEL == 0:
                multiply_packed(d_rows[:, n0:n1].T, packed, I // PANEL, recurrent)
            else:
                shifted = empty_packed((stop - first) * B, H + 1)
                pack_gradient_operands(x, out, h0, first, stop, I, 0, shifted.shape[0] * shifted.shape[2], shifted)
                multiply_packed(d_rows[:, n0:n1].T, shifted, 0, recurrent)
            input_side = np.empty((n1 - n0, I + 1), dtype=d2.dtype)
            multiply_packed(tail2[first * B:stop * B, n0 - split:n1 - split].T, packed, 0, input_side)
            for j in range(n0, n1):
                gb_hh[slot, j] = recurrent[j - n0, 0]
                merged[slot, j, I + 1:] = recurrent[j - n0, 1:]
                merged[slot, j, :I + 1] = input_side[j - n0]
        if grad_x.shape[0]:
            r0, r1 = input_rows[k, 0], input_rows[k, 1]
            multiply(d2[r0:r1, :split], w_ih[:split], grad_x[r0:r1])
            if split < G:
                tail_product = np.empty((r1 - r0, I), dtype=d2.dtype)
                multiply(tail2[r0:r1], w_ih[split:], tail_product)
                grad_x[r0:r1] += tail_product
