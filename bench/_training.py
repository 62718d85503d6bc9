"""The training step the benchmark times for fastrnn: forward, MSE on the last output through a
linear head, backward, Adam update.

It uses ``fastrnn.nn.linear.Linear`` and ``fastrnn.nn.optim.Adam`` when they import, so the
benchmark times the library's own code; otherwise the small NumPy ``_LinearHead`` / ``_Adam`` below
stand in (same arithmetic as ``torch.nn.Linear`` + ``torch.optim.Adam`` defaults).
:func:`head_source` says which ran.
"""
import numpy as np


def initial_head(hidden_size, seed=0):
    """``(weight (1, H), bias (1,))`` float32, uniform in ±1/sqrt(H) like ``torch.nn.Linear``."""
    rng = np.random.default_rng(seed + 1)
    bound = 1.0 / np.sqrt(hidden_size)
    weight = rng.uniform(-bound, bound, size=(1, hidden_size)).astype(np.float32)
    bias = rng.uniform(-bound, bound, size=(1,)).astype(np.float32)
    return weight, bias


class _LinearHead:
    """``y = x @ weight.T + bias`` with its backward; ``params``/``grads`` dicts of live arrays."""

    def __init__(self, weight, bias):
        self.params = {"weight": weight.copy(), "bias": bias.copy()}
        self.grads = {}
        self._x = None

    def forward(self, x):
        self._x = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, grad_y):
        self.grads = {"weight": grad_y.T @ self._x, "bias": grad_y.sum(axis=0)}
        return grad_y @ self.params["weight"]


class _Adam:
    """Adam (``torch.optim.Adam`` defaults: lr 1e-3, betas 0.9/0.999, eps 1e-8), in place."""

    def __init__(self, lr=1e-3, beta1=0.9, beta2=0.999, eps=1e-8):
        self.lr, self.beta1, self.beta2, self.eps = lr, beta1, beta2, eps
        self.t = 0
        self._moments = {}

    def step(self, groups):
        """``groups``: iterable of ``(params dict, grads dict)``; every param is updated in place."""
        self.t += 1
        correction1 = 1.0 - self.beta1 ** self.t
        correction2 = 1.0 - self.beta2 ** self.t
        step_size = self.lr / correction1
        for group, (params, grads) in enumerate(groups):
            for name, param in params.items():
                grad = grads[name]
                key = (group, name)
                if key not in self._moments:
                    self._moments[key] = (np.zeros_like(param), np.zeros_like(param))
                m, v = self._moments[key]
                m *= self.beta1
                m += (1.0 - self.beta1) * grad
                v *= self.beta2
                v += (1.0 - self.beta2) * grad * grad
                denom = np.sqrt(v / correction2)
                denom += self.eps
                param -= (step_size * m / denom).astype(param.dtype, copy=False)


def _library_parts():
    """The library's own head and optimiser classes, or None while they do not exist yet."""
    try:
        import fastrnn.nn.linear as linear  # noqa: F401
        import fastrnn.nn.optim as optim  # noqa: F401
    except ImportError:
        return None
    return linear, optim


def head_source():
    """Which head and optimiser the fastrnn training step runs (for the report)."""
    if _library_parts():
        return "fastrnn.nn.linear.Linear + fastrnn.nn.optim.Adam (the library's own)"
    return "local bench/_training.py stand-ins (fastrnn.nn.linear/optim not importable)"


def make_training_step(layer, x, y, seed=0):
    """Return a no-argument callable that runs one full training step of ``layer`` on ``(x, y)``.

    ``layer`` is a fastrnn layer stack (batch-first); ``x`` is ``(B, T, I)``, ``y`` is ``(B, 1)``.
    The loss is ``mean((head(output[:, -1]) - y) ** 2)``.
    """
    features = layer.hidden_size * layer.num_directions
    weight, bias = initial_head(features, seed)
    library = _library_parts()
    if library:
        linear, optim = library
        head = linear.Linear(features, 1, dtype=np.float32)
        np.copyto(head.params["weight"], weight)
        np.copyto(head.params["bias"], bias)
        layer_adam, head_adam = optim.Adam(learning_rate=1e-3), optim.Adam(learning_rate=1e-3)

        def update():
            layer_adam.update_params(layer.params, layer.grads)
            head_adam.update_params(head.params, head.grads)
    else:
        head = _LinearHead(weight, bias)
        optimiser = _Adam()

        def update():
            optimiser.step(((layer.params, layer.grads), (head.params, head.grads)))
    layer.train()
    batch = x.shape[0]

    def step():
        output = layer.forward(x)[0]
        last = output[:, -1, :]
        pred = head.forward(last)
        grad_pred = (2.0 / pred.size) * (pred - y)
        grad_output = np.zeros_like(output)
        grad_output[:, -1, :] = head.backward(grad_pred.astype(np.float32, copy=False))
        layer.backward(grad_output, need_input_grad=False)  # x is data, as in PyTorch's step (no requires_grad)
        update()
        return batch

    return step
