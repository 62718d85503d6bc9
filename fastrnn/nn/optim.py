"""Optimisers that update a dict of parameter arrays in place from a dict of gradients."""
import numpy as np


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
        self.t += 1
        step = self.learning_rate * np.sqrt(1 - self.beta_2 ** self.t) / (1 - self.beta_1 ** self.t)
        for name, grad in grads.items():
            m = self.m.setdefault(name, np.zeros_like(params[name]))
            v = self.v.setdefault(name, np.zeros_like(params[name]))
            m *= self.beta_1
            m += (1 - self.beta_1) * grad
            v *= self.beta_2
            v += (1 - self.beta_2) * grad * grad
            params[name] -= (step * m / (np.sqrt(v) + self.epsilon)).astype(params[name].dtype)


OPTIMIZERS = {"adam": Adam, "sgd": SGD}
