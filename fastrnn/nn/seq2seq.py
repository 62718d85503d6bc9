"""Encoder-decoder (sequence-to-sequence) model over the recurrent stacks, with teacher forcing.

An encoder stack reads the source ``x (N, S, I)``; its final states initialise a decoder stack of the
same cell and hidden size; a linear head turns each decoder output into a prediction (continuous
targets) or into logits over a vocabulary (token targets). Decoder step ``t`` reads the previous
target: the ground truth ``target[:, t-1]`` (teacher forcing) or the model's own prediction for step
``t-1``; step 0 reads a start value.

Decoder inputs (``decoder_input``): "previous" is the above; "previous+context" appends the context,
the encoder's final top-layer ``h`` (as bridged below: the top decoder layer's initial ``h``), to
every step's input (Cho et al. 2014), so each step sees the source summary directly rather than
only through the evolving state; "context" reads the context alone (no feedback of targets or
predictions: no exposure bias, and teacher forcing has nothing to do). With a context the decoder's
input size grows by ``H``.

Bridge (encoder -> decoder states). The decoder's ``decoder_layers`` layers take the final states of
the encoder's top ``decoder_layers`` layers, layer for layer (decoder layer ``j`` <- encoder layer
``num_layers - decoder_layers + j``), so the decoder may not be deeper than the encoder. A
bidirectional encoder's two directions are summed (forward state at each sequence's end plus reverse
state at its start), which needs no extra parameters. LSTMs map both ``h`` and ``c``.

Gradients. Teacher-forced runs of steps go through the decoder in one fused call; every step that
reads the model's own prediction starts a new call, and backward walks the calls in reverse. For
continuous targets the gradient flows through the fed-back predictions (the decoder input *is* the
previous output); for tokens the fed-back input is the embedding of the arg-max token, which has no
gradient with respect to the logits (it still trains the embedding and flows through the states).
The context's gradient is summed over the steps that read it and joins the gradient at the encoder's
final top-layer ``h``.
"""
import numpy as np

from ..kernels._split_gemm import blas_limited
from .embedding import Embedding
from .linear import Linear
from .rnn import GRU, LSTM

CELLS = {"lstm": LSTM, "gru": GRU}
DECODER_INPUTS = ("previous", "previous+context", "context")


