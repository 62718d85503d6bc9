"""One time step of each cell in a few NumPy calls: the engine of :meth:`fastrnn.nn.LSTM.step` & co.

At batch 1 a step is two small matrix-vector products; what costs is the number of NumPy calls
around them (about a microsecond each), so the gate nonlinearities share calls: every sigmoid is
``0.5 * tanh(0.5 a) + 0.5``, so one ``tanh`` over the pre-activations, scaled per gate block, serves
all gates. Weights in PyTorch's layout ``(G*H, I)``, ``(G*H, H)``; ``x`` ``(B, I)``, states ``(B, H)``.
"""
import numpy as np

_scales = {}


def _gate_scales(gates, hidden_size, tanh_blocks, dtype):
    """``(G*H,)``: 0.5 on sigmoid gate blocks, 1 on the blocks that take a plain tanh (cached)."""
    key = (gates, hidden_size, tanh_blocks, np.dtype(dtype))
    if key not in _scales:
        scale = np.full(gates * hidden_size, 0.5, dtype=dtype)
        for block in tanh_blocks:
            scale[block * hidden_size:(block + 1) * hidden_size] = 1.0
        _scales[key] = scale
    return _scales[key]


def lstm_step(x, h, c, weights):
    """``(h', c')`` of an LSTM cell (gates i, f, g, o)."""
    w_ih, w_hh, b_ih, b_hh = weights
    H = h.shape[1]
    pre = x @ w_ih.T
    pre += h @ w_hh.T
    pre += b_ih
    pre += b_hh
    pre *= _gate_scales(4, H, (2,), pre.dtype)
    t = np.tanh(pre, out=pre)                      # tanh(a/2) for i, f, o; tanh(a) for g
    s = t * 0.5
    s += 0.5                                       # sigmoids (the g block of s is unused)
    c_new = s[:, H:2 * H] * c
    c_new += s[:, :H] * t[:, 2 * H:3 * H]
    return s[:, 3 * H:] * np.tanh(c_new), c_new


def gru_step(x, h, weights):
    """``h'`` of a GRU cell (gates r, z, n; ``n = tanh(W_in x + b_in + r * (W_hn h + b_hn))``)."""
    w_ih, w_hh, b_ih, b_hh = weights
    H = h.shape[1]
    from_x = x @ w_ih.T
    from_x += b_ih
    from_h = h @ w_hh.T
    from_h += b_hh
    rz = from_x[:, :2 * H] + from_h[:, :2 * H]
    rz *= 0.5
    np.tanh(rz, out=rz)
    rz *= 0.5
    rz += 0.5                                      # [r | z]
    n = rz[:, :H] * from_h[:, 2 * H:]
    n += from_x[:, 2 * H:]
    np.tanh(n, out=n)
    z = rz[:, H:]
    return n + z * (h - n)                         # (1 - z) n + z h


def rnn_step(x, h, weights, relu):
    """``h'`` of a vanilla RNN cell with tanh or ReLU."""
    w_ih, w_hh, b_ih, b_hh = weights
    pre = x @ w_ih.T
    pre += h @ w_hh.T
    pre += b_ih
    pre += b_hh
    return np.maximum(pre, 0.0, out=pre) if relu else np.tanh(pre, out=pre)
