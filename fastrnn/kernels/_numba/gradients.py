"""The weight and input gradient products after a backward time loop, as one parallel loop on the
OpenMP threads (float32, where :mod:`fastrnn.kernels._gemm` runs products on :mod:`.gemm`).

The driver's other way runs its parts on Python threads (:mod:`fastrnn.kernels._split_gemm`). Right
after the backward kernel, though, the OpenMP workers still spin for a while (``_openmp``: fastrnn's
short spin), and on two cores one of them took a core from those threads: the small LSTM's weight
gradients 0.49 ms alone, 0.71 ms after a kernel (Zen 5). Here the spinning workers run the parts.

Each part has a block of steps, a block of gate rows, and a block of (step, row) pairs for the input
gradient; :func:`fastrnn.kernels._driver.weight_and_input_gradients` says which of these the parts split
and which they share. The operands ``[x_t | 1 | h_{t-1}]`` are built by each part for its own steps, or,
where the parts share all steps, by all threads first (:func:`fill_gradient_operands_in_parts`).

Compile time: a function that calls the GEMM re-optimises the tile code it links, so this module takes
~8 s to compile on a cold cache (Numba's cache then loads it in ~0.02 s).
"""
import numpy as np
from numba import njit, prange, types

from .config import JIT_OPTIONS, PARALLEL_OPTIONS, read_only
from .gemm import multiply

# The operands only read (read-only types: a memory-mapped model's weights match them too)
_STATES = read_only(types.float32, 3, "C")  # x (B, T, I), out (B, T, H): batch-first
_INITIAL = read_only(types.float32, 2, "C")  # h0 (B, H)
_MATRIX = read_only(types.float32, 2)  # d2, tail2, w_ih


@njit(types.void(_STATES, _STATES, _INITIAL, types.intp, types.intp, types.float32[:, ::1]), **JIT_OPTIONS)
def fill_gradient_operands(x, out, h0, first, stop, operands):
    """``operands[(t - first) * B + b] = [x[b, t] | 1 | h_{t-1}[b]]`` for steps ``first <= t < stop``, with
    ``h_{t-1} = out[b, t-1]`` and ``h_{-1} = h0[b]``. x (B, T, I), out (B, T, H): batch-first and
    C-contiguous, so each row copy is vector code; h0 (B, H); operands ((stop - first) * B, I + 1 + H)."""
    B, I = x.shape[0], x.shape[2]
    H = out.shape[2]
    for t in range(first, stop):
        for b in range(B):
            row = operands[(t - first) * B + b]
            inputs, states = row[:I], row[I + 1:]  # (slices: an offset index would be wrapped, scalar code)
            source = x[b, t]
            for i in range(I):
                inputs[i] = source[i]
            row[I] = 1
            state = out[b, t - 1] if t > 0 else h0[b]
            for j in range(H):
                states[j] = state[j]


@njit(types.void(_STATES, _STATES, _INITIAL, types.float32[:, ::1], types.intp), **PARALLEL_OPTIONS)
def fill_gradient_operands_in_parts(x, out, h0, operands, parts):
    """:func:`fill_gradient_operands` of all steps, a block of steps per thread (for parts that split the
    gate rows and each read all the steps: in NumPy, on one thread, 1.9 ms of a medium LSTM's step)."""
    B, T = x.shape[0], x.shape[1]
    for k in prange(parts):
        first, stop = k * T // parts, (k + 1) * T // parts
        fill_gradient_operands(x, out, h0, first, stop, operands[first * B:stop * B])


@njit(types.void(_MATRIX, _MATRIX, _STATES, _STATES, _INITIAL, read_only(types.float32, 2, "C"),
                 types.intp[:, ::1], types.intp[:, ::1], types.intp[:, ::1], types.intp, types.float32[:, :, ::1],
                 types.float32[:, ::1], _MATRIX, types.float32[:, ::1]), **PARALLEL_OPTIONS)
def gradient_parts(d2, tail2, x, out, h0, shared_operands, steps, gate_rows, input_rows, split, merged, gb_hh,
                   w_ih, grad_x):
    """Part k of ``len(steps)``, one per thread, computes (each range a ``(start, stop)`` row of its array):

    - for gate rows ``gate_rows[k]`` and steps ``steps[k]``, ``[gW_ih | gb_ih | gW_hh]`` into ``merged[k]``
      (or ``merged[0]`` when it has one slot: the parts split the gate rows) and ``gb_hh`` likewise;
    - ``grad_x`` for the (step, row) pairs ``input_rows[k]`` (when ``grad_x`` has rows).

    d2 (T*B, G) the gradient at the pre-activations, time-major; its first ``split`` columns are shared by
    the two sides, the rest (GRU's n gate) is the recurrent side's, whose input side is ``tail2``
    (T*B, G - split; no columns otherwise). x (B, T, I), out (B, T, H), h0 (B, H) as
    :func:`fill_gradient_operands` takes them; shared_operands (T*B, I+1+H) those operands built already (for parts
    that split the gate rows: each reads all steps), or no rows (each part builds its own steps').
    merged (slots, G, I+1+H), gb_hh (slots, G); w_ih (G, I); grad_x (T*B, I) or no rows.
    """
    B, I = x.shape[0], x.shape[2]
    H = out.shape[2]
    G = d2.shape[1]
    for k in prange(steps.shape[0]):
        slot = np.intp(k) if merged.shape[0] > 1 else 0  # (a prange index is unsigned: mixed, a float)
        first, stop = steps[k, 0], steps[k, 1]
        if shared_operands.shape[0]:
            operands = shared_operands[first * B:stop * B]
        else:
            own = np.empty(((stop - first) * B, I + 1 + H), dtype=d2.dtype)
            fill_gradient_operands(x, out, h0, first, stop, own)
            operands = own
        d_rows = d2[first * B:stop * B]
        a, b = gate_rows[k, 0], gate_rows[k, 1]
        if a < split:
            c = min(b, split)
            multiply(d_rows[:, a:c].T, operands, merged[slot, a:c])
            for j in range(a, c):
                gb_hh[slot, j] = merged[slot, j, I]
        if b > split:  # GRU's n gate: each side has its own gradient
            own = max(a, split)
            recurrent = np.empty((b - own, H + 1), dtype=d2.dtype)
            multiply(d_rows[:, own:b].T, operands[:, I:], recurrent)
            input_side = np.empty((b - own, I + 1), dtype=d2.dtype)
            multiply(tail2[first * B:stop * B, own - split:b - split].T, operands[:, :I + 1], input_side)
            for j in range(own, b):
                gb_hh[slot, j] = recurrent[j - own, 0]
                merged[slot, j, I + 1:] = recurrent[j - own, 1:]
                merged[slot, j, :I + 1] = input_side[j - own]
        if grad_x.shape[0]:
            r0, r1 = input_rows[k, 0], input_rows[k, 1]
            multiply(d2[r0:r1, :split], w_ih[:split], grad_x[r0:r1])
            if split < G:
                tail_product = np.empty((r1 - r0, I), dtype=d2.dtype)
                multiply(tail2[r0:r1], w_ih[split:], tail_product)
                grad_x[r0:r1] += tail_product
