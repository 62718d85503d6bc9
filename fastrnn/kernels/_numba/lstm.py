"""Fused LSTM kernels (PyTorch gate order i, f, g, o).

Each thread claims blocks of batch rows and runs the whole time loop on each: per step one
register-tiled product ``[x_t | h_{t-1}] @ [W_ih | W_hh]^T`` for its rows (no BLAS, so no second
thread pool competing for the cores) and one fused gate pass. Backward computes per step only the
gate gradients and ``dh_{t-1}``; :mod:`fastrnn.kernels._driver` does the weight GEMMs after it.
"""
import numpy as np
from numba import njit, prange

from ._aligned import empty_aligned
from ._chunks import chunk_bounds, chunk_of
from ._copy import (copy_row, copy_rows, fill_rows, gather_other_units, pack_panel_rows, pack_unit_group_bias,
                    padded_row_length, zero_rows)
from ._sync import (claim_block, new_block_counter, new_counters, new_tally, next_item, next_stolen_item,
                    report_done, rows_per_block, take_own_range)
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


@njit(inline="always", **JIT_OPTIONS)
def part_panels(packed, first, last, I, H):
    """``(early, late)``: the packed weights of hidden-unit groups ``[first, last)`` (one part's, see
    :func:`lstm_forward_columns`), ``n = last - first`` of them, each with its i, f, g, o panels.

    early (4n, I + 16n, 16)  rows of ``[W_ih | W_hh]^T`` for the inputs, then for the groups' own units
    late  (4n, H - 16n, 16)  rows for the other units, in order
    Gate ``q`` of group ``g`` is panel ``q n + g - first`` of each. ``packed`` (4 (I + H) 16 G,) holds every
    part's pair, in the order of their groups."""
    n = last - first
    region = packed[first * 4 * (I + H) * PANEL:last * 4 * (I + H) * PANEL]
    split = 4 * n * (I + PANEL * n) * PANEL
    return (region[:split].reshape((4 * n, I + PANEL * n, PANEL)),
            region[split:].reshape((4 * n, H - PANEL * n, PANEL)))


@njit(inline="always", **JIT_OPTIONS)
def pack_part_group(early, late, packed_bias, w_ih, w_hh, bias, group, first, last):
    """Pack group ``group``'s rows of ``w_ih`` (4H, I) and ``w_hh`` (4H, H) into the ``early`` and ``late``
    panels of the part whose groups are ``[first, last)`` (:func:`part_panels`), its biases into
    ``packed_bias[group]``."""
    I, H = w_ih.shape[1], w_hh.shape[1]
    n = last - first
    u0, u1 = PANEL * first, PANEL * last
    for q in range(4):
        row0 = q * H + PANEL * group
        slot = q * n + group - first
        pack_panel_rows(early[slot], 0, w_ih, row0, 0, I)
        pack_panel_rows(early[slot], I, w_hh, row0, u0, u1)
        pack_panel_rows(late[slot], 0, w_hh, row0, 0, u0)
        pack_panel_rows(late[slot], u0, w_hh, row0, u1, H)
    pack_unit_group_bias(packed_bias, bias, group)


@njit(**JIT_OPTIONS)
def start_part_groups(acc, vector, early, packed_bias, first, last, g0, g1, t, xh, lengths):
    """Start step ``t`` of groups ``[g0, g1)`` (of the part whose groups are ``[first, last)``) for every
    running row: ``acc[g - g0, b]`` (64,) = the group's biases + ``[x_t | its units of h_{t-1}] @ early``,
    the products that need nothing of the other parts' units. ``vector`` (B, >= I + H): work rows."""
    H = PANEL * packed_bias.shape[0]
    I = xh.shape[2] - H
    n = last - first
    for b in range(xh.shape[1]):
        if t >= lengths[b]:
            continue
        row, v = xh[t, b], vector[b]
        for j in range(I):
            v[j] = row[j]
        for j in range(PANEL * n):
            v[I + j] = row[I + PANEL * first + j]
        for group in range(g0, g1):
            copy_row(acc[group - g0, b], packed_bias[group])
            add_one_row_times_four_panels(acc[group - g0, b], v, 0, early, group - first, n)


@njit(**JIT_OPTIONS)
def finish_part_groups(acc, vector, late, first, last, g0, g1, t, xh, lengths, c, out, gates, tanh_c, c_states,
                       save, gate_scale, gate_shift):
    """Finish step ``t`` of groups ``[g0, g1)`` that :func:`start_part_groups` started: add the other units
    of ``h_{t-1}`` times ``late``, then the gate pass, which writes ``h_t`` into ``xh[t + 1]`` (a finished
    row carries its state on)."""
    H = c.shape[1]
    I = xh.shape[2] - H
    n = last - first
    for b in range(xh.shape[1]):
        if t >= lengths[b]:
            copy_row(xh[t + 1, b, I + PANEL * g0:I + PANEL * g1], xh[t, b, I + PANEL * g0:I + PANEL * g1])
            continue
        row, v = xh[t, b], vector[b]
        gather_other_units(v, row, I, PANEL * first, PANEL * last)
        for group in range(g0, g1):
            pre = acc[group - g0]
            if H > PANEL * n:
                add_one_row_times_four_panels(pre[b], v, 0, late, group - first, n)
            g_u0 = PANEL * group
            if save:
                h_row = xh[t + 1, b, I + g_u0:I + g_u0 + PANEL]
                c_row, out_row = c[b, g_u0:g_u0 + PANEL], out[b, t, g_u0:g_u0 + PANEL]
                update_state_saving(pre[b], pre[b], PANEL, gate_scale, gate_shift, c_row, h_row, out_row,
                                    tanh_c[t, b, g_u0:g_u0 + PANEL], c_states[t, b, g_u0:g_u0 + PANEL])
                for q in range(4):
                    copy_row(gates[t, b, q * H + g_u0:q * H + g_u0 + PANEL], pre[b, q * PANEL:(q + 1) * PANEL])
            else:
                update_state(pre, b, PANEL, c, b, g_u0, xh[t + 1], b, I + g_u0, out[b], t, g_u0)


