"""Fused vanilla (Elman) RNN kernels, ``h_t = act(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh)`` with
``act`` tanh or relu (a flag, so each dtype compiles one kernel per pass): the time loops only."""
import numpy as np
from numba import njit, prange

from ._chunks import chunk_bounds
from ._matvec import ROW_BLOCK, add_rows_times_matrix
from .activations import one_of, tanh
from .config import PARALLEL_OPTIONS


@njit(**PARALLEL_OPTIONS)
def rnn_forward_recurrence(pre, lengths, w_hh_t, h0, out, h_n, relu, n_chunks):
    """Run the RNN time loop.

    pre       (T, B, H)   ``x_t W_ih^T + b_ih + b_hh`` for every step
    lengths   (B,)        steps of each sequence; finished rows keep their state and output zeros
    w_hh_t    (H, H)      ``W_hh`` transposed;  h0 (B, H) initial state
    out       (T, B, H)   zero-filled; receives h_t (it is also what the backward pass reads)
    h_n       (B, H)      receives the final state;  relu: relu instead of tanh
    n_chunks              how many contiguous batch chunks run in parallel
    """
    T, B, H = pre.shape
    zero = one_of(pre) - one_of(pre)
    for chunk in prange(n_chunks):
        first, last = chunk_bounds(chunk, n_chunks, B)
        h = h0[first:last].copy()
        acc = np.empty((ROW_BLOCK, H), dtype=pre.dtype)
        for t in range(T):
            for r0 in range(0, last - first, ROW_BLOCK):
                rows = min(ROW_BLOCK, last - first - r0)
                for r in range(rows):
                    acc[r, :] = pre[t, first + r0 + r]
                add_rows_times_matrix(acc, h, r0, rows, w_hh_t)
                for r in range(rows):
                    b = first + r0 + r
                    if t >= lengths[b]:
                        continue
                    a, h_row = acc[r], h[r0 + r]
                    if relu:
                        for j in range(H):
                            h_row[j] = max(a[j], zero)
                    else:
                        for j in range(H):
                            h_row[j] = tanh(a[j])
                    out[t, b, :] = h_row
        h_n[first:last] = h


@njit(**PARALLEL_OPTIONS)
def rnn_backward_recurrence(grad_out, lengths, w_hh, out, dh, d_pre, relu, n_chunks):
    """Back-propagate through the RNN time loop.

    grad_out (T, B, H); w_hh (H, H) as stored; out (T, B, H) saved outputs; dh (B, H) in: gradient
    at h_n, out: at h0; d_pre (T, B, H) zero-filled, receives the pre-activation gradients.
    """
    T, B, H = grad_out.shape
    one = one_of(out)
    zero = one - one
    for chunk in prange(n_chunks):
        first, last = chunk_bounds(chunk, n_chunks, B)
        acc = np.empty((ROW_BLOCK, H), dtype=out.dtype)
        for t in range(T - 1, -1, -1):
            for r0 in range(0, last - first, ROW_BLOCK):
                rows = min(ROW_BLOCK, last - first - r0)
                for r in range(rows):
                    b = first + r0 + r
                    if t >= lengths[b]:
                        continue
                    h_t, go, dp, dh_row = out[t, b], grad_out[t, b], d_pre[t, b], dh[b]
                    if relu:
                        for j in range(H):
                            dp[j] = (dh_row[j] + go[j]) if h_t[j] > zero else zero
                    else:
                        for j in range(H):
                            dp[j] = (dh_row[j] + go[j]) * (one - h_t[j] * h_t[j])
                acc[:rows] = 0
                add_rows_times_matrix(acc, d_pre[t], first + r0, rows, w_hh)
                for r in range(rows):
                    if t < lengths[first + r0 + r]:
                        dh[first + r0 + r, :] = acc[r]
