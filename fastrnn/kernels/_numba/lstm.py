"""Fused LSTM kernels (PyTorch gate order i, f, g, o).

The time loops only (see :mod:`fastrnn.kernels._driver` for the GEMMs around them): each thread
owns a contiguous chunk of the batch and runs the whole time loop on it, per step the recurrent
product of its rows and one fused gate pass; backward computes per step only the gate gradients and
``dh_{t-1}``.
"""
import numpy as np
from numba import njit, prange

from ._chunks import chunk_bounds
from ._matvec import ROW_BLOCK, add_rows_times_matrix
from .activations import one_of, sigmoid, tanh
from .config import PARALLEL_OPTIONS


@njit(**PARALLEL_OPTIONS)
def lstm_forward_recurrence(gates, lengths, w_hh_t, h0, c0, out, h_n, c_n, tanh_c, c_states, save,
                            n_chunks):
    """Run the LSTM time loop.

    gates     (T, B, 4H)  in: ``x_t W_ih^T + b_ih + b_hh``; out, if ``save``: activated i, f, g, o
    lengths   (B,)        steps of each sequence; finished rows keep their state and output zeros
    w_hh_t    (H, 4H)     ``W_hh`` transposed (each state unit scales one contiguous row)
    h0, c0    (B, H)      initial states
    out       (T, B, H)   zero-filled; receives h_t of running rows
    h_n, c_n  (B, H)      receive the final states
    tanh_c, c_states (T, B, H)  written if ``save``: tanh(c_t) and c_t, for the backward pass
    n_chunks              how many contiguous batch chunks run in parallel
    """
    T, B, G = gates.shape
    H = G // 4
    for chunk in prange(n_chunks):
        first, last = chunk_bounds(chunk, n_chunks, B)
        h = h0[first:last].copy()
        c = c0[first:last].copy()
        acc = np.empty((ROW_BLOCK, G), dtype=gates.dtype)
        tc = np.empty(H, dtype=gates.dtype)
        for t in range(T):
            for r0 in range(0, last - first, ROW_BLOCK):
                rows = min(ROW_BLOCK, last - first - r0)
                for r in range(rows):
                    acc[r, :] = gates[t, first + r0 + r]
                add_rows_times_matrix(acc, h, r0, rows, w_hh_t)
                for r in range(rows):
                    b = first + r0 + r
                    if t >= lengths[b]:
                        continue
                    # Simple loops that each write one array: LLVM vectorises these, not a fused one.
                    a = acc[r]
                    i_g, f_g, g_g, o_g = a[:H], a[H:2 * H], a[2 * H:3 * H], a[3 * H:]
                    for j in range(H):
                        i_g[j] = sigmoid(i_g[j])
                    for j in range(H):
                        f_g[j] = sigmoid(f_g[j])
                    for j in range(H):
                        g_g[j] = tanh(g_g[j])
                    for j in range(H):
                        o_g[j] = sigmoid(o_g[j])
                    c_row, h_row = c[r0 + r], h[r0 + r]
                    for j in range(H):
                        c_row[j] = f_g[j] * c_row[j] + i_g[j] * g_g[j]
                    for j in range(H):
                        tc[j] = tanh(c_row[j])
                    for j in range(H):
                        h_row[j] = o_g[j] * tc[j]
                    out[t, b, :] = h_row
                    if save:
                        gates[t, b, :] = a
                        tanh_c[t, b, :] = tc
                        c_states[t, b, :] = c_row
        h_n[first:last] = h
        c_n[first:last] = c


@njit(**PARALLEL_OPTIONS)
def lstm_backward_recurrence(grad_out, lengths, w_hh, c0, gates, tanh_c, c_states, dh, dc, d_pre, n_chunks):
    """Back-propagate through the LSTM time loop.

    grad_out  (T, B, H)   gradient arriving at each output (ignored past a sequence's end)
    w_hh      (4H, H)     recurrent weights as stored (``dh_{t-1} = d_pre_t @ W_hh``)
    c0        (B, H);  gates (T, B, 4H), tanh_c, c_states (T, B, H): saved by the forward pass
    dh, dc    (B, H)      in: gradient at h_n, c_n; out: gradient at h0, c0
    d_pre     (T, B, 4H)  zero-filled; receives the gradient at the gate pre-activations
    n_chunks              how many contiguous batch chunks run in parallel
    """
    T, B, H = grad_out.shape
    one = one_of(gates)
    for chunk in prange(n_chunks):
        first, last = chunk_bounds(chunk, n_chunks, B)
        acc = np.empty((ROW_BLOCK, H), dtype=gates.dtype)
        for t in range(T - 1, -1, -1):
            for r0 in range(0, last - first, ROW_BLOCK):
                rows = min(ROW_BLOCK, last - first - r0)
                for r in range(rows):
                    b = first + r0 + r
                    if t >= lengths[b]:
                        continue
                    g, tc, go, dp = gates[t, b], tanh_c[t, b], grad_out[t, b], d_pre[t, b]
                    c_prev = c_states[t - 1, b] if t > 0 else c0[b]
                    dh_row, dc_row = dh[b], dc[b]
                    for j in range(H):
                        i_g, f_g, g_g, o_g = g[j], g[H + j], g[2 * H + j], g[3 * H + j]
                        dh_t = dh_row[j] + go[j]
                        dc_t = dc_row[j] + dh_t * o_g * (one - tc[j] * tc[j])
                        dp[j] = dc_t * g_g * i_g * (one - i_g)
                        dp[H + j] = dc_t * c_prev[j] * f_g * (one - f_g)
                        dp[2 * H + j] = dc_t * i_g * (one - g_g * g_g)
                        dp[3 * H + j] = dh_t * tc[j] * o_g * (one - o_g)
                        dc_row[j] = dc_t * f_g
                acc[:rows] = 0
                add_rows_times_matrix(acc, d_pre[t], first + r0, rows, w_hh)
                for r in range(rows):
                    if t < lengths[first + r0 + r]:
                        dh[first + r0 + r, :] = acc[r]
