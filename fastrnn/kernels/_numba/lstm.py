"""Fused LSTM kernels (PyTorch gate order i, f, g, o).

Each thread claims blocks of batch rows and runs the whole time loop on each: per step one
register-tiled product ``[x_t | h_{t-1}] @ [W_ih | W_hh]^T`` for its rows (no BLAS, so no second
thread pool competing for the cores) and one fused gate pass. Backward computes per step only the
gate gradients and ``dh_{t-1}``; :mod:`fastrnn.kernels._driver` does the weight GEMMs after it.
"""
import numpy as np
from numba import njit, prange

from ._aligned import empty_aligned
from ._copy import (copy_row, copy_rows, fill_rows, pack_unit_group, pack_unit_group_bias, padded_row_length,
                    zero_rows)
from ._sync import claim_block, new_block_counter, new_counters, new_tally, next_item, rows_per_block
from ._tiles import (GROUP, PANEL, add_one_row_times_four_panels, add_one_row_times_panels,
                     add_one_row_times_three_panels, add_rows_times_panels)
from .activations import one_of, sigmoid, tanh
from .config import JIT_OPTIONS, PARALLEL_OPTIONS


@njit(**JIT_OPTIONS)
def gate_activation_constants(like, units):
    """``(scale, shift)`` (4 * units,), in ``like``'s dtype, such that ``tanh(x * scale) * scale + shift`` is
    the activation of gates i, f, g, o laid out one after another, ``units`` each: sigmoid(x) =
    0.5 tanh(x / 2) + 0.5, and tanh itself for g. One loop over all four gates keeps several vectors in
    flight where four loops would each wait out the polynomial's latency."""
    scale = np.empty(4 * units, dtype=like.dtype)
    shift = np.empty(4 * units, dtype=like.dtype)
    for j in range(4 * units):
        is_g = 2 * units <= j < 3 * units
        scale[j] = 1 if is_g else 0.5
        shift[j] = 0 if is_g else 0.5
    return scale, shift


@njit(inline="always", **JIT_OPTIONS)
def update_state(pre, pre_row, units, c, c_row, c_col, h, h_row, h_col, out, out_row, out_col):
    """One step of the cell for units ``j < units`` of one row, from their pre-activations (all 2-D arrays).

    pre       gate pre-activations: i, f, g, o of unit ``j`` at ``pre[pre_row, j + q * units]``, q = 0..3
    c         in: c_{t-1}; out: c_t, at ``c[c_row, c_col + j]``
    h, out    receive h_t at ``h[h_row, h_col + j]`` and ``out[out_row, out_col + j]``

    One loop takes each unit through its four gates, c and h: five independent tanh chains per vector
    keep the FMA units busy, and nothing is stored and read back. Against the activations of all four
    gates in one loop and c, tanh(c), h in three more (one core of this Intel Xeon, the gate passes of
    32 rows x 50 steps alone, interleaved, best of 300): H = 64 0.27-0.31 -> 0.16-0.17 ms, H = 128
    0.48 -> 0.32-0.33 ms, H = 256 0.90 -> 0.63-0.67 ms. In the column kernel, 16 units a call, it measured
    the same as the loops before it (latency_b1 LSTM inference 0.27-0.28 against 0.27-0.29 ms).
    """
    # Column indices unsigned, and no row slices: an index of unknown sign takes Numba's negative-index
    # wraparound, and LLVM then gathers each vector (vgatherqps) instead of loading it; a slice per row
    # costs reference counting (32 rows x 50 steps at H = 64: 0.159 ms unsliced, 0.192 ms sliced)
    for j in range(units):
        i_g = sigmoid(pre[pre_row, np.uint64(j)])
        f_g = sigmoid(pre[pre_row, np.uint64(units + j)])
        g_g = tanh(pre[pre_row, np.uint64(2 * units + j)])
        o_g = sigmoid(pre[pre_row, np.uint64(3 * units + j)])
        c_new = f_g * c[c_row, np.uint64(c_col + j)] + i_g * g_g
        h_new = o_g * tanh(c_new)
        c[c_row, np.uint64(c_col + j)] = c_new
        h[h_row, np.uint64(h_col + j)] = h_new
        out[out_row, np.uint64(out_col + j)] = h_new


