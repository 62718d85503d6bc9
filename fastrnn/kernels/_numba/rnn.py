"""Fused vanilla (Elman) RNN kernels, ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` with
``act`` tanh or relu (a flag, so each dtype compiles one kernel per pass). Structured like the LSTM
ones: one register-tiled product of ``[x_t | h_{t-1}]`` per step."""
import numpy as np
from numba import njit, prange

from ._aligned import empty_aligned
from ._copy import copy_row, copy_rows, fill_rows, pack_unit_group, padded_row_length, zero_rows
from ._sync import claim_block, new_block_counter, new_counters, new_tally, next_item, rows_per_block
from ._tiles import GROUP, PANEL, add_one_row_times_panels, add_rows_times_panels
from .activations import one_of, tanh
from .config import PARALLEL_OPTIONS


@njit(**PARALLEL_OPTIONS)
def rnn_forward_recurrence(x, lengths, packed_w, bias, h0, out, h_n, relu, n_chunks):
    """Run the RNN over all steps, input projection included.

    x         (B, T, I)   inputs, batch-first (the layers' layout: no transposing copy)
    lengths   (B,)        steps of each sequence; finished rows keep their state and output zeros
    packed_w  (P, I+H, 16)  ``[W_ih | W_hh]^T`` in 16-column panels;  bias (16P,) ``b_ih + b_hh``, padded
    h0        (B, H)      initial state
    out       (B, T, H)   zero-filled, batch-first; receives h_t (the backward pass reads it)
    h_n       (B, H)      receives the final state;  relu: relu instead of tanh
    n_chunks              parts of the parallel loop (threads); they claim blocks of rows
                          (``_sync.rows_per_block``), each run through the whole time loop
    """
    B, T, I = x.shape
    H = h0.shape[1]
    zero = one_of(x) - one_of(x)
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
            acc = np.empty((GROUP, bias.shape[0]), dtype=x.dtype)
            for t in range(T):
                copy_rows(xh, 0, x[first:last, t])
                for r0 in range(0, n, GROUP):
                    rows = min(GROUP, n - r0)
                    fill_rows(acc, rows, bias)
                    add_rows_times_panels(acc, xh, r0, rows, 0, packed_w)
                    for r in range(rows):
                        b = first + r0 + r
                        if t >= lengths[b]:
                            continue
                        a, h_row = acc[r], xh[r0 + r, I:I + H]
                        if relu:
                            for j in range(H):
                                h_row[j] = max(a[j], zero)
                        else:
                            for j in range(H):
                                h_row[j] = tanh(a[j])
                        copy_row(out[b, t], h_row)
            for r in range(n):
                copy_row(h_n[first + r], xh[r, I:I + H])


@njit(**PARALLEL_OPTIONS)
def rnn_backward_recurrence(grad_out, lengths, packed_w_hh, out, dh, d_pre, relu, n_chunks):
    """Back-propagate through the RNN time loop.

    grad_out (B, T, H) batch-first; packed_w_hh (P, H, 16) ``W_hh`` as stored in 16-column panels; out (B, T, H)
    saved outputs; dh (B, H) in: gradient at h_n, out: at h0; d_pre (T, B, H) zero-filled, receives
    the pre-activation gradients.
    """
    B, T, H = grad_out.shape
    one = one_of(out)
    zero = one - one
    block_rows = rows_per_block(B, n_chunks, GROUP)
    claimed = new_block_counter()
    for part in prange(n_chunks):
        while True:
            first, last = claim_block(claimed, block_rows, B)
            if first == last:
                break
            n = last - first
            acc = np.empty((GROUP, packed_w_hh.shape[0] * PANEL), dtype=out.dtype)
            for t in range(T - 1, -1, -1):
                d_pre_t = d_pre[t]
                for r0 in range(0, n, GROUP):
                    rows = min(GROUP, n - r0)
                    for r in range(rows):
                        b = first + r0 + r
                        if t >= lengths[b]:
                            continue
                        h_t, go, dp, dh_row = out[b, t], grad_out[b, t], d_pre_t[b], dh[b]
                        if relu:
                            for j in range(H):
                                dp[j] = (dh_row[j] + go[j]) if h_t[j] > zero else zero
                        else:
                            for j in range(H):
                                dp[j] = (dh_row[j] + go[j]) * (one - h_t[j] * h_t[j])
                    zero_rows(acc, rows)
                    add_rows_times_panels(acc, d_pre_t, first + r0, rows, 0, packed_w_hh)
                    for r in range(rows):
                        if t < lengths[first + r0 + r]:
                            copy_row(dh[first + r0 + r], acc[r, :H])


@njit(**PARALLEL_OPTIONS)
def rnn_forward_columns(xh, lengths, w_ih, w_hh, bias, out, relu, n_parts):
    """Run the RNN with each step's hidden units split across threads (batches smaller than the
    thread count). Needs ``H % 16 == 0``.

    xh        (T+1, B, I+H)  in: ``x_t`` in ``xh[t, :, :I]``, ``h0`` in ``xh[0, :, I:]``; receives ``h_t`` in
                            ``xh[t+1, :, I:]`` (finished rows carried on: ``xh[T, :, I:]`` is h_n)
    w_ih (H, I), w_hh (H, H)  the weights as stored (H = 16G), packed by the parts as in the LSTM's column kernel
    bias, out, relu: as :func:`rnn_forward_recurrence`
    n_parts   parts of the parallel loop (the thread count); they share the work as ``_sync`` says

    A work item is one 16-unit panel and its activation.
    """
    T, B = xh.shape[0] - 1, xh.shape[1]
    H = out.shape[2]
    I = xh.shape[2] - H
    n_groups = H // PANEL
    packed_w = empty_aligned((n_groups, I + H, PANEL), xh)  # shared by the parts
    claims, done = new_counters(T + 1, n_parts)  # step 0 packs, step t + 1 computes time step t
    zero = one_of(xh) - one_of(xh)
    for part in prange(n_parts):
        acc = np.empty(PANEL, dtype=xh.dtype)
        tally = new_tally()
        while True:
            group = next_item(claims, done, tally, part, n_parts, n_groups, 0)
            if group < 0:
                break
            pack_unit_group(packed_w, w_ih, 0, group, n_groups)
            pack_unit_group(packed_w, w_hh, I, group, n_groups)
            tally[0] += 1
        for t in range(T):
            while True:
                group = next_item(claims, done, tally, part, n_parts, n_groups, t + 1)
                if group < 0:
                    break
                u0 = group * PANEL
                for b in range(B):
                    h_row = xh[t + 1, b, I + u0:I + u0 + PANEL]
                    if t >= lengths[b]:
                        copy_row(h_row, xh[t, b, I + u0:I + u0 + PANEL])
                        continue
                    copy_row(acc, bias[u0:u0 + PANEL])
                    add_one_row_times_panels(acc, xh[t, b], 0, packed_w[group:group + 1])
                    if relu:
                        for j in range(PANEL):
                            h_row[j] = max(acc[j], zero)
                    else:
                        for j in range(PANEL):
                            h_row[j] = tanh(acc[j])
                    copy_row(out[b, t, u0:u0 + PANEL], h_row)
                tally[0] += 1
