"""Fused GRU kernels (PyTorch gate order r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``).

Structured like the LSTM ones. The input and recurrent products stay separate accumulators because
``r`` gates only the recurrent part of ``n`` (with its own bias inside the product).
"""
import numpy as np
from numba import njit, prange

from ._aligned import empty_aligned
from ._copy import (copy_row, copy_rows, fill_rows, pack_unit_group, pack_unit_group_bias, padded_row_length,
                    zero_rows)
from ._sync import claim_block, new_block_counter, new_counters, new_tally, next_item, rows_per_block
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


@njit(**PARALLEL_OPTIONS)
def gru_forward_columns(xh, lengths, w_ih, b_ih, w_hh, b_hh, out, gates, hidden_n, save, n_parts):
    """Run the GRU with each step's hidden units split across threads (batches smaller than the
    thread count). Needs ``H % 16 == 0``.

    xh        (T+1, B, I+H)  in: ``x_t`` in ``xh[t, :, :I]``, ``h0`` in ``xh[0, :, I:]``; receives ``h_t`` in
                            ``xh[t+1, :, I:]`` (finished rows carried on: ``xh[T, :, I:]`` is h_n)
    w_ih (3H, I), w_hh (3H, H)  the weights as stored (H = 16G), packed by the parts as in :func:`lstm_forward_columns`
    b_ih, b_hh (3H,)         biases
    out, gates, hidden_n, save: as :func:`gru_forward_recurrence`
    n_parts   parts of the parallel loop (the thread count); they share the work as ``_sync`` says

    A work item is one group of 16 hidden units: its r, z, n panels on both sides, then its gate pass.
    """
    T, B = xh.shape[0] - 1, xh.shape[1]
    H = out.shape[2]
    I = xh.shape[2] - H
    n_groups = H // PANEL
    packed_ih = empty_aligned((3 * n_groups, I, PANEL), xh)  # shared by the parts
    packed_hh = empty_aligned((3 * n_groups, H, PANEL), xh)
    packed_b_ih = np.empty((n_groups, 3 * PANEL), dtype=xh.dtype)  # a group's r, z, n biases side by side
    packed_b_hh = np.empty((n_groups, 3 * PANEL), dtype=xh.dtype)
    claims, done = new_counters(T + 1, n_parts)  # step 0 packs, step t + 1 computes time step t
    one = one_of(xh)
    for part in prange(n_parts):
        from_x = np.empty(3 * PANEL, dtype=xh.dtype)
        from_h = np.empty(3 * PANEL, dtype=xh.dtype)
        tally = new_tally()
        while True:
            group = next_item(claims, done, tally, part, n_parts, n_groups, 0)
            if group < 0:
                break
            pack_unit_group(packed_ih, w_ih, 0, group, n_groups)
            pack_unit_group(packed_hh, w_hh, 0, group, n_groups)
            pack_unit_group_bias(packed_b_ih, b_ih, group)
            pack_unit_group_bias(packed_b_hh, b_hh, group)
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
                    copy_row(from_x, packed_b_ih[group])
                    copy_row(from_h, packed_b_hh[group])
                    add_one_row_times_three_panels(from_x, xh[t, b], 0, packed_ih, group, n_groups)
                    add_one_row_times_three_panels(from_h, xh[t, b], I, packed_hh, group, n_groups)
                    if save:
                        copy_row(hidden_n[t, b, u0:u0 + PANEL], from_h[2 * PANEL:])
                    r_g, z_g, n_g = from_h[:PANEL], from_h[PANEL:2 * PANEL], from_h[2 * PANEL:]
                    x_r, x_z, x_n = from_x[:PANEL], from_x[PANEL:2 * PANEL], from_x[2 * PANEL:]
                    for j in range(PANEL):
                        r_g[j] = sigmoid(x_r[j] + r_g[j])
                    for j in range(PANEL):
                        z_g[j] = sigmoid(x_z[j] + z_g[j])
                    for j in range(PANEL):
                        n_g[j] = tanh(x_n[j] + r_g[j] * n_g[j])
                    for j in range(PANEL):
                        h_row[j] = (one - z_g[j]) * n_g[j] + z_g[j] * h_prev[j]
                    copy_row(out[b, t, u0:u0 + PANEL], h_row)
                    if save:
                        for q in range(3):
                            copy_row(gates[t, b, q * H + u0:q * H + u0 + PANEL], from_h[q * PANEL:(q + 1) * PANEL])
                tally[0] += 1