@njit(inline="always", **JIT_OPTIONS)
def update_state_saving(pre, gates, gap, scale, shift, c_row, h_row, out_row, tanh_row, c_saved):
    """:func:`update_state` for a pass that saves its activations for backward, on 1-D rows: ``pre`` holds
    the pre-activations, i, f, g, o ``gap`` apart; ``gates`` (may be ``pre`` itself) receives the activated
    gates, the whole ``4 gap`` of them (``scale`` and ``shift`` from :func:`gate_activation_constants`);
    ``tanh_row`` and ``c_saved`` receive tanh(c_t) and c_t.

    Two loops, where :func:`update_state` has one: storing the gates at ``j``, ``gap + j``, ... in the
    unit loop kept LLVM from vectorising it (8-9x slower in the gate-pass benchmark update_state cites).
    The batch kernel has the gates written straight into their saved row, where activating them in place
    and copying the row after took longer (one core, 32 rows x 50 steps, best of 200: H = 64 0.35 ->
    0.27 ms, H = 256 1.80 -> 1.49 ms). The whole saving forward kernel, 2 threads, both in one process,
    interleaved: B64 T100 I64 H256 20.7-21.6 -> 20.0-20.9 ms; the small shape the same within the noise.
    """
    for j in range(4 * gap):
        gates[j] = tanh(pre[j] * scale[j]) * scale[j] + shift[j]
    i_g, f_g, g_g, o_g = gates[:gap], gates[gap:2 * gap], gates[2 * gap:3 * gap], gates[3 * gap:4 * gap]
    for j in range(c_row.shape[0]):
        c_new = f_g[j] * c_row[j] + i_g[j] * g_g[j]
        tc = tanh(c_new)
        h = o_g[j] * tc
        c_row[j] = c_new
        h_row[j] = h
        out_row[j] = h
        tanh_row[j] = tc
        c_saved[j] = c_new


@njit(**PARALLEL_OPTIONS)
def lstm_forward_recurrence(x, lengths, packed_w, bias, h0, c0, out, h_n, c_n, gates, tanh_c, c_states, save,
                            n_chunks):
    """Run the LSTM over all steps, input projection included (or done beforehand).

    x         (B, T, I)   inputs, batch-first (the layers' layout: no transposing copy); or, where the
                          input projection was done beforehand, ``W_ih x_t + b_ih + b_hh`` (B, T, 4H)
    lengths   (B,)        steps of each sequence; finished rows keep their state and output zeros
    packed_w  (P, I+H, 16)  ``[W_ih | W_hh]^T`` in 16-column panels (see ``_tiles``), 4H padded to 16P;
                          or ``W_hh^T`` alone (P, H, 16) with a projected ``x`` (4H = 16P then)
    bias      (16P,)      ``b_ih + b_hh``, zero-padded (not read with a projected ``x``)
    h0, c0    (B, H)      initial states
    out       (B, T, H)   zero-filled, batch-first (the layers' output layout); receives h_t of running rows
    h_n, c_n  (B, H)      receive the final states
    gates     (T, B, 4H)  written if ``save``: activated i, f, g, o
    tanh_c, c_states (T, B, H)  written if ``save``: tanh(c_t) and c_t, for the backward pass
    n_chunks              parts of the parallel loop (threads); they claim blocks of rows
                          (``_sync.rows_per_block``), each run through the whole time loop
    """
    B, T = x.shape[0], x.shape[1]
    H = h0.shape[1]
    projected = packed_w.shape[1] == H
    I = 0 if projected else x.shape[2]  # the columns of x_t in xh
    block_rows = rows_per_block(B, n_chunks, GROUP)
    claimed = new_block_counter()
    scale, shift = gate_activation_constants(x, H)
    for part in prange(n_chunks):
        while True:
            first, last = claim_block(claimed, block_rows, B)
            if first == last:
                break
            n = last - first
            xh = np.empty((n, padded_row_length(I + H, x.itemsize)), dtype=x.dtype)  # [x_t | h_{t-1}] of each row
            copy_rows(xh, I, h0[first:last])
            c = c0[first:last].copy()
            acc = np.empty((GROUP, bias.shape[0]), dtype=x.dtype)
            for t in range(T):
                if not projected:
                    copy_rows(xh, 0, x[first:last, t])
                for r0 in range(0, n, GROUP):
                    rows = min(GROUP, n - r0)
                    if projected:
                        copy_rows(acc, 0, x[first + r0:first + r0 + rows, t])
                    else:
                        fill_rows(acc, rows, bias)
                    add_rows_times_panels(acc, xh, r0, rows, 0, packed_w)
                    for r in range(rows):
                        b = first + r0 + r
                        if t >= lengths[b]:
                            continue
                        if save:
                            c_row, h_row = c[r0 + r], xh[r0 + r, I:I + H]
                            update_state_saving(acc[r], gates[t, b], H, scale, shift, c_row, h_row, out[b, t],
                                                tanh_c[t, b], c_states[t, b])
                        else:
                            update_state(acc, r, H, c, r0 + r, 0, xh, r0 + r, I, out[b], t, 0)
            for r in range(n):
                copy_row(h_n[first + r], xh[r, I:I + H])
                copy_row(c_n[first + r], c[r])


