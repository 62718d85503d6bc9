"""Losses with their gradients, as small functions of ``(prediction, target, weight)``.

Every loss takes raw model outputs ``z`` of shape ``(n, k)``, targets, and per-row weights ``w``
``(n,)`` (sample weights times any mask); it returns ``(loss, grad_z)`` where the loss is the
weighted mean ``sum_i w_i l_i / sum_i w_i`` and ``grad_z`` its gradient.
"""
import numpy as np


def _normalise(w):
    total = float(np.sum(w))
    return w / total if total > 0 else w


def squared_error(z, y, w):
    """Half mean squared error summed over outputs; ``y`` is ``(n, k)``."""
    w = _normalise(w)[:, None]
    diff = z - y
    return float(0.5 * np.sum(w * diff * diff)), w * diff


def softmax(z):
    """Row-wise softmax, shifted by the row maximum so it never overflows."""
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_cross_entropy(z, y, w):
    """Multiclass cross-entropy; ``y`` holds class indices ``(n,)``."""
    w = _normalise(w)
    shifted = z - z.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    rows = np.arange(len(y))
    loss = -float(np.sum(w * log_p[rows, y]))
    grad = np.exp(log_p)
    grad[rows, y] -= 1.0
    return loss, grad * w[:, None]


def sigmoid(z):
    return 0.5 * (np.tanh(0.5 * z) + 1.0)


def logistic(z, y, w):
    """Binary cross-entropy on one logit column; ``y`` holds 0/1 indices ``(n,)``."""
    w = _normalise(w)
    logit = z[:, 0]
    # log(1 + exp(-|z|)) form: finite for any logit
    loss_rows = np.maximum(logit, 0) - logit * y + np.log1p(np.exp(-np.abs(logit)))
    grad = (sigmoid(logit) - y) * w
    return float(np.sum(w * loss_rows)), grad[:, None].astype(z.dtype)


LOSSES = {"squared_error": squared_error, "softmax": softmax_cross_entropy, "logistic": logistic}
