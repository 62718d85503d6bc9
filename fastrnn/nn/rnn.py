"""Layer stacks: multi-layer, optionally bidirectional LSTM, GRU and vanilla RNN over any backend.

The layers speak PyTorch's language (``batch_first=True``): parameter names, shapes and gate order
match ``torch.nn.LSTM/GRU/RNN``, so ``state_dict()`` moves both ways unchanged. Internally the
kernels run time-major, one direction of one layer at a time (see :mod:`fastrnn.kernels.reference`).
"""
import functools

import numpy as np

from ..kernels import cell_kernels, resolve_backend
from . import _step

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def reverse_within_lengths(seq, lengths):
    """Reverse each sequence of a time-major ``(T, B, F)`` array within its own length.

    Row ``b`` becomes ``seq[lengths[b]-1], ..., seq[0]`` followed by its untouched padding. The map is
    its own inverse, which is how reverse directions run on forward-only kernels. The result is a
    time-major view of batch-first memory, which the compiled kernels read without a transposing copy.
    """
    T, B = seq.shape[:2]
    steps = np.arange(T)[None, :]
    source = np.where(steps < lengths[:, None], lengths[:, None] - 1 - steps, steps)  # (B, T)
    return seq.transpose(1, 0, 2)[np.arange(B)[:, None], source].transpose(1, 0, 2)