@njit(inline="always", **JIT_OPTIONS)
def add_step_gradients(g, tc, go, c_prev, dp, dh_row, dc_row, u0, u1, H, one):
    """One row's gate gradients at one step, for hidden units ``u0 .. u1 - 1``.

    g (4H,) the saved activated gates i, f, g, o; tc, c_prev (H,) tanh(c_t) and c_{t-1}; go (H,) the
    gradient arriving at the output. dh_row (H,) in: the gradient reaching h_t through the recurrence;
    dc_row (H,) in: at c_t, out: at c_{t-1}; dp (4H,) receives the gradient at the pre-activations.
    ``H`` and ``one`` (1 in the gates' dtype) come from the caller: deriving them here (``tc.shape``,
    ``one_of``) made the small shape's batch backward loop 25-30% slower (0.68 -> 0.87 ms, measured).
    """
    for j in range(u0, u1):
        i_g, f_g, g_g, o_g = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
        dh_t = dh_row[j] + go[j]
        dc_t = dc_row[j] + dh_t * o_g * (one - tc[j] * tc[j])
        dp[j] = dc_t * g_g * i_g * (one - i_g)
        dp[H + j] = dc_t * c_prev[j] * f_g * (one - f_g)
        dp[2 * H + j] = dc_t * i_g * (one - g_g * g_g)
        dp[3 * H + j] = dh_t * tc[j] * o_g * (one - o_g)
        dc_row[j] = dc_t * f_g


@njit(**PARALLEL_OPTIONS)
def lstm_backward_recurrence(grad_out, lengths, packed_w_hh, c0, gates, tanh_c, c_states, dh, dc, d_pre, n_chunks):
    """Back-propagate through the LSTM time loop.

    grad_out  (B, T, H)   gradient arriving at each output, batch-first (ignored past a sequence's end)
    packed_w_hh (P, 4H, 16)  ``W_hh`` as stored, (4H, H), in 16-column panels (``dh_{t-1} = d_pre_t @ W_hh``)
    c0        (B, H);  gates (T, B, 4H), tanh_c, c_states (T, B, H): saved by the forward pass
    dh, dc    (B, H)      in: gradient at h_n, c_n; out: gradient at h0, c0
    d_pre     (T, B, 4H)  zero-filled; receives the gradient at the gate pre-activations
    n_chunks              parts of the parallel loop (threads); they claim blocks of rows
                          (``_sync.rows_per_block``), each run through the whole time loop
    """
    B, T, H = grad_out.shape
    one = one_of(gates)
    block_rows = rows_per_block(B, n_chunks, GROUP)
    claimed = new_block_counter()
    for part in prange(n_chunks):
        while True:
            first, last = claim_block(claimed, block_rows, B)
            if first == last:
                break
            n = last - first
            acc = np.empty((GROUP, packed_w_hh.shape[0] * PANEL), dtype=gates.dtype)
            for t in range(T - 1, -1, -1):
                d_pre_t = d_pre[t]
                for r0 in range(0, n, GROUP):
                    rows = min(GROUP, n - r0)
                    for r in range(rows):
                        b = first + r0 + r
                        if t >= lengths[b]:
                            continue
                        g, tc, go, dp = gates[t, b], tanh_c[t, b], grad_out[b, t], d_pre_t[b]
                        c_prev = c_states[t - 1, b] if t > 0 else c0[b]
                        dh_row, dc_row = dh[b], dc[b]
                        add_step_gradients(g, tc, go, c_prev, dp, dh_row, dc_row, 0, H, H, one)
                    zero_rows(acc, rows)
                    add_rows_times_panels(acc, d_pre_t, first + r0, rows, 0, packed_w_hh)
                    for r in range(rows):
                        if t < lengths[first + r0 + r]:
                            copy_row(dh[first + r0 + r], acc[r, :H])


