"""Plain-NumPy recurrent kernels: the oracle every other backend is tested against.

Written to be read: one line per equation, one time step per loop iteration.

The kernel contract (shared by every backend)
---------------------------------------------
Layout is time-major and one direction of one layer:

- ``x``        (T, B, I)  input sequence, C-contiguous.
- ``lengths``  (B,) int64, each in ``[1, T]``. At steps ``t >= lengths[b]`` sequence ``b`` is
  finished: its state is frozen, its output row is zero, and gradients arriving there are ignored.
  (Reverse directions are handled by the layer, which reverses each sequence within its length.)
- ``weights``  tuple ``(w_ih (G*H, I), w_hh (G*H, H), b_ih (G*H,), b_hh (G*H,))`` in PyTorch's
  layout and gate order: LSTM G=4 gates i,f,g,o; GRU G=3 gates r,z,n; vanilla RNN G=1.
- ``h0``, ``c0`` (B, H) initial states; ``c0`` is ``None`` for cells other than LSTM.

``forward(x, lengths, weights, h0, c0, need_grad=True)
-> (out (T, B, H), h_n (B, H), c_n (B, H) or None, cache)``; with ``need_grad=False`` nothing is saved
for a backward pass and ``cache`` is None (inference).

``backward(weights, cache, grad_out, grad_h_n, grad_c_n, need_grad_x=True)
-> (grad_x (T, B, I), grad_h0 (B, H), grad_c0 (B, H) or None, (gw_ih, gw_hh, gb_ih, gb_hh))``;
``grad_x`` is None when ``need_grad_x`` is False (compiled backends then skip its product; this
reference computes it anyway, for readability, and drops it).

``grad_out`` is (T, B, H); ``grad_h_n``/``grad_c_n`` are (B, H) or ``None`` (meaning zero).
``cache`` is whatever the backend's forward saved; only the same backend's backward reads it.
All float arrays of one call share one dtype (float32 or float64). Kernels never validate.
"""
import numpy as np


def sigmoid(a):
    """Logistic function, written to stay finite for large negative inputs."""
    return 0.5 * (np.tanh(0.5 * a) + 1.0)


def _active_rows(t, lengths):
    """(B, 1) boolean column: which sequences are still running at step ``t``."""
    return (t < lengths)[:, None]


def _zeros_like_or(grad, like):
    return np.zeros_like(like) if grad is None else grad.copy()


# ---------------------------------------------------------------- LSTM
def lstm_forward(x, lengths, weights, h0, c0, need_grad=True):
    w_ih, w_hh, b_ih, b_hh = weights
    T = x.shape[0]
    H = w_hh.shape[1]
    h, c = h0.copy(), c0.copy()
    out = np.zeros((T,) + h0.shape, dtype=x.dtype)
    h_prev, c_prev, c_new, gates = [], [], [], []
    for t in range(T):
        running = _active_rows(t, lengths)
        pre = x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh
        i = sigmoid(pre[:, 0 * H:1 * H])
        f = sigmoid(pre[:, 1 * H:2 * H])
        g = np.tanh(pre[:, 2 * H:3 * H])
        o = sigmoid(pre[:, 3 * H:4 * H])
        c_t = f * c + i * g
        h_t = o * np.tanh(c_t)
        h_prev.append(h); c_prev.append(c); c_new.append(c_t); gates.append((i, f, g, o))
        out[t] = np.where(running, h_t, 0.0)
        h = np.where(running, h_t, h)
        c = np.where(running, c_t, c)
    cache = dict(x=x, lengths=lengths, h_prev=h_prev, c_prev=c_prev, c_new=c_new, gates=gates)
    return out, h, c, (cache if need_grad else None)


def lstm_backward(weights, cache, grad_out, grad_h_n, grad_c_n, need_grad_x=True):
    w_ih, w_hh, b_ih, b_hh = weights
    x, lengths = cache["x"], cache["lengths"]
    T = x.shape[0]
    dh = _zeros_like_or(grad_h_n, cache["h_prev"][0])
    dc = _zeros_like_or(grad_c_n, cache["c_prev"][0])
    grad_x = np.zeros_like(x)
    gw_ih, gw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    gb = np.zeros_like(b_ih)
    for t in reversed(range(T)):
        running = _active_rows(t, lengths)
        i, f, g, o = cache["gates"][t]
        tanh_c = np.tanh(cache["c_new"][t])
        dh_t = dh + grad_out[t]
        dc_t = dc + dh_t * o * (1.0 - tanh_c ** 2)
        d_pre = np.concatenate([
            dc_t * g * i * (1.0 - i),                   # input gate
            dc_t * cache["c_prev"][t] * f * (1.0 - f),  # forget gate
            dc_t * i * (1.0 - g ** 2),                  # cell candidate
            dh_t * tanh_c * o * (1.0 - o),              # output gate
        ], axis=1)
        d_pre = np.where(running, d_pre, 0.0)
        grad_x[t] = d_pre @ w_ih
        gw_ih += d_pre.T @ x[t]
        gw_hh += d_pre.T @ cache["h_prev"][t]
        gb += d_pre.sum(axis=0)
        dh = np.where(running, d_pre @ w_hh, dh)
        dc = np.where(running, dc_t * f, dc)
    return (grad_x if need_grad_x else None), dh, dc, (gw_ih, gw_hh, gb, gb.copy())