@njit(**PARALLEL_OPTIONS)
def lstm_forward_columns(xh, lengths, w_ih, w_hh, bias, c, out, gates, tanh_c, c_states, save, n_parts):
    """Run the LSTM with each step's hidden units split across threads (batches smaller than the
    thread count, where batch chunks would leave threads idle). Needs ``H % 16 == 0``.

    xh        (T+1, B, I+H)  in: ``x_t`` in ``xh[t, :, :I]``, ``h0`` in ``xh[0, :, I:]``; receives ``h_t`` in
                            ``xh[t+1, :, I:]`` (a finished row's state is carried on, so ``xh[T, :, I:]`` is h_n).
                            Every step writes a fresh row, so no thread overwrites a state another still reads.
    w_ih (4H, I), w_hh (4H, H)  the weights as stored (H = 16G); the parts first pack them, each its own
                            groups' (:func:`part_panels`: packing is the first stage of shared work)
    bias      (64G,)         ``b_ih + b_hh``
    c         (B, H)         in: c0; out: c_n
    out, gates, tanh_c, c_states, save: as :func:`lstm_forward_recurrence`
    n_parts                  parts of the parallel loop (the thread count); they share the work as ``_sync`` says

    A work item is one group of 16 hidden units: its i, f, g, o products, then its gate pass. A part
    starts its own groups' step t before step t - 1 is done everywhere: their products with ``x_t`` and
    with the units of ``h_{t-1}`` it computed itself. Only the products with the other parts' units wait
    for the step's end, so the wait for them (and for the step counter's cache line) passes in work.
    """
    T, B = xh.shape[0] - 1, xh.shape[1]
    H = c.shape[1]
    I = xh.shape[2] - H
    n_groups = H // PANEL
    packed = empty_aligned((4 * (I + H) * H,), xh)  # shared by the parts, see part_panels
    packed_bias = np.empty((n_groups, 4 * PANEL), dtype=xh.dtype)  # a group's i, f, g, o biases side by side
    claims, done = new_counters(T + 1, n_parts)  # stage 0 packs, stage t + 1 computes time step t
    gate_scale, gate_shift = gate_activation_constants(xh, PANEL)
    for part in prange(n_parts):
        own_first, own_last = chunk_bounds(part, n_parts, n_groups)
        early, late = part_panels(packed, own_first, own_last, I, H)
        acc = np.empty((max(1, own_last - own_first), B, 4 * PANEL), dtype=xh.dtype)
        vector = np.empty((B, I + H), dtype=xh.dtype)
        taken_acc = np.empty((1, B, 4 * PANEL), dtype=xh.dtype)  # for a group taken over from another part
        taken_vector = np.empty((B, I + H), dtype=xh.dtype)
        tally = new_tally()
        started = False  # whether the stage's own groups start before the stage before is done everywhere
        for stage in range(T + 2):  # stage T + 1 only finishes stage T
            t = stage - 1
            first, last = own_first, own_first
            if stage <= T:
                first, last = take_own_range(claims, part, n_parts, n_groups, stage)
            if stage == 0:
                for group in range(first, last):
                    pack_part_group(early, late, packed_bias, w_ih, w_hh, bias, group, own_first, own_last)
            elif started:
                start_part_groups(acc, vector, early, packed_bias, first, last, first, last, t, xh, lengths)
            if stage > 0:  # finish stage - 1: wait for it, taking over the range of a part that is absent
                while True:
                    group = next_stolen_item(claims, done, tally, part, n_parts, n_groups, stage - 1)
                    if group < 0:
                        break
                    g_first, g_last = chunk_bounds(chunk_of(group, n_parts, n_groups), n_parts, n_groups)
                    g_early, g_late = part_panels(packed, g_first, g_last, I, H)
                    if stage == 1:
                        pack_part_group(g_early, g_late, packed_bias, w_ih, w_hh, bias, group, g_first, g_last)
                    else:
                        start_part_groups(taken_acc, taken_vector, g_early, packed_bias, g_first, g_last, group,
                                          group + 1, t - 1, xh, lengths)
                        finish_part_groups(taken_acc, taken_vector, g_late, g_first, g_last, group, group + 1, t - 1,
                                           xh, lengths, c, out, gates, tanh_c, c_states, save, gate_scale, gate_shift)
                    tally[0] += 1
                if last > first:
                    if not started:
                        start_part_groups(acc, vector, early, packed_bias, first, last, first, last, t, xh, lengths)
                    finish_part_groups(acc, vector, late, first, last, first, last, t, xh, lengths, c, out, gates,
                                       tanh_c, c_states, save, gate_scale, gate_shift)
            tally[0] += last - first
            report_done(done, tally, stage)
            started = last > first


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