class _RecurrentStack:
    """Shared machinery of :class:`LSTM`, :class:`GRU` and :class:`RNN` (not public)."""

    _gate_count = None   # 4 for LSTM, 3 for GRU, 1 for RNN
    _has_cell_state = False

    def __init__(self, input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
                 dtype=np.float32, backend="auto", random_state=None):
        for name, value in (("input_size", input_size), ("hidden_size", hidden_size),
                            ("num_layers", num_layers)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {dropout!r}")
        if np.dtype(dtype) not in _FLOAT_DTYPES:
            raise TypeError(f"dtype must be float32 or float64; got {np.dtype(dtype)}")
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = int(num_layers)
        self.bidirectional = bool(bidirectional)
        self.dropout = float(dropout)
        self.dtype = np.dtype(dtype)
        self.backend = resolve_backend(backend) if backend != "auto" else "auto"
        self.random_state = random_state
        self.training = True
        self._rng = np.random.default_rng(random_state)
        self.params = self._initial_params()
        self.grads = {}
        self.grad_h0 = None
        self.grad_c0 = None
        self._saved = None

    # ------------------------------------------------------------ parameters
    @property
    def num_directions(self):
        return 2 if self.bidirectional else 1

    @staticmethod
    @functools.lru_cache(maxsize=None)
    def _param_names(layer, direction):
        """PyTorch's names of one layer and direction's parameters (cached: built on every forward call,
        they cost about a microsecond, a noticeable part of a B=1 call's Python overhead)."""
        suffix = f"_l{layer}" + ("_reverse" if direction else "")
        return tuple(f"{kind}{suffix}" for kind in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"))

    def _layer_input_size(self, layer):
        return self.input_size if layer == 0 else self.num_directions * self.hidden_size

    def _initial_params(self):
        """PyTorch's initialisation: every parameter uniform in ``(-1/sqrt(H), 1/sqrt(H))``."""
        H, G = self.hidden_size, self._gate_count
        bound = 1.0 / np.sqrt(H)
        params = {}
        for layer in range(self.num_layers):
            for direction in range(self.num_directions):
                shapes = ((G * H, self._layer_input_size(layer)), (G * H, H), (G * H,), (G * H,))
                for name, shape in zip(self._param_names(layer, direction), shapes):
                    params[name] = self._rng.uniform(-bound, bound, size=shape).astype(self.dtype)
        return params

    def _weights(self, layer, direction):
        return tuple(self.params[name] for name in self._param_names(layer, direction))

    def state_dict(self):
        """Copies of the parameters, keyed and shaped like the PyTorch module's ``state_dict()``."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state_dict):
        """Copy parameters in from a mapping of arrays (or torch tensors) keyed like :meth:`state_dict`.

        All keys and shapes are checked before anything is written, so a bad mapping changes nothing.
        """
        missing = sorted(set(self.params) - set(state_dict))
        unexpected = sorted(set(state_dict) - set(self.params))
        if missing or unexpected:
            raise KeyError(f"state_dict does not match this {type(self).__name__}: "
                           f"missing {missing}, unexpected {unexpected}")
        incoming = {}
        for name, value in state_dict.items():
            if hasattr(value, "detach"):  # a torch tensor
                value = value.detach().cpu().numpy()
            value = np.asarray(value)
            if value.shape != self.params[name].shape:
                raise ValueError(f"{name}: expected shape {self.params[name].shape}, got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} holds NaN or infinite values")
            incoming[name] = value
        for name, value in incoming.items():
            np.copyto(self.params[name], value, casting="unsafe")

    # ------------------------------------------------------------ modes
    def train(self, mode=True):
        """Training mode: dropout between layers is active. Returns self."""
        self.training = bool(mode)
        return self

    def eval(self):
        """Inference mode: no dropout. Returns self."""
        return self.train(False)

    def set_backend(self, backend):
        """Run this layer's kernels on ``backend`` ("auto", "numba", "cython" or "reference")."""
        self.backend = resolve_backend(backend) if backend != "auto" else "auto"
        return self

    @property
    def cell(self):
        raise NotImplementedError

    # ------------------------------------------------------------ input checks
    def _check_sequence(self, x):
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise TypeError(f"x must hold real numbers; got dtype {x.dtype}")
        if x.ndim != 3:
            raise ValueError(f"x must be 3-D (batch, time, features); got shape {x.shape}")
        if x.shape[0] == 0 or x.shape[1] == 0:
            raise ValueError(f"x must hold at least one sequence of at least one step; got shape {x.shape}")
        if x.shape[2] != self.input_size:
            raise ValueError(f"x has {x.shape[2]} features per step; this layer expects {self.input_size}")
        if not np.isfinite(x).all():  # np.all() adds ~0.7 us of dispatch per call
            raise ValueError("x holds NaN or infinite values")
        return x.astype(self.dtype, copy=False)

    @staticmethod
    def _check_lengths(lengths, batch, steps):
        if lengths is None:
            return np.full(batch, steps, dtype=np.int64)
        lengths = np.asarray(lengths)
        if lengths.shape != (batch,) or lengths.dtype.kind not in "iu":
            raise ValueError(f"lengths must be {batch} integers; got {lengths.dtype} array of shape {lengths.shape}")
        if lengths.min() < 1 or lengths.max() > steps:
            raise ValueError(f"every length must be in [1, {steps}]; got min {lengths.min()}, max {lengths.max()}")
        return lengths.astype(np.int64)

    def _check_state(self, state, name, batch):
        shape = (self.num_layers * self.num_directions, batch, self.hidden_size)
        if state is None:
            return np.zeros(shape, dtype=self.dtype)
        state = np.asarray(state)
        if state.dtype.kind not in "fiu":
            raise TypeError(f"{name} must hold real numbers; got dtype {state.dtype}")
        if state.shape != shape:
            raise ValueError(f"{name} must have shape {shape} (layers*directions, batch, hidden); got {state.shape}")
        if not np.isfinite(state).all():
            raise ValueError(f"{name} holds NaN or infinite values")
        return state.astype(self.dtype)

    # ------------------------------------------------------------ forward / backward
    def _forward(self, x, lengths, h0, c0, need_grad=True):
        x = self._check_sequence(x)
        batch, steps = x.shape[:2]
        lengths = self._check_lengths(lengths, batch, steps)
        h0 = self._check_state(h0, "h0", batch)
        c0 = self._check_state(c0, "c0", batch) if self._has_cell_state else None
        forward, _ = cell_kernels(self.cell, self.backend)
        H, D = self.hidden_size, self.num_directions
        h_n = np.empty_like(h0)
        c_n = np.empty_like(h0) if self._has_cell_state else None
        # Time-major views of batch-first memory: the compiled kernels read that memory without a transposing
        # copy. A forward kept for backward keeps a copy of x, so the caller may reuse its array meanwhile.
        seq = (x.copy() if need_grad else x).transpose(1, 0, 2)
        caches, masks = [], []
        for layer in range(self.num_layers):
            mask = None
            if layer > 0 and self.training and self.dropout > 0.0:
                keep = 1.0 - self.dropout
                mask = (self._rng.random(seq.shape) < keep).astype(self.dtype) / self.dtype.type(keep)
                seq = seq * mask
            masks.append(mask)
            # Batch-first memory seen time-major: the final transpose below is then free. (One direction's
            # output is used as it comes.)
            outputs = np.empty((batch, steps, D * H), dtype=self.dtype).transpose(1, 0, 2) if D > 1 else None
            for direction in range(D):
                index = layer * D + direction
                inputs = reverse_within_lengths(seq, lengths) if direction else seq
                out, h_last, c_last, cache = forward(
                    inputs, lengths, self._weights(layer, direction), h0[index],
                    c0[index] if c0 is not None else None, need_grad)
                if D == 1:
                    outputs = out  # no copy: already (T, B, H), batch-first in memory for compiled backends
                else:
                    outputs[:, :, direction * H:(direction + 1) * H] = (
                        reverse_within_lengths(out, lengths) if direction else out)
                h_n[index] = h_last
                if c_n is not None:
                    c_n[index] = c_last
                caches.append(cache)
            seq = outputs
        self._saved = dict(lengths=lengths, caches=caches, masks=masks, batch=batch, steps=steps,
                           backend=self.backend) if need_grad else None
        output = np.ascontiguousarray(seq.transpose(1, 0, 2))
        return output, h_n, c_n

    def _backward(self, grad_output, grad_h_n, grad_c_n, need_input_grad=True):
        if self._saved is None:
            raise RuntimeError("backward() needs a preceding forward() call on this layer "
                               "(with need_grad=True)")
        saved = self._saved
        batch, steps, lengths = saved["batch"], saved["steps"], saved["lengths"]
        H, D, L = self.hidden_size, self.num_directions, self.num_layers
        _, backward = cell_kernels(self.cell, saved["backend"])
        grad_output = np.asarray(grad_output, dtype=self.dtype)
        if grad_output.shape != (batch, steps, D * H):
            raise ValueError(f"grad_output must have shape {(batch, steps, D * H)}; got {grad_output.shape}")
        state_shape = (L * D, batch, H)
        for name, grad in (("grad_h_n", grad_h_n), ("grad_c_n", grad_c_n)):
            if grad is not None and np.shape(grad) != state_shape:
                raise ValueError(f"{name} must have shape {state_shape}; got {np.shape(grad)}")
        grad_h_n = None if grad_h_n is None else np.asarray(grad_h_n, dtype=self.dtype)
        grad_c_n = None if grad_c_n is None or not self._has_cell_state else np.asarray(grad_c_n, dtype=self.dtype)
        grads = {}
        grad_h0 = np.zeros(state_shape, dtype=self.dtype)
        grad_c0 = np.zeros(state_shape, dtype=self.dtype) if self._has_cell_state else None
        # Time-major views of batch-first memory, as in the forward: the kernels read the caller's gradient
        # without a transposing copy (lower layers' come time-major from the input-gradient product).
        grad_seq = grad_output.transpose(1, 0, 2)
        for layer in reversed(range(L)):
            grad_inputs = None
            need_grad_x = need_input_grad or layer > 0  # the bottom layer's is the caller's to want
            for direction in range(D):
                index = layer * D + direction
                grad_out = grad_seq[:, :, direction * H:(direction + 1) * H]
                if direction:
                    grad_out = reverse_within_lengths(grad_out, lengths)
                weights = self._weights(layer, direction)
                grad_x, gh0, gc0, grad_weights = backward(
                    weights, saved["caches"][index], grad_out,
                    None if grad_h_n is None else np.ascontiguousarray(grad_h_n[index]),
                    None if grad_c_n is None else np.ascontiguousarray(grad_c_n[index]), need_grad_x=need_grad_x)
                if need_grad_x:
                    if direction:
                        grad_x = reverse_within_lengths(grad_x, lengths)
                    grad_inputs = grad_x if grad_inputs is None else grad_inputs + grad_x
                grad_h0[index] = gh0
                if grad_c0 is not None:
                    grad_c0[index] = gc0
                grads.update(zip(self._param_names(layer, direction), grad_weights))
            if saved["masks"][layer] is not None and grad_inputs is not None:
                grad_inputs = grad_inputs * saved["masks"][layer]
            grad_seq = grad_inputs
        self.grads = grads
        self.grad_h0, self.grad_c0 = grad_h0, grad_c0
        return None if grad_seq is None else np.ascontiguousarray(grad_seq.transpose(1, 0, 2))

    def step(self, x_t, state=None):
        """Advance one time step, for online use: ``x_t`` is ``(B, I)``.

        ``state`` is what the previous call returned (``None`` starts from zeros): ``h`` of shape
        ``(L, B, H)``, or the pair ``(h, c)`` for an LSTM. Returns ``(y_t (B, H), state)``. Running a
        sequence step by step gives the outputs of one :meth:`forward` over all of it (to float
        rounding). A step is two small matrix products per layer: it runs in NumPy (:mod:`._step`),
        which needs no weight packing, whatever the layer's backend; no dropout is applied.
        """
        if self.bidirectional:
            raise ValueError("step() needs a unidirectional layer: a reverse direction reads the future")
        x_t = np.asarray(x_t)
        if x_t.ndim != 2:
            raise ValueError(f"x_t must be 2-D (batch, features); got shape {x_t.shape}")
        x_t = self._check_sequence(x_t[None])[0]  # dtype, feature count, finiteness
        batch = x_t.shape[0]
        if self._has_cell_state:
            h0, c0 = (None, None) if state is None else state
            c = self._check_state(c0, "c", batch)
        else:
            h0, c = state, None
        h = self._check_state(h0, "h", batch)
        h_n, c_n = np.empty_like(h), (np.empty_like(c) if c is not None else None)
        inputs = x_t
        for layer in range(self.num_layers):
            weights = self._weights(layer, 0)
            if c is not None:
                h_n[layer], c_n[layer] = _step.lstm_step(inputs, h[layer], c[layer], weights)
            elif self.cell == "gru":
                h_n[layer] = _step.gru_step(inputs, h[layer], weights)
            else:
                h_n[layer] = _step.rnn_step(inputs, h[layer], weights, self.cell == "rnn_relu")
            inputs = h_n[layer]
        return inputs.copy(), ((h_n, c_n) if self._has_cell_state else h_n)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_saved"] = None  # activations of the last forward are not part of the model
        return state

    def __repr__(self):
        extra = f", nonlinearity={self.nonlinearity!r}" if hasattr(self, "nonlinearity") else ""
        return (f"{type(self).__name__}({self.input_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"bidirectional={self.bidirectional}, dropout={self.dropout}, dtype={self.dtype.name}{extra})")


class LSTM(_RecurrentStack):
    """Long short-term memory stack, PyTorch-compatible (gates i, f, g, o; ``batch_first=True``).

    ``forward(x (N, T, I), lengths=None, h0=None, c0=None, *, need_grad=True)`` returns
    ``(output (N, T, D*H), h_n (D*L, N, H), c_n (D*L, N, H))`` (``need_grad=False``: inference only,
    nothing kept for backward); ``backward(grad_output, grad_h_n=None, grad_c_n=None, *,
    need_input_grad=True)`` returns the input gradient ``(N, T, I)`` (None with
    ``need_input_grad=False``, which skips its product: for inputs that are data) and fills
    :attr:`grads`, :attr:`grad_h0`, :attr:`grad_c0`.
    """

    _gate_count = 4
    _has_cell_state = True
    cell = "lstm"

    def forward(self, x, lengths=None, h0=None, c0=None, *, need_grad=True):
        return self._forward(x, lengths, h0, c0, need_grad)

    def backward(self, grad_output, grad_h_n=None, grad_c_n=None, *, need_input_grad=True):
        return self._backward(grad_output, grad_h_n, grad_c_n, need_input_grad)

    __call__ = forward


class GRU(_RecurrentStack):
    """Gated recurrent unit stack, PyTorch-compatible (gates r, z, n; ``n = tanh(W_in x + b_in +
    r * (W_hn h + b_hn))``; ``batch_first=True``).

    ``forward(x (N, T, I), lengths=None, h0=None)`` returns ``(output (N, T, D*H), h_n (D*L, N, H))``;
    ``backward(grad_output, grad_h_n=None, *, need_input_grad=True)`` returns the input gradient
    (None with ``need_input_grad=False``) and fills :attr:`grads`.
    """

    _gate_count = 3
    cell = "gru"

    def forward(self, x, lengths=None, h0=None, *, need_grad=True):
        output, h_n, _ = self._forward(x, lengths, h0, None, need_grad)
        return output, h_n

    def backward(self, grad_output, grad_h_n=None, *, need_input_grad=True):
        return self._backward(grad_output, grad_h_n, None, need_input_grad)

    __call__ = forward


class RNN(_RecurrentStack):
    """Vanilla (Elman) RNN stack with ``nonlinearity="tanh"`` or ``"relu"``, PyTorch-compatible.

    ``forward(x (N, T, I), lengths=None, h0=None)`` returns ``(output (N, T, D*H), h_n (D*L, N, H))``;
    ``backward(grad_output, grad_h_n=None, *, need_input_grad=True)`` returns the input gradient
    (None with ``need_input_grad=False``) and fills :attr:`grads`.
    """

    _gate_count = 1

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity="tanh", bidirectional=False,
                 dropout=0.0, dtype=np.float32, backend="auto", random_state=None):
        if nonlinearity not in ("tanh", "relu"):
            raise ValueError(f"nonlinearity must be 'tanh' or 'relu'; got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(input_size, hidden_size, num_layers, bidirectional, dropout, dtype, backend,
                         random_state)

    @property
    def cell(self):
        return "rnn_" + self.nonlinearity

    def forward(self, x, lengths=None, h0=None, *, need_grad=True):
        output, h_n, _ = self._forward(x, lengths, h0, None, need_grad)
        return output, h_n

    def backward(self, grad_output, grad_h_n=None, *, need_input_grad=True):
        return self._backward(grad_output, grad_h_n, None, need_input_grad)

    __call__ = forward
