"""Fused GRU kernels (PyTorch gate order r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``).

Structured like the LSTM ones. The input and recurrent products stay separate accumulators because
``r`` gates only the recurrent part of ``n`` (with its own bias inside the product).
"""
import numpy as np
from numba import njit, prange

from ._aligned import empty_aligned
from ._chunks import chunk_bounds, chunk_of
from ._copy import (copy_row, copy_rows, fill_rows, gather_other_units, pack_panel_rows, pack_unit_group_bias,
                    padded_row_length, zero_rows)
from ._sync import (claim_block, new_block_counter, new_counters, new_tally, next_stolen_item, report_done,
                    rows_per_block, take_own_range)
from ._tiles import GROUP, PANEL, add_one_row_times_three_panels, add_rows_times_panels
from .activations import one_of, sigmoid, tanh
from .config import JIT_OPTIONS, PARALLEL_OPTIONS


@njit(inline="always", **JIT_OPTIONS)
def update_state(from_x, from_h, row, h, h_row, h_col, out, out_row):
    """One step of the cell for the ``H = len(out[out_row])`` units of one row, from both sides' products
    (all 2-D arrays).

    from_x, from_h  ``W_i* x_t + b_i*`` and ``W_h* h_{t-1} + b_h*``: r, z, n of unit ``j`` at
                    ``[row, j + q * H]``, q = 0..2
    h               in: h_{t-1}, out: h_t, at ``h[h_row, h_col + j]``;  out: receives h_t at ``out[out_row, j]``

    One loop takes each unit through r, z, n and h, as :func:`.lstm.update_state` does for the LSTM;
    indices as explained there. (The column kernel keeps its loop per gate: over its 16 units the one
    loop measured no faster, latency_b1 GRU inference 0.21-0.24 against 0.20-0.24 ms.)
    """
    one = one_of(from_x)
    H = out.shape[1]
    for j in range(H):
        r_g = sigmoid(from_x[row, np.uint64(j)] + from_h[row, np.uint64(j)])
        z_g = sigmoid(from_x[row, np.uint64(H + j)] + from_h[row, np.uint64(H + j)])
        n_g = tanh(from_x[row, np.uint64(2 * H + j)] + r_g * from_h[row, np.uint64(2 * H + j)])
        h_new = (one - z_g) * n_g + z_g * h[h_row, np.uint64(h_col + j)]
        h[h_row, np.uint64(h_col + j)] = h_new
        out[out_row, np.uint64(j)] = h_new