@njit(**PARALLEL_OPTIONS)
def lstm_forward_columns(xh, lengths, w_ih, w_hh, bias, c, out, gates, tanh_c, c_states, save, n_parts):
    """Run the LSTM with each step's hidden units split across threads (batches smaller than the
    thread count, where batch chunks would leave threads idle). Needs ``H % 16 == 0``.

    xh        (T+1, B, I+H)  in: ``x_t`` in ``xh[t, :, :I]``, ``h0`` in ``xh[0, :, I:]``; receives ``h_t`` in
                            ``xh[t+1, :, I:]`` (a finished row's state is carried on, so ``xh[T, :, I:]`` is h_n).
                            Every step writes a fresh row, so no thread overwrites a state another still reads.
    w_ih (4H, I), w_hh (4H, H)  the weights as stored (H = 16G); the parts first pack them into the batch
                            kernel's panels, each the groups it owns (packing is the first step of shared work)
    bias      (64G,)         ``b_ih + b_hh``
    c         (B, H)         in: c0; out: c_n
    out, gates, tanh_c, c_states, save: as :func:`lstm_forward_recurrence`
    n_parts                  parts of the parallel loop (the thread count); they share the work as ``_sync`` says

    A work item is one group of 16 hidden units: its i, f, g, o panels (G panels apart), then its gate pass.
    """
    T, B = xh.shape[0] - 1, xh.shape[1]
    H = c.shape[1]
    I = xh.shape[2] - H
    n_groups = H // PANEL
    packed_w = empty_aligned((4 * n_groups, I + H, PANEL), xh)  # shared by the parts
    packed_bias = np.empty((n_groups, 4 * PANEL), dtype=xh.dtype)  # a group's i, f, g, o biases side by side
    claims, done = new_counters(T + 1, n_parts)  # step 0 packs, step t + 1 computes time step t
    gate_scale, gate_shift = gate_activation_constants(xh, PANEL)
    for part in prange(n_parts):
        acc = np.empty(4 * PANEL, dtype=xh.dtype)
        acc2 = acc.reshape((1, 4 * PANEL))  # the same memory, as update_state takes it
        tally = new_tally()
        while True:
            group = next_item(claims, done, tally, part, n_parts, n_groups, 0)
            if group < 0:
                break
            pack_unit_group(packed_w, w_ih, 0, group, n_groups)
            pack_unit_group(packed_w, w_hh, I, group, n_groups)
            pack_unit_group_bias(packed_bias, bias, group)
            tally[0] += 1
        for t in range(T):
            while True:
                group = next_item(claims, done, tally, part, n_parts, n_groups, t + 1)
                if group < 0:
                    break
                u0 = group * PANEL
                for b in range(B):
                    h_prev, h_row = xh[t, b, I + u0:I + u0 + PANEL], xh[t + 1, b, I + u0:I + u0 + PANEL]
                    if t >= lengths[b]:
                        copy_row(h_row, h_prev)
                        continue
                    copy_row(acc, packed_bias[group])
                    add_one_row_times_four_panels(acc, xh[t, b], 0, packed_w, group, n_groups)
                    if save:
                        c_row, out_row = c[b, u0:u0 + PANEL], out[b, t, u0:u0 + PANEL]
                        update_state_saving(acc, acc, PANEL, gate_scale, gate_shift, c_row, h_row, out_row,
                                            tanh_c[t, b, u0:u0 + PANEL], c_states[t, b, u0:u0 + PANEL])
                        for q in range(4):
                            copy_row(gates[t, b, q * H + u0:q * H + u0 + PANEL], acc[q * PANEL:(q + 1) * PANEL])
                    else:
                        update_state(acc2, 0, PANEL, c, b, u0, xh[t + 1], b, I + u0, out[b], t, u0)
                tally[0] += 1