# ---------------------------------------------------------------- GRU
def gru_forward(x, lengths, weights, h0, c0=None, need_grad=True):
    w_ih, w_hh, b_ih, b_hh = weights
    T = x.shape[0]
    H = w_hh.shape[1]
    h = h0.copy()
    out = np.zeros((T,) + h0.shape, dtype=x.dtype)
    h_prev, gates = [], []
    for t in range(T):
        running = _active_rows(t, lengths)
        from_x = x[t] @ w_ih.T + b_ih
        from_h = h @ w_hh.T + b_hh
        r = sigmoid(from_x[:, 0:H] + from_h[:, 0:H])
        z = sigmoid(from_x[:, H:2 * H] + from_h[:, H:2 * H])
        hn = from_h[:, 2 * H:3 * H]                      # W_hn h + b_hn, gated by r
        n = np.tanh(from_x[:, 2 * H:3 * H] + r * hn)
        h_t = (1.0 - z) * n + z * h
        h_prev.append(h); gates.append((r, z, n, hn))
        out[t] = np.where(running, h_t, 0.0)
        h = np.where(running, h_t, h)
    cache = dict(x=x, lengths=lengths, h_prev=h_prev, gates=gates)
    return out, h, None, (cache if need_grad else None)


def gru_backward(weights, cache, grad_out, grad_h_n, grad_c_n=None, need_grad_x=True):
    w_ih, w_hh, b_ih, b_hh = weights
    x, lengths = cache["x"], cache["lengths"]
    T = x.shape[0]
    dh = _zeros_like_or(grad_h_n, cache["h_prev"][0])
    grad_x = np.zeros_like(x)
    gw_ih, gw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    gb_ih, gb_hh = np.zeros_like(b_ih), np.zeros_like(b_hh)
    for t in reversed(range(T)):
        running = _active_rows(t, lengths)
        r, z, n, hn = cache["gates"][t]
        h_prev = cache["h_prev"][t]
        dh_t = dh + grad_out[t]
        dn_pre = dh_t * (1.0 - z) * (1.0 - n ** 2)
        dz_pre = dh_t * (h_prev - n) * z * (1.0 - z)
        dr_pre = dn_pre * hn * r * (1.0 - r)
        d_from_x = np.where(running, np.concatenate([dr_pre, dz_pre, dn_pre], axis=1), 0.0)
        d_from_h = np.where(running, np.concatenate([dr_pre, dz_pre, dn_pre * r], axis=1), 0.0)
        grad_x[t] = d_from_x @ w_ih
        gw_ih += d_from_x.T @ x[t]
        gw_hh += d_from_h.T @ h_prev
        gb_ih += d_from_x.sum(axis=0)
        gb_hh += d_from_h.sum(axis=0)
        dh = np.where(running, dh_t * z + d_from_h @ w_hh, dh)
    return (grad_x if need_grad_x else None), dh, None, (gw_ih, gw_hh, gb_ih, gb_hh)


# ---------------------------------------------------------------- vanilla RNN
def _rnn_forward(x, lengths, weights, h0, activation, need_grad):
    w_ih, w_hh, b_ih, b_hh = weights
    T = x.shape[0]
    h = h0.copy()
    out = np.zeros((T,) + h0.shape, dtype=x.dtype)
    h_prev, h_new = [], []
    for t in range(T):
        running = _active_rows(t, lengths)
        h_t = activation(x[t] @ w_ih.T + b_ih + h @ w_hh.T + b_hh)
        h_prev.append(h); h_new.append(h_t)
        out[t] = np.where(running, h_t, 0.0)
        h = np.where(running, h_t, h)
    cache = dict(x=x, lengths=lengths, h_prev=h_prev, h_new=h_new)
    return out, h, None, (cache if need_grad else None)


def _rnn_backward(weights, cache, grad_out, grad_h_n, activation_grad, need_grad_x):
    w_ih, w_hh, b_ih, b_hh = weights
    x, lengths = cache["x"], cache["lengths"]
    T = x.shape[0]
    dh = _zeros_like_or(grad_h_n, cache["h_prev"][0])
    grad_x = np.zeros_like(x)
    gw_ih, gw_hh = np.zeros_like(w_ih), np.zeros_like(w_hh)
    gb = np.zeros_like(b_ih)
    for t in reversed(range(T)):
        running = _active_rows(t, lengths)
        d_pre = np.where(running, (dh + grad_out[t]) * activation_grad(cache["h_new"][t]), 0.0)
        grad_x[t] = d_pre @ w_ih
        gw_ih += d_pre.T @ x[t]
        gw_hh += d_pre.T @ cache["h_prev"][t]
        gb += d_pre.sum(axis=0)
        dh = np.where(running, d_pre @ w_hh, dh)
    return (grad_x if need_grad_x else None), dh, None, (gw_ih, gw_hh, gb, gb.copy())


def rnn_tanh_forward(x, lengths, weights, h0, c0=None, need_grad=True):
    return _rnn_forward(x, lengths, weights, h0, np.tanh, need_grad)


def rnn_tanh_backward(weights, cache, grad_out, grad_h_n, grad_c_n=None, need_grad_x=True):
    # tanh'(a) expressed through its output h = tanh(a)
    return _rnn_backward(weights, cache, grad_out, grad_h_n, lambda h: 1.0 - h ** 2, need_grad_x)


def rnn_relu_forward(x, lengths, weights, h0, c0=None, need_grad=True):
    return _rnn_forward(x, lengths, weights, h0, lambda a: np.maximum(a, 0.0), need_grad)


def rnn_relu_backward(weights, cache, grad_out, grad_h_n, grad_c_n=None, need_grad_x=True):
    return _rnn_backward(weights, cache, grad_out, grad_h_n, lambda h: (h > 0).astype(h.dtype), need_grad_x)