@njit(**PARALLEL_OPTIONS)
def gru_forward_recurrence(x, lengths, packed_ih, b_ih, packed_hh, b_hh, h0, out, h_n, gates, hidden_n, save,
                           n_chunks):
    """Run the GRU over all steps, input projection included (or done beforehand).

    x         (B, T, I)   inputs, batch-first (the layers' layout: no transposing copy); or, where the
                          input projection was done beforehand, ``W_ih x_t + b_ih`` (B, T, 3H)
    lengths   (B,)        steps of each sequence; finished rows keep their state and output zeros
    packed_ih (P, I, 16), packed_hh (P, H, 16)  ``W_ih^T`` and ``W_hh^T`` in 16-column panels; packed_ih
                          (P, 0, 16) with a projected ``x`` (3H = 16P then)
    b_ih, b_hh (16P,)     biases, zero-padded (b_ih not read with a projected ``x``)
    h0        (B, H)      initial state;  out (B, T, H) zero-filled, batch-first;  h_n (B, H) final state
    gates     (T, B, 3H)  written if ``save``: r, z, n after their nonlinearities
    hidden_n  (T, B, H)   written if ``save``: ``W_hn h_{t-1} + b_hn``
    n_chunks              parts of the parallel loop (threads); they claim blocks of rows
                          (``_sync.rows_per_block``), each run through the whole time loop
    """
    B, T = x.shape[0], x.shape[1]
    H = h0.shape[1]
    G = 3 * H
    projected = packed_ih.shape[1] == 0
    I = 0 if projected else x.shape[2]  # the columns of x_t in xh
    one = one_of(x)
    block_rows = rows_per_block(B, n_chunks, GROUP)
    claimed = new_block_counter()
    for part in prange(n_chunks):
        while True:
            first, last = claim_block(claimed, block_rows, B)
            if first == last:
                break
            n = last - first
            xh = np.empty((n, padded_row_length(I + H, x.itemsize)), dtype=x.dtype)  # [x_t | h_{t-1}] of each row
            copy_rows(xh, I, h0[first:last])
            from_x = np.empty((GROUP, b_ih.shape[0]), dtype=x.dtype)
            from_h = np.empty((GROUP, b_hh.shape[0]), dtype=x.dtype)
            n_g = np.empty(H, dtype=x.dtype)
            for t in range(T):
                if not projected:
                    copy_rows(xh, 0, x[first:last, t])
                for r0 in range(0, n, GROUP):
                    rows = min(GROUP, n - r0)
                    if projected:
                        copy_rows(from_x, 0, x[first + r0:first + r0 + rows, t])
                    else:
                        fill_rows(from_x, rows, b_ih)
                        add_rows_times_panels(from_x, xh, r0, rows, 0, packed_ih)
                    fill_rows(from_h, rows, b_hh)
                    add_rows_times_panels(from_h, xh, r0, rows, I, packed_hh)
                    for r in range(rows):
                        b = first + r0 + r
                        if t >= lengths[b]:
                            continue
                        if not save:
                            update_state(from_x, from_h, r, xh, r0 + r, I, out[b], t)
                            continue
                        a, x_part, h_row = from_h[r], from_x[r], xh[r0 + r, I:I + H]
                        copy_row(hidden_n[t, b], a[2 * H:G])
                        for j in range(2 * H):  # r and z in one loop
                            a[j] = sigmoid(x_part[j] + a[j])
                        r_g, z_g, hn = a[:H], a[H:2 * H], a[2 * H:G]
                        x_n = x_part[2 * H:G]
                        # n in a buffer of its own: stored back into ``a`` at 2H + j beside the read of r at j,
                        # LLVM could not prove the loop safe to vectorise and ran it scalar (the small
                        # shape's step, one thread: 0.77 -> 0.60 ms)
                        for j in range(H):
                            n_g[j] = tanh(x_n[j] + r_g[j] * hn[j])
                        for j in range(H):
                            h_row[j] = (one - z_g[j]) * n_g[j] + z_g[j] * h_row[j]
                        copy_row(out[b, t], h_row)
                        copy_row(gates[t, b], a[:2 * H])
                        copy_row(gates[t, b, 2 * H:G], n_g)
            for r in range(n):
                copy_row(h_n[first + r], xh[r, I:I + H])