@njit(**PARALLEL_OPTIONS)
def lstm_backward_columns(grad_out, lengths, w_hh, c0, gates, tanh_c, c_states, dh, dc, d_pre, n_parts):
    """:func:`lstm_backward_recurrence` with each step's hidden units split across threads (batches smaller
    than the thread count). Needs ``H % 16 == 0``.

    w_hh      (4H, H)     as stored; the parts first pack it into 16-column panels of ``W_hh``'s columns,
                          each the blocks it owns (``dh_{t-1} = d_pre_t @ W_hh``)
    the other arguments as :func:`lstm_backward_recurrence`; n_parts: parts of the parallel loop

    A work item is a block of up to four 16-unit groups. Stage 0 packs the block's panels and computes its
    units' gate gradients at step T-1; stage s (1 <= s <= T) computes the block's ``dh`` from all of
    ``d_pre_t`` (t = T - s), which every block's previous stage finished, then, if t > 0, its gate
    gradients at step t - 1, which need only its own units' ``dh`` and ``dc``.
    """
    B, T, H = grad_out.shape
    G = 4 * H
    n_groups = H // PANEL
    n_blocks = (n_groups + 3) // 4
    one = one_of(gates)
    packed = empty_aligned((n_groups, G, PANEL), gates)  # packed[g, k, c] = w_hh[k, 16 g + c]
    claims, done = new_counters(T + 1, n_parts)
    for part in prange(n_parts):
        acc = np.empty(4 * PANEL, dtype=gates.dtype)
        tally = new_tally()
        for stage in range(T + 1):
            t = T - stage  # stage > 0: dh from d_pre_t, then gate gradients at t - 1
            while True:
                block = next_item(claims, done, tally, part, n_parts, n_blocks, stage)
                if block < 0:
                    break
                g0 = 4 * block
                count = min(4, n_groups - g0)
                u0, u1 = g0 * PANEL, (g0 + count) * PANEL
                if stage == 0:
                    for g in range(g0, g0 + count):
                        panel = packed[g]
                        for k in range(G):
                            copy_row(panel[k], w_hh[k, g * PANEL:(g + 1) * PANEL])
                for b in range(B):
                    dh_row, dc_row = dh[b], dc[b]
                    if stage > 0 and t < lengths[b]:
                        for j in range(4 * PANEL):
                            acc[j] = 0
                        if count == 4:
                            add_one_row_times_four_panels(acc, d_pre[t, b], 0, packed, g0, 1)
                        elif count == 3:
                            add_one_row_times_three_panels(acc, d_pre[t, b], 0, packed, g0, 1)
                        else:
                            add_one_row_times_panels(acc, d_pre[t, b], 0, packed[g0:g0 + count])
                        for j in range(u0, u1):
                            dh_row[j] = acc[j - u0]
                    s = t - 1
                    if s < 0 or s >= lengths[b]:
                        continue
                    g, tc, go, dp = gates[s, b], tanh_c[s, b], grad_out[b, s], d_pre[s, b]
                    c_prev = c_states[s - 1, b] if s > 0 else c0[b]
                    add_step_gradients(g, tc, go, c_prev, dp, dh_row, dc_row, u0, u1, H, one)
                tally[0] += 1