def _check_positive_int(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer; got {value!r}")
    return int(value)


class Seq2Seq:
    """Encoder-decoder network: encoder stack -> decoder stack -> linear head.

    Parameters: ``input_size`` (I, features per source step); ``output_size`` (K: outputs per target
    step, or the vocabulary size for tokens); ``hidden_size`` (H, both stacks); ``num_layers``
    (encoder) and ``decoder_layers`` (default: ``num_layers``; at most ``num_layers``); ``cell``
    "lstm" or "gru"; ``bidirectional`` (encoder only; directions summed into the decoder states);
    ``embedding_dim``: None for continuous targets (the decoder reads the previous ``K`` target
    values), or an int for token targets in ``range(output_size)`` (the decoder reads an
    ``embedding_dim``-vector per previous token and the head gives ``K`` logits); ``decoder_input``
    "previous" (default), "previous+context" or "context" (continuous targets only), see the module
    docstring; ``dtype``, ``backend``, ``random_state`` as for the layers.

    ``forward(x, target, ...)`` returns the head outputs ``(N, T, K)``; ``backward(grad_output, *,
    need_input_grad=True)`` returns the gradient at ``x`` ``(N, S, I)`` (None, and not computed, with
    ``need_input_grad=False``) and fills :attr:`grads` (keys as :attr:`params`:
    ``encoder.<name>``, ``decoder.<name>``, ``head.weight``, ``head.bias`` and, for tokens,
    ``embedding.weight``). :meth:`generate` decodes greedily.
    """

    def __init__(self, input_size, output_size, hidden_size, num_layers=1, decoder_layers=None, cell="lstm",
                 bidirectional=False, embedding_dim=None, decoder_input="previous", dtype=np.float32, backend="auto",
                 random_state=None):
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}; got {cell!r}")
        if decoder_input not in DECODER_INPUTS:
            raise ValueError(f"decoder_input must be one of {list(DECODER_INPUTS)}; got {decoder_input!r}")
        self.decoder_input = decoder_input
        self.input_size = _check_positive_int("input_size", input_size)
        self.output_size = _check_positive_int("output_size", output_size)
        self.hidden_size = _check_positive_int("hidden_size", hidden_size)
        self.num_layers = _check_positive_int("num_layers", num_layers)
        self.decoder_layers = self.num_layers if decoder_layers is None else _check_positive_int(
            "decoder_layers", decoder_layers)
        if self.decoder_layers > self.num_layers:
            raise ValueError(f"decoder_layers ({self.decoder_layers}) must not exceed the encoder's num_layers "
                             f"({self.num_layers}): each decoder layer starts from one encoder layer's final state")
        self.embedding_dim = None if embedding_dim is None else _check_positive_int("embedding_dim", embedding_dim)
        if self.embedding_dim is not None and decoder_input == "context":
            raise ValueError("decoder_input='context' (no feedback) is for continuous targets; a token decoder "
                             "reads the previous token: use 'previous' or 'previous+context'")
        self.cell = cell
        self.bidirectional = bool(bidirectional)
        self.dtype = np.dtype(dtype)
        self._rng = np.random.default_rng(random_state)
        seed = lambda: int(self._rng.integers(2 ** 31))
        layer = CELLS[cell]
        self.encoder = layer(self.input_size, self.hidden_size, self.num_layers, bidirectional=self.bidirectional,
                             dtype=self.dtype, backend=backend, random_state=seed())
        self._previous_size = (0 if not self.feedback else
                               self.output_size if self.embedding_dim is None else self.embedding_dim)
        decoder_size = self._previous_size + (self.hidden_size if self.context else 0)
        self.decoder = layer(decoder_size, self.hidden_size, self.decoder_layers, dtype=self.dtype,
                             backend=backend, random_state=seed())
        self.head = Linear(self.hidden_size, self.output_size, dtype=self.dtype, random_state=seed())
        self.embedding = (None if self.embedding_dim is None else
                          Embedding(self.output_size, self.embedding_dim, self.dtype, random_state=seed()))
        self.grads = {}
        self.last_teacher_forced = None
        self._cache = None

    # ------------------------------------------------------------ parameters
    @property
    def tokens(self):
        """True when targets are tokens (``embedding_dim`` given)."""
        return self.embedding is not None

    @property
    def feedback(self):
        """True when each decoder step reads the previous target (or the model's own prediction of it)."""
        return self.decoder_input != "context"

    @property
    def context(self):
        """True when each decoder step also reads the context (the encoder's final top-layer ``h``)."""
        return self.decoder_input != "previous"

    def _parts(self):
        parts = {"encoder": self.encoder, "decoder": self.decoder, "head": self.head}
        if self.embedding is not None:
            parts["embedding"] = self.embedding
        return parts

    @property
    def params(self):
        """All parameters, ``"<part>.<name>" -> array`` (the arrays themselves: update them in place)."""
        return {f"{part}.{name}": value for part, module in self._parts().items()
                for name, value in module.params.items()}

    def state_dict(self):
        """Copies of :attr:`params`."""
        return {name: value.copy() for name, value in self.params.items()}

    def load_state_dict(self, state_dict):
        """Copy parameters in from a mapping keyed like :meth:`state_dict` (keys and shapes checked first)."""
        params = self.params
        if set(state_dict) != set(params):
            raise KeyError(f"state_dict does not match this Seq2Seq: missing {sorted(set(params) - set(state_dict))}, "
                           f"unexpected {sorted(set(state_dict) - set(params))}")
        for name, value in state_dict.items():
            if np.shape(value) != params[name].shape:
                raise ValueError(f"{name}: expected shape {params[name].shape}, got {np.shape(value)}")
        for name, value in state_dict.items():
            np.copyto(params[name], np.asarray(value), casting="unsafe")

    def set_backend(self, backend):
        """Run both stacks' kernels on ``backend``; returns self."""
        self.encoder.set_backend(backend)
        self.decoder.set_backend(backend)
        return self

    # ------------------------------------------------------------ checks
    def _check_start(self, start, batch):
        if self.tokens:
            if start is None:
                raise ValueError("token targets need start: the start token id (an int, or one per sequence)")
            start = np.broadcast_to(np.asarray(start), (batch,))
            if start.dtype.kind not in "iu" or start.min() < 0 or start.max() >= self.output_size:
                raise ValueError(f"start must be token ids in [0, {self.output_size}); got {start!r}")
            return start.astype(np.int64)
        if start is None:
            return np.zeros((batch, self.output_size), dtype=self.dtype)
        start = np.asarray(start, dtype=self.dtype)
        if start.shape != (batch, self.output_size):
            raise ValueError(f"start must have shape {(batch, self.output_size)} (batch, output_size); "
                             f"got {start.shape}")
        return start

    def _check_target(self, target, batch):
        target = np.asarray(target)
        if self.tokens:
            if target.ndim != 2 or target.shape[0] != batch or target.dtype.kind not in "iu":
                raise ValueError(f"token targets must be an integer array (batch={batch}, steps); "
                                 f"got {target.dtype} array of shape {target.shape}")
            if target.size and (target.min() < 0 or target.max() >= self.output_size):
                raise ValueError(f"token targets must lie in [0, {self.output_size})")
            return target.astype(np.int64)
        if target.ndim != 3 or target.shape[0] != batch or target.shape[2] != self.output_size:
            raise ValueError(f"target must have shape (batch={batch}, steps, output_size={self.output_size}); "
                             f"got {target.shape}")
        if not np.all(np.isfinite(target)):
            raise ValueError("target holds NaN or infinite values")
        return target.astype(self.dtype)

    # ------------------------------------------------------------ encoder <-> decoder states
    def _run_encoder(self, x, lengths, need_grad):
        if self.cell == "lstm":
            out, h_n, c_n = self.encoder.forward(x, lengths, need_grad=need_grad)
        else:
            (out, h_n), c_n = self.encoder.forward(x, lengths, need_grad=need_grad), None
        bridge = lambda s: None if s is None else self._bridge(s)
        h, c = bridge(h_n), bridge(c_n)
        # the context is the top decoder layer's initial h: the encoder's final top-layer h (bridged)
        return out.shape, h, c, (h[-1].copy() if self.context else None)

    def _bridge(self, state):
        """Encoder final states ``(L*D, N, H)`` -> decoder initial states ``(decoder_layers, N, H)``."""
        D = 2 if self.bidirectional else 1
        state = state.reshape(self.num_layers, D, *state.shape[1:]).sum(axis=1)
        return np.ascontiguousarray(state[self.num_layers - self.decoder_layers:])

    def _bridge_backward(self, grad):
        """Gradient at the decoder initial states -> gradient at the encoder final states."""
        D = 2 if self.bidirectional else 1
        out = np.zeros((self.num_layers, D) + grad.shape[1:], dtype=grad.dtype)
        out[self.num_layers - self.decoder_layers:] = grad[:, None]
        return out.reshape((self.num_layers * D,) + grad.shape[1:])

    # ------------------------------------------------------------ decoding
    def _decode(self, h, c, context, steps, start, target, forced, need_grad):
        """Run the decoder ``steps`` steps from ``(h, c)``; ``forced[t]`` feeds ``target[:, t-1]``.

        ``context (N, H)`` (or None) is appended to every step's input. Returns ``z (N, steps, K)``,
        the final states and the record backward needs (or None without ``need_grad``).
        """
        batch = h.shape[1]
        W, b = self.head.params["weight"], self.head.params["bias"]
        z = np.empty((batch, steps, self.output_size), dtype=self.dtype)
        if self.tokens:
            inputs = np.empty((batch, steps), dtype=np.int64)
            inputs[:, 0] = start
        else:
            inputs = np.empty((batch, steps, self.output_size), dtype=self.dtype)
            inputs[:, 0] = start
        if target is not None and steps > 1:
            inputs[:, 1:] = target[:, :steps - 1]
        outputs = np.empty((batch, steps, self.hidden_size), dtype=self.dtype) if need_grad else None
        # without feedback no step reads a previous value, so the whole run is one fused call
        bounds = [0] + [t for t in range(1, steps) if not forced[t] and self.feedback] + [steps]
        segments = []
        for a, e in zip(bounds[:-1], bounds[1:]):
            if a > 0:  # this step reads the model's own prediction for the step before
                inputs[:, a] = z[:, a - 1].argmax(axis=1) if self.tokens else z[:, a - 1]
            parts = []
            if self.feedback:
                parts.append(self.embedding.forward(inputs[:, a:e], need_grad=False) if self.tokens
                             else inputs[:, a:e])
            if context is not None:
                parts.append(np.broadcast_to(context[:, None], (batch, e - a, self.hidden_size)))
            seg = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)
            if self.cell == "lstm":
                out, h, c = self.decoder.forward(seg, None, h, c, need_grad=need_grad)
            else:
                out, h = self.decoder.forward(seg, None, h, need_grad=need_grad)
            z[:, a:e] = out @ W.T + b
            if need_grad:
                outputs[:, a:e] = out
                segments.append((a, e, self.decoder._saved))
        record = dict(inputs=inputs, outputs=outputs, segments=segments) if need_grad else None
        return z, h, c, record

    def _forced_steps(self, steps, ratio, rng):
        """Which steps read the ground truth: step 0 reads the start value; step ``t >= 1`` is teacher
        forced when a uniform draw is below ``ratio`` (one draw per step, shared by the batch)."""
        forced = np.ones(steps, dtype=bool)
        if ratio <= 0.0:
            forced[1:] = False
        elif ratio < 1.0:
            rng = self._rng if rng is None else np.random.default_rng(rng)
            forced[1:] = rng.random(steps - 1) < ratio
        return forced

    def forward(self, x, target, lengths=None, start=None, teacher_forcing_ratio=1.0, rng=None, need_grad=True):
        """Encode ``x (N, S, I)`` and decode ``T`` steps against ``target``; returns ``z (N, T, K)``.

        ``target``: ``(N, T, K)`` floats, or ``(N, T)`` token ids for a token model; only
        ``target[:, :-1]`` is read, as teacher-forced decoder inputs (never with
        ``decoder_input="context"``: its steps read no previous values, so the ratio's draws change
        nothing). ``lengths (N,)``: source lengths (ragged sources; the encoder state is taken at each
        one's end). ``start``: what step 0 reads, ``(N, K)`` values (default zeros) or the start token
        id(s) (required for tokens).
        ``teacher_forcing_ratio``: 1 feeds the ground truth at every step, 0 the model's own previous
        prediction (as :meth:`generate`), in between each step ``t >= 1`` is drawn (``rng``: a seed or
        Generator; default this model's own, seeded by ``random_state``). The choices made are kept in
        :attr:`last_teacher_forced` ``(T,)`` bool. ``z`` holds predictions (continuous) or logits.
        """
        if not 0.0 <= float(teacher_forcing_ratio) <= 1.0:
            raise ValueError(f"teacher_forcing_ratio must be in [0, 1]; got {teacher_forcing_ratio!r}")
        x = self.encoder._check_sequence(x)  # (N, S, I), finite, in this model's dtype
        batch = x.shape[0]
        target = self._check_target(target, batch)
        steps = target.shape[1]
        if steps < 1:
            raise ValueError("target must have at least one step")
        start = self._check_start(start, batch)
        forced = self._forced_steps(steps, float(teacher_forcing_ratio), rng)
        with blas_limited(1):  # small GEMMs: a waking BLAS pool costs more than it gives
            enc_shape, h, c, context = self._run_encoder(x, lengths, need_grad)
            z, _, _, record = self._decode(h, c, context, steps, start, target, forced, need_grad)
        self.last_teacher_forced = forced
        self._cache = dict(record, forced=forced, enc_shape=enc_shape) if need_grad else None
        return z

    __call__ = forward

    def generate(self, x, steps, lengths=None, start=None, end_token=None):
        """Greedy decoding: each step reads the model's own previous prediction.

        ``x (N, S, I)``, ``steps`` (the most steps to decode), ``lengths``/``start`` as in
        :meth:`forward`. Continuous targets: returns predictions ``(N, steps, K)``. Tokens: returns ids
        ``(N, steps)`` (the arg-max of each step's logits); with ``end_token`` decoding stops once every
        sequence has produced it, and the remaining positions hold ``end_token``.
        """
        steps = _check_positive_int("steps", steps)
        x = self.encoder._check_sequence(x)
        batch = x.shape[0]
        start = self._check_start(start, batch)
        with blas_limited(1):
            return self._generate(x, steps, lengths, start, end_token)

    def _generate(self, x, steps, lengths, start, end_token):
        batch = x.shape[0]
        _, h, c, context = self._run_encoder(x, lengths, need_grad=False)
        if not self.tokens:
            return self._decode(h, c, context, steps, start, None, np.zeros(steps, dtype=bool), False)[0]
        ids = np.full((batch, steps), -1 if end_token is None else end_token, dtype=np.int64)
        done = np.zeros(batch, dtype=bool)
        previous = start
        for t in range(steps):
            z, h, c, _ = self._decode(h, c, context, 1, previous, None, np.ones(1, dtype=bool), False)
            previous = z[:, 0].argmax(axis=1)
            ids[:, t] = np.where(done, ids[:, t], previous)
            if end_token is not None:
                done |= previous == end_token
                if done.all():
                    break
        return ids

    def backward(self, grad_output, *, need_input_grad=True):
        """Backpropagate ``grad_output (N, T, K)`` (gradient at :meth:`forward`'s output).

        Returns the gradient at ``x`` ``(N, S, I)`` (None with ``need_input_grad=False``, which skips the
        encoder's product for it: for inputs that are data); fills :attr:`grads`.
        """
        if self._cache is None:
            raise RuntimeError("backward() needs a preceding forward() call (with need_grad=True)")
        with blas_limited(1):
            return self._backward(grad_output, need_input_grad)

    def _backward(self, grad_output, need_input_grad=True):
        cache = self._cache
        outputs, inputs, forced = cache["outputs"], cache["inputs"], cache["forced"]
        grad_z = np.array(grad_output, dtype=self.dtype)
        if grad_z.shape != outputs.shape[:2] + (self.output_size,):
            raise ValueError(f"grad_output must have shape {outputs.shape[:2] + (self.output_size,)}; "
                             f"got {grad_z.shape}")
        W = self.head.params["weight"]
        P = self._previous_size
        grad_inputs = np.zeros(inputs.shape + ((self.embedding_dim,) if self.tokens else ()), dtype=self.dtype)
        grad_context = np.zeros((inputs.shape[0], self.hidden_size), dtype=self.dtype) if self.context else None
        decoder_grads = {}
        gh = gc = None
        for a, e, saved in reversed(cache["segments"]):
            self.decoder._saved = saved
            grad_out = grad_z[:, a:e] @ W
            if self.cell == "lstm":
                gx = self.decoder.backward(grad_out, gh, gc)
                gc = self.decoder.grad_c0
            else:
                gx = self.decoder.backward(grad_out, gh)
            gh = self.decoder.grad_h0
            if grad_context is not None:
                grad_context += gx[:, :, P:].sum(axis=1)  # the same context is read at every step
            for name, value in self.decoder.grads.items():
                decoder_grads[name] = decoder_grads[name] + value if name in decoder_grads else value
            if self.feedback:
                grad_inputs[:, a:e] = gx[:, :, :P]
                if a > 0 and not forced[a] and not self.tokens:
                    grad_z[:, a - 1] += gx[:, 0, :P]  # the input of step a was the prediction of step a-1
        flat_z = grad_z.reshape(-1, self.output_size)
        grads = {f"decoder.{k}": v for k, v in decoder_grads.items()}
        grads["head.weight"] = flat_z.T @ outputs.reshape(-1, self.hidden_size)
        grads["head.bias"] = flat_z.sum(axis=0)
        if self.tokens:
            grads["embedding.weight"] = self.embedding.gradient(inputs, grad_inputs)
        if grad_context is not None:
            gh = gh.copy()
            gh[-1] += grad_context
        grad_h_n = self._bridge_backward(gh)
        zeros = np.zeros(cache["enc_shape"], dtype=self.dtype)
        if self.cell == "lstm":
            grad_x = self.encoder.backward(zeros, grad_h_n, self._bridge_backward(gc), need_input_grad=need_input_grad)
        else:
            grad_x = self.encoder.backward(zeros, grad_h_n, need_input_grad=need_input_grad)
        grads.update({f"encoder.{k}": v for k, v in self.encoder.grads.items()})
        self.grads = grads
        self._cache = None
        self.decoder._saved = None
        return grad_x

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = None  # activations of the last forward are not part of the model
        return state

    def __repr__(self):
        kind = "continuous" if self.embedding is None else f"tokens, embedding_dim={self.embedding_dim}"
        return (f"Seq2Seq({self.input_size}, {self.output_size}, {self.hidden_size}, num_layers={self.num_layers}, "
                f"decoder_layers={self.decoder_layers}, cell={self.cell!r}, bidirectional={self.bidirectional}, "
                f"{kind}, decoder_input={self.decoder_input!r}, dtype={self.dtype.name})")