@njit(**PARALLEL_OPTIONS)
def gru_backward_recurrence(grad_out, lengths, packed_w_hh, h0, out, gates, hidden_n, dh, dn_from_x, d_from_h,
                            n_chunks):
    """Back-propagate through the GRU time loop.

    grad_out  (B, T, H)   gradient arriving at each output, batch-first (ignored past a sequence's end)
    packed_w_hh (P, 3H, 16)  ``W_hh`` as stored, (3H, H), in 16-column panels
    h0 (B, H), out (B, T, H) batch-first, gates (T, B, 3H), hidden_n (T, B, H): saved by the forward pass
    dh        (B, H)      in: gradient at h_n; out: gradient at h0
    d_from_h  (T, B, 3H)  zero-filled; receives the gradient at the recurrent projection
    dn_from_x (T, B, H)   zero-filled; receives the input projection's n block (r gates only the h side
                          of n, so the blocks differ there; the r and z blocks are d_from_h's)
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
            dh_t = np.empty(H, dtype=gates.dtype)
            for t in range(T - 1, -1, -1):
                d_from_h_t = d_from_h[t]
                for r0 in range(0, n, GROUP):
                    rows = min(GROUP, n - r0)
                    for r in range(rows):
                        b = first + r0 + r
                        if t >= lengths[b]:
                            continue
                        g, hn, go, h_prev = gates[t, b], hidden_n[t, b], grad_out[b, t], (
                            out[b, t - 1] if t > 0 else h0[b])
                        dnx, dhh, dh_row = dn_from_x[t, b], d_from_h_t[b], dh[b]
                        # One loop per output block: with stores to dhh at j, H + j and 2H + j in one loop (H
                        # unknown when compiling) LLVM could not prove it safe to vectorise
                        for j in range(H):
                            dh_t[j] = dh_row[j] + go[j]
                        for j in range(H):  # at n's pre-activation
                            dnx[j] = dh_t[j] * (one - g[H + j]) * (one - g[2 * H + j] * g[2 * H + j])
                        for j in range(H):  # r
                            dhh[j] = dnx[j] * hn[j] * g[j] * (one - g[j])
                        for j in range(H):  # z
                            dhh[H + j] = dh_t[j] * (h_prev[j] - g[2 * H + j]) * g[H + j] * (one - g[H + j])
                        for j in range(H):  # n's recurrent side, scaled by r
                            dhh[2 * H + j] = dnx[j] * g[j]
                        for j in range(H):
                            dh_row[j] = dh_t[j] * g[H + j]  # the direct path; the product is added below
                    zero_rows(acc, rows)
                    add_rows_times_panels(acc, d_from_h_t, first + r0, rows, 0, packed_w_hh)
                    for r in range(rows):
                        b = first + r0 + r
                        if t < lengths[b]:
                            for j in range(H):
                                dh[b, j] += acc[r, j]


@njit(inline="always", **JIT_OPTIONS)
def part_panels(packed, first, last, I, H):
    """``(inputs, own, late)``: the packed weights of hidden-unit groups ``[first, last)`` (one part's, see
    :func:`gru_forward_columns`), ``n = last - first`` of them, each with its r, z, n panels.

    inputs (3n, I, 16)       ``W_ih^T``'s rows
    own    (3n, 16n, 16)     ``W_hh^T``'s rows for the groups' own units
    late   (3n, H - 16n, 16)  ``W_hh^T``'s rows for the other units, in order
    Gate ``q`` of group ``g`` is panel ``q n + g - first`` of each. ``packed`` (3 (I + H) 16 G,) holds every
    part's three, in the order of their groups."""
    n = last - first
    region = packed[first * 3 * (I + H) * PANEL:last * 3 * (I + H) * PANEL]
    own_start = 3 * n * I * PANEL
    late_start = own_start + 3 * n * PANEL * n * PANEL
    return (region[:own_start].reshape((3 * n, I, PANEL)),
            region[own_start:late_start].reshape((3 * n, PANEL * n, PANEL)),
            region[late_start:].reshape((3 * n, H - PANEL * n, PANEL)))


@njit(inline="always", **JIT_OPTIONS)
def pack_part_group(inputs, own, late, packed_b_ih, packed_b_hh, w_ih, b_ih, w_hh, b_hh, group, first, last):
    """Pack group ``group``'s rows of ``w_ih`` (3H, I) and ``w_hh`` (3H, H) into the panels of the part whose
    groups are ``[first, last)`` (:func:`part_panels`), its biases into ``packed_b_ih[group]`` and
    ``packed_b_hh[group]``."""
    I, H = w_ih.shape[1], w_hh.shape[1]
    n = last - first
    u0, u1 = PANEL * first, PANEL * last
    for q in range(3):
        row0 = q * H + PANEL * group
        slot = q * n + group - first
        pack_panel_rows(inputs[slot], 0, w_ih, row0, 0, I)
        pack_panel_rows(own[slot], 0, w_hh, row0, u0, u1)
        pack_panel_rows(late[slot], 0, w_hh, row0, 0, u0)
        pack_panel_rows(late[slot], u0, w_hh, row0, u1, H)
    pack_unit_group_bias(packed_b_ih, b_ih, group)
    pack_unit_group_bias(packed_b_hh, b_hh, group)


