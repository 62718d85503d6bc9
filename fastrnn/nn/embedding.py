"""A lookup table of learned vectors: the input layer of a token-level (e.g. character) model."""
import numpy as np


class Embedding:
    """``forward(indices)`` returns ``weight[indices]``: integer indices of any shape ``(...)`` become
    vectors ``(..., dim)``.

    ``weight`` is ``(num_embeddings, dim)``, initialised from a standard normal distribution like
    ``torch.nn.Embedding``. ``backward(grad_output (..., dim))`` fills :attr:`grads` with
    ``{"weight": (num_embeddings, dim)}``, each row the sum of the gradients of every position that
    looked it up (rows never looked up get zeros), and returns None: indices have no gradient.
    """

    def __init__(self, num_embeddings, dim, dtype=np.float32, random_state=None):
        for name, value in (("num_embeddings", num_embeddings), ("dim", dim)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        rng = np.random.default_rng(random_state)
        self.num_embeddings, self.dim = int(num_embeddings), int(dim)
        self.params = {"weight": rng.standard_normal((self.num_embeddings, self.dim)).astype(dtype)}
        self.grads = {}
        self._indices = None

    def forward(self, indices, need_grad=True):
        """Rows of ``weight`` for integer ``indices`` ``(...)``: an array ``(..., dim)``.

        Raises IndexError for an index outside ``[0, num_embeddings)``. With ``need_grad=False``
        nothing is kept for :meth:`backward`.
        """
        indices = np.asarray(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"indices must be integers; got dtype {indices.dtype}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.num_embeddings):
            raise IndexError(f"indices must be in [0, {self.num_embeddings}); got values in "
                             f"[{indices.min()}, {indices.max()}]")
        self._indices = indices if need_grad else None
        return self.params["weight"][indices]

    def backward(self, grad_output):
        """Accumulate ``grad_output`` ``(..., dim)`` (shaped like the last forward's output) into
        ``grads["weight"]`` ``(num_embeddings, dim)``, row by looked-up index."""
        if self._indices is None:
            raise RuntimeError("backward() needs a preceding forward() call (with need_grad=True)")
        expected = self._indices.shape + (self.dim,)
        if np.shape(grad_output) != expected:
            raise ValueError(f"grad_output must have shape {expected}; got {np.shape(grad_output)}")
        self.grads = {"weight": self.gradient(self._indices, grad_output)}

    def gradient(self, indices, grad_output):
        """The gradient of ``weight`` ``(num_embeddings, dim)`` for ``grad_output`` ``(..., dim)`` at the
        rows ``indices`` ``(...)``; stateless, for callers that look rows up piece by piece."""
        weight = self.params["weight"]
        indices = np.asarray(indices).reshape(-1)
        rows = np.asarray(grad_output, dtype=weight.dtype).reshape(-1, self.dim)
        # Sum the rows of each index: sort by index, then one reduceat over the runs (a few times
        # faster than np.add.at for the thousands of rows of a training chunk).
        order = np.argsort(indices, kind="stable")
        sorted_indices = indices[order]
        starts = np.flatnonzero(np.diff(sorted_indices, prepend=-1))
        grad = np.zeros_like(weight)
        if len(indices):
            grad[sorted_indices[starts]] = np.add.reduceat(rows[order], starts, axis=0)
        return grad

    def state_dict(self):
        """A copy of ``{"weight": (num_embeddings, dim)}``, as ``torch.nn.Embedding`` names it."""
        return {name: value.copy() for name, value in self.params.items()}

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_indices"] = None
        return state

    def __repr__(self):
        return f"Embedding({self.num_embeddings}, {self.dim}, dtype={self.params['weight'].dtype.name})"
