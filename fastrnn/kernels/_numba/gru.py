"""Fused GRU kernels (PyTorch gate order r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``).

The time loops only, structured like the LSTM ones. The recurrent projection keeps its own bias inside the product because ``r`` gates ``W_hn h + b_hn``.
"""
import numpy as np
from numba import njit, prange

from ._chunks import chunk_bounds
from ._matvec import ROW_BLOCK, add_rows_times_matrix
from .activations import one_of, sigmoid, tanh
from .config import PARALLEL_OPTIONS


@njit(**PARALLEL_OPTIONS)
def gru_forward_recurrence(from_x, lengths, w_hh_t, b_hh, h0, out, h_n, gates, hidden_n, save, n_chunks):
    """Run the GRU time loop.

    from_x    (T, B, 3H)  ``x_t W_ih^T + b_ih`` for every step
    lengths   (B,)        steps of each sequence; finished rows keep their state and output zeros
    w_hh_t    (H, 3H)     ``W_hh`` transposed;  b_hh (3H,)
    h0        (B, H)      initial state;  out (T, B, H) zero-filled;  h_n (B, H) final state
    gates     (T, B, 3H)  written if ``save``: r, z, n after their nonlinearities
    hidden_n  (T, B, H)   written if ``save``: ``W_hn h_{t-1} + b_hn``
    n_chunks              how many contiguous batch chunks run in parallel
    """
    T, B, G = from_x.shape
    H = G // 3
    one = one_of(from_x)
    for chunk in prange(n_chunks):
        first, last = chunk_bounds(chunk, n_chunks, B)
        h = h0[first:last].copy()
        acc = np.empty((ROW_BLOCK, G), dtype=from_x.dtype)
        for t in range(T):
            for r0 in range(0, last - first, ROW_BLOCK):
                rows = min(ROW_BLOCK, last - first - r0)
                for r in range(rows):
                    acc[r, :] = b_hh
                add_rows_times_matrix(acc, h, r0, rows, w_hh_t)
                for r in range(rows):
                    b = first + r0 + r
                    if t >= lengths[b]:
                        continue
                    a, x_part, h_row = acc[r], from_x[t, b], h[r0 + r]
                    if save:
                        hidden_n[t, b, :] = a[2 * H:]
                    r_g, z_g, n_g = a[:H], a[H:2 * H], a[2 * H:]
                    x_r, x_z, x_n = x_part[:H], x_part[H:2 * H], x_part[2 * H:]
                    for j in range(H):
                        r_g[j] = sigmoid(x_r[j] + r_g[j])
                    for j in range(H):
                        z_g[j] = sigmoid(x_z[j] + z_g[j])
                    for j in range(H):
                        n_g[j] = tanh(x_n[j] + r_g[j] * n_g[j])
                    for j in range(H):
                        h_row[j] = (one - z_g[j]) * n_g[j] + z_g[j] * h_row[j]
                    out[t, b, :] = h_row
                    if save:
                        gates[t, b, :] = a
        h_n[first:last] = h


@njit(**PARALLEL_OPTIONS)
def gru_backward_recurrence(grad_out, lengths, w_hh, h0, out, gates, hidden_n, dh, d_from_x, d_from_h,
                            n_chunks):
    """Back-propagate through the GRU time loop.

    grad_out  (T, B, H)   gradient arriving at each output (ignored past a sequence's end)
    w_hh      (3H, H)     recurrent weights as stored
    h0 (B, H), out (T, B, H), gates (T, B, 3H), hidden_n (T, B, H): saved by the forward pass
    dh        (B, H)      in: gradient at h_n; out: gradient at h0
    d_from_x, d_from_h (T, B, 3H)  zero-filled; receive the gradients at the input and recurrent
                          projections (they differ in the n block, which r gates on the h side)
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
                    g, hn, go, h_prev = gates[t, b], hidden_n[t, b], grad_out[t, b], (
                        out[t - 1, b] if t > 0 else h0[b])
                    dx, dhh, dh_row = d_from_x[t, b], d_from_h[t, b], dh[b]
                    for j in range(H):
                        r_g, z_g, n_g = g[j], g[H + j], g[2 * H + j]
                        dh_t = dh_row[j] + go[j]
                        dn_pre = dh_t * (one - z_g) * (one - n_g * n_g)
                        dz_pre = dh_t * (h_prev[j] - n_g) * z_g * (one - z_g)
                        dr_pre = dn_pre * hn[j] * r_g * (one - r_g)
                        dx[j] = dr_pre
                        dx[H + j] = dz_pre
                        dx[2 * H + j] = dn_pre
                        dhh[j] = dr_pre
                        dhh[H + j] = dz_pre
                        dhh[2 * H + j] = dn_pre * r_g
                        dh_row[j] = dh_t * z_g  # the direct path; the product is added below
                acc[:rows] = 0
                add_rows_times_matrix(acc, d_from_h[t], first + r0, rows, w_hh)
                for r in range(rows):
                    b = first + r0 + r
                    if t < lengths[b]:
                        for j in range(H):
                            dh[b, j] += acc[r, j]