@njit(**JIT_OPTIONS)
def start_part_groups(from_x, from_h, inputs, own, packed_b_ih, packed_b_hh, first, last, g0, g1, t, xh, lengths):
    """Start step ``t`` of groups ``[g0, g1)`` (of the part whose groups are ``[first, last)``) for every
    running row: ``from_x[g - g0, b]`` (48,) = ``b_ih + W_ih x_t`` and ``from_h[g - g0, b]`` = ``b_hh`` + the
    product with the groups' own units of ``h_{t-1}``, what needs nothing of the other parts' units."""
    H = PANEL * packed_b_ih.shape[0]
    I = xh.shape[2] - H
    n = last - first
    for b in range(xh.shape[1]):
        if t >= lengths[b]:
            continue
        row = xh[t, b]
        for group in range(g0, g1):
            copy_row(from_x[group - g0, b], packed_b_ih[group])
            copy_row(from_h[group - g0, b], packed_b_hh[group])
            add_one_row_times_three_panels(from_x[group - g0, b], row, 0, inputs, group - first, n)
            add_one_row_times_three_panels(from_h[group - g0, b], row, I + PANEL * first, own, group - first, n)


@njit(**JIT_OPTIONS)
def finish_part_groups(from_x, from_h, vector, late, first, last, g0, g1, t, xh, lengths, out, gates, hidden_n,
                       save):
    """Finish step ``t`` of groups ``[g0, g1)`` that :func:`start_part_groups` started: add the other units
    of ``h_{t-1}`` (copied into the work rows ``vector`` (B, >= H)) times ``late``, then the gate pass, which
    writes ``h_t`` into ``xh[t + 1]`` (a finished row carries its state on)."""
    H = out.shape[2]
    I = xh.shape[2] - H
    n = last - first
    one = one_of(xh)
    for b in range(xh.shape[1]):
        if t >= lengths[b]:
            copy_row(xh[t + 1, b, I + PANEL * g0:I + PANEL * g1], xh[t, b, I + PANEL * g0:I + PANEL * g1])
            continue
        row, v = xh[t, b], vector[b]
        gather_other_units(v, row, I, PANEL * first, PANEL * last)
        for group in range(g0, g1):
            acc_x, acc_h = from_x[group - g0, b], from_h[group - g0, b]
            if H > PANEL * n:
                add_one_row_times_three_panels(acc_h, v, 0, late, group - first, n)
            g_u0 = PANEL * group
            h_prev, h_row = row[I + g_u0:I + g_u0 + PANEL], xh[t + 1, b, I + g_u0:I + g_u0 + PANEL]
            if save:
                copy_row(hidden_n[t, b, g_u0:g_u0 + PANEL], acc_h[2 * PANEL:])
            r_g, z_g, n_g = acc_h[:PANEL], acc_h[PANEL:2 * PANEL], acc_h[2 * PANEL:]
            x_r, x_z, x_n = acc_x[:PANEL], acc_x[PANEL:2 * PANEL], acc_x[2 * PANEL:]
            for j in range(PANEL):
                r_g[j] = sigmoid(x_r[j] + r_g[j])
            for j in range(PANEL):
                z_g[j] = sigmoid(x_z[j] + z_g[j])
            for j in range(PANEL):
                n_g[j] = tanh(x_n[j] + r_g[j] * n_g[j])
            for j in range(PANEL):
                h_row[j] = (one - z_g[j]) * n_g[j] + z_g[j] * h_prev[j]
            copy_row(out[b, t, g_u0:g_u0 + PANEL], h_row)
            if save:
                for q in range(3):
                    copy_row(gates[t, b, q * H + g_u0:q * H + g_u0 + PANEL], acc_h[q * PANEL:(q + 1) * PANEL])


