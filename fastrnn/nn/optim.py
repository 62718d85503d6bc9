"""Optimisers that update a dict of parameter arrays in place from a dict of gradients."""
import numpy as np

from ..kernels import compiled_adam_update

_COMPILED_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def clip_grad_norm(grads, max_norm):
    """Scale all gradients together so their global L2 norm is at most ``max_norm``; return the norm
    before clipping."""
    norm = float(np.sqrt(sum(float(np.sum(g.astype(np.float64) ** 2)) for g in grads.values())))
    if max_norm is not None and norm > max_norm:
        scale = max_norm / (norm + 1e-12)
        for g in grads.values():
            g *= scale
    return norm


class SGD:
    """Stochastic gradient descent with (optionally Nesterov) momentum."""

    def __init__(self, learning_rate=0.01, momentum=0.9, nesterov=False):
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.nesterov = nesterov
        self.velocity = {}

    def update_params(self, params, grads):
        for name, grad in grads.items():
            v = self.velocity.setdefault(name, np.zeros_like(params[name]))
            v *= self.momentum
            v -= self.learning_rate * grad
            if self.nesterov:
                params[name] += self.momentum * v - self.learning_rate * grad
            else:
                params[name] += v


class Adam:
    """Adam (Kingma & Ba, 2015) with bias correction."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-8):
        self.learning_rate = learning_rate
        self.beta_1, self.beta_2, self.epsilon = beta_1, beta_2, epsilon
        self.t = 0
        self.m, self.v = {}, {}

    def update_params(self, params, grads):
        """Update each ``params[name]`` in place from ``grads[name]``.

        In the parameter's own dtype: promoting to float64 (a NumPy float64 step size times a float32
        array) made this the slowest part of a small training step. With Numba, one compiled pass per
        parameter (:func:`fastrnn.kernels.compiled_adam_update`: 114 -> 40 us for an H=128 LSTM's 75k
        parameters, measured); otherwise NumPy with one temporary per parameter.
        """
        self.t += 1
        step = self.learning_rate * np.sqrt(1 - self.beta_2 ** self.t) / (1 - self.beta_1 ** self.t)
        compiled = compiled_adam_update()
        for name, grad in grads.items():
            param = params[name]
            if name not in self.m:
                self.m[name], self.v[name] = np.zeros_like(param), np.zeros_like(param)
            m, v, cast = self.m[name], self.v[name], param.dtype.type
            if (compiled is not None and param.dtype in _COMPILED_DTYPES and grad.shape == param.shape
                    and param.flags.c_contiguous and m.flags.c_contiguous and v.flags.c_contiguous):
                compiled(param.reshape(-1), np.ascontiguousarray(grad, dtype=param.dtype).reshape(-1),
                         m.reshape(-1), v.reshape(-1), cast(self.beta_1), cast(self.beta_2),
                         cast(self.epsilon), cast(step))
                continue
            scratch = np.multiply(grad, cast(1 - self.beta_1), dtype=param.dtype)
            m *= cast(self.beta_1)
            m += scratch
            np.multiply(grad, grad, out=scratch, casting="same_kind")
            scratch *= cast(1 - self.beta_2)
            v *= cast(self.beta_2)
            v += scratch
            np.sqrt(v, out=scratch)
            scratch += cast(self.epsilon)
            np.divide(m, scratch, out=scratch)
            scratch *= cast(step)
            param -= scratch


OPTIMIZERS = {"adam": Adam, "sgd": SGD}
