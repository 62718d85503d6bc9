"""The dense head that turns recurrent features into predictions."""
import numpy as np


class Linear:
    """``y = x @ weight.T + bias`` over the last axis; ``x`` is ``(..., in_features)``.

    Glorot-uniform weights, zero bias. ``forward`` keeps its input for ``backward``, which fills
    :attr:`grads` (same keys as :attr:`params`) and returns the gradient at the input.
    """

    def __init__(self, in_features, out_features, dtype=np.float32, random_state=None):
        rng = np.random.default_rng(random_state)
        bound = np.sqrt(6.0 / (in_features + out_features))
        self.params = {
            "weight": rng.uniform(-bound, bound, size=(out_features, in_features)).astype(dtype),
            "bias": np.zeros(out_features, dtype=dtype),
        }
        self.grads = {}
        self._input = None

    def forward(self, x):
        self._input = x
        return x @ self.params["weight"].T + self.params["bias"]

    def backward(self, grad_output):
        x = self._input.reshape(-1, self._input.shape[-1])
        grad = grad_output.reshape(-1, grad_output.shape[-1])
        # (x^T g)^T rather than g^T x: the same product, ~3x faster in OpenBLAS at these shapes
        self.grads = {"weight": (x.T @ grad).T, "bias": grad.sum(axis=0)}
        return grad_output @ self.params["weight"]

    def state_dict(self):
        return {name: value.copy() for name, value in self.params.items()}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_input"] = None
        return state