@njit(**PARALLEL_OPTIONS)
def gru_forward_columns(xh, lengths, w_ih, b_ih, w_hh, b_hh, out, gates, hidden_n, save, n_parts):
    """Run the GRU with each step's hidden units split across threads (batches smaller than the
    thread count). Needs ``H % 16 == 0``.

    xh        (T+1, B, I+H)  in: ``x_t`` in ``xh[t, :, :I]``, ``h0`` in ``xh[0, :, I:]``; receives ``h_t`` in
                            ``xh[t+1, :, I:]`` (finished rows carried on: ``xh[T, :, I:]`` is h_n)
    w_ih (3H, I), w_hh (3H, H)  the weights as stored (H = 16G); the parts first pack them, each its own
                            groups' (:func:`part_panels`: packing is the first stage of shared work)
    b_ih, b_hh (3H,)         biases
    out, gates, hidden_n, save: as :func:`gru_forward_recurrence`
    n_parts   parts of the parallel loop (the thread count); they share the work as ``_sync`` says

    A work item is one group of 16 hidden units: its r, z, n products on both sides, then its gate pass.
    As in :func:`.lstm.lstm_forward_columns`, a part starts its own groups' step t before step t - 1 is
    done everywhere (the input side, and the units of ``h_{t-1}`` it computed itself); only the other
    parts' units wait for the step's end.
    """
    T, B = xh.shape[0] - 1, xh.shape[1]
    H = out.shape[2]
    I = xh.shape[2] - H
    n_groups = H // PANEL
    packed = empty_aligned((3 * (I + H) * H,), xh)  # shared by the parts, see part_panels
    packed_b_ih = np.empty((n_groups, 3 * PANEL), dtype=xh.dtype)  # a group's r, z, n biases side by side
    packed_b_hh = np.empty((n_groups, 3 * PANEL), dtype=xh.dtype)
    claims, done = new_counters(T + 1, n_parts)  # stage 0 packs, stage t + 1 computes time step t
    for part in prange(n_parts):
        own_first, own_last = chunk_bounds(part, n_parts, n_groups)
        inputs, own, late = part_panels(packed, own_first, own_last, I, H)
        count = max(1, own_last - own_first)
        from_x = np.empty((count, B, 3 * PANEL), dtype=xh.dtype)
        from_h = np.empty((count, B, 3 * PANEL), dtype=xh.dtype)
        vector = np.empty((B, H), dtype=xh.dtype)
        taken_x = np.empty((1, B, 3 * PANEL), dtype=xh.dtype)  # for a group taken over from another part
        taken_h = np.empty((1, B, 3 * PANEL), dtype=xh.dtype)
        taken_vector = np.empty((B, H), dtype=xh.dtype)
        tally = new_tally()
        started = False  # whether the stage's own groups start before the stage before is done everywhere
        for stage in range(T + 2):  # stage T + 1 only finishes stage T
            t = stage - 1
            first, last = own_first, own_first
            if stage <= T:
                first, last = take_own_range(claims, part, n_parts, n_groups, stage)
            if stage == 0:
                for group in range(first, last):
                    pack_part_group(inputs, own, late, packed_b_ih, packed_b_hh, w_ih, b_ih, w_hh, b_hh, group,
                                    own_first, own_last)
            elif started:
                start_part_groups(from_x, from_h, inputs, own, packed_b_ih, packed_b_hh, first, last, first, last, t,
                                  xh, lengths)
            if stage > 0:  # finish stage - 1: wait for it, taking over the range of a part that is absent
                while True:
                    group = next_stolen_item(claims, done, tally, part, n_parts, n_groups, stage - 1)
                    if group < 0:
                        break
                    g_first, g_last = chunk_bounds(chunk_of(group, n_parts, n_groups), n_parts, n_groups)
                    g_inputs, g_own, g_late = part_panels(packed, g_first, g_last, I, H)
                    if stage == 1:
                        pack_part_group(g_inputs, g_own, g_late, packed_b_ih, packed_b_hh, w_ih, b_ih, w_hh, b_hh,
                                        group, g_first, g_last)
                    else:
                        start_part_groups(taken_x, taken_h, g_inputs, g_own, packed_b_ih, packed_b_hh, g_first,
                                          g_last, group, group + 1, t - 1, xh, lengths)
                        finish_part_groups(taken_x, taken_h, taken_vector, g_late, g_first, g_last, group, group + 1,
                                           t - 1, xh, lengths, out, gates, hidden_n, save)
                    tally[0] += 1
                if last > first:
                    if not started:
                        start_part_groups(from_x, from_h, inputs, own, packed_b_ih, packed_b_hh, first, last, first,
                                          last, t, xh, lengths)
                    finish_part_groups(from_x, from_h, vector, late, first, last, first, last, t, xh, lengths, out,
                                       gates, hidden_n, save)
            tally[0] += last - first
            report_done(done, tally, stage)
            started = last > first
