"""A character-level language model: :class:`CharLM` learns to predict the next character of a text.

The model is an embedding of each character, a stack of recurrent layers (:mod:`fastrnn.nn`) and a
linear head with a softmax over the vocabulary::

    ids (B, T) -> Embedding -> (B, T, E) -> LSTM/GRU/RNN stack -> (B, T, H) -> Linear -> (B*T, V)

Training is truncated backpropagation through time: the text is cut into ``batch_size`` contiguous
streams read in parallel, ``seq_len`` characters of each per step; the hidden state carries over
from one chunk to the next (detached: gradients stop at chunk boundaries) and restarts from zeros
at each epoch. The loss is the mean cross-entropy; everything the model reports is in bits per
character (bpc): ``log2(vocabulary size)`` for a model that knows nothing, about 4.5 for one that
knows only the characters' frequencies in English text, and well under 2 for a good model.
"""
import contextlib
import math
import sys
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from . import nn
from .estimators._base import thread_limit
from .kernels._split_gemm import blas_limited
from .nn.embedding import Embedding
from .nn.linear import Linear
from .nn.optim import Adam, clip_grad_norm

_LAYERS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}
_NATS_TO_BITS = 1.0 / math.log(2.0)
_EVAL_STREAMS = 128      # parallel streams when scoring a long text
_EVAL_CHUNK = 256        # time steps per forward call when scoring or priming (bounds memory)


def _as_text(text, what):
    """A str, or a list/tuple of str joined by blank lines (as ``load_shakespeare(concatenate=True)``)."""
    if isinstance(text, str):
        return text
    if isinstance(text, (list, tuple)) and all(isinstance(t, str) for t in text):
        return "\n\n".join(text)
    kind = "bytes: decode them first (text.decode('utf-8'))" if isinstance(text, (bytes, bytearray)) \
        else type(text).__name__
    raise TypeError(f"{what} must be a string or a list of strings; got {kind}")


def _codepoints(text):
    """The characters of ``text`` as a ``(len(text),)`` uint32 array of Unicode code points."""
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)


def _log_softmax(z):
    """Row-wise log-softmax of ``z`` ``(n, V)`` in ``z``'s own dtype (no float64 temporaries)."""
    shifted = z - z.max(axis=1, keepdims=True)
    shifted -= np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return shifted


def evaluation_windows(n, context, max_streams=_EVAL_STREAMS):
    """How :meth:`CharLM.score` splits a text of ``n`` characters into parallel streams.

    Character ``p`` (``1 <= p < n``) is predicted from the characters before it. Stream ``s`` reads
    ``ids[starts[s] : starts[s] + width]`` and predicts ``ids[starts[s] + 1 : starts[s] + width + 1]``;
    ``mask`` ``(S, width)`` is 1 where that prediction is scored. Every character is scored exactly
    once (the mask sums to ``n - 1``) and with at least ``min(context, p)`` characters of context
    read before it in its stream, so the streams' answer is close to reading the text in one pass.
    Returns ``(starts (S,), width, mask (S, width) float64)``; ``S <= max_streams``, and the overlap
    costs at most a quarter of ``n`` extra characters.
    """
    targets = n - 1
    streams = int(np.clip(targets // (4 * max(context, 1)), 1, max_streams))
    per_stream = -(-targets // streams)
    streams = -(-targets // per_stream)  # no empty streams
    width = min(per_stream + context, targets)
    first = 1 + per_stream * np.arange(streams)            # first scored position of each stream
    last = np.minimum(first + per_stream, n)               # one past the last
    starts = np.clip(first - 1 - context, 0, n - 1 - width)
    positions = starts[:, None] + 1 + np.arange(width)[None, :]
    mask = ((positions >= first[:, None]) & (positions < last[:, None])).astype(np.float64)
    return starts, width, mask


@contextlib.contextmanager
def _threads(n_threads):
    """:func:`thread_limit` with NumPy's BLAS on one thread. The head's GEMMs are small next to the
    recurrent kernels, and the OpenBLAS workers they woke kept spinning and took the cores from the
    kernels' threads: training ran at 18.2k instead of 23.7k characters/s on 2 cores."""
    with thread_limit(n_threads), blas_limited(1):
        yield


class CharLM(BaseEstimator):
    """Character-level language model: embedding -> recurrent stack -> linear head + softmax.

    Parameters
    ----------
    cell : "lstm", "gru" or "rnn" (tanh)
    hidden_size, num_layers : size ``H`` and depth ``L`` of the recurrent stack.
    seq_len : characters per stream per training step (the truncation length ``T`` of BPTT).
    batch_size : parallel streams ``B`` (a text too short to give every stream one chunk uses fewer).
    embedding_size : width ``E`` of each character's learned vector.
    dropout : probability of zeroing a feature between recurrent layers and before the head.
    learning_rate : Adam's step size.
    clip_grad_norm : the global gradient norm is clipped to this value (None: no clipping).
    max_epochs : passes over the training text.
    max_time : wall-clock budget of :meth:`fit` in seconds, validation included (None: no limit).
        Training stops early enough that the last validation pass still ends within it.
    validation_interval : training steps between validation passes, loss-curve points and progress
        lines (None: once per epoch). A final point is added when training stops between them.
    vocabulary : str or None, the characters the model knows (order and repeats do not matter).
        None: those of the training text. Give it when later texts may hold characters the training
        text lacks; the model learns to give those (near) zero probability.
    random_state : int, RandomState or None; fixes the initial weights and the dropout masks.
    verbose : print a progress line on stderr at every validation point.
    dtype : "float32" or "float64".
    backend : kernel backend of the recurrent layers ("auto", "numba", "cython", "reference").
    n_threads : kernel and BLAS threads during fit/score/sample (None: unchanged).

    Fitted attributes
    -----------------
    vocabulary_ : str, the distinct characters of the training text (or of ``vocabulary``), sorted;
        character ``i`` of it is class ``i`` of the softmax (``V = len(vocabulary_)``).
    char_frequencies_ : ``(V,)`` float array, each character's share of the training text.
    embedding_, rnn_, head_ : the :class:`~fastrnn.nn.embedding.Embedding`, the recurrent stack
        and the :class:`~fastrnn.nn.linear.Linear` head.
    loss_curve_ : list, the mean training loss in bits per character over each validation interval.
    validation_bpc_ : list of the validation text's bits per character at the same points (None
        without ``validation_text``).
    n_iter_ : training steps taken; ``n_chars_trained_``: characters predicted during training;
        ``fit_time_``: seconds spent in fit.

    Characters outside ``vocabulary_`` in any text given after ``fit`` (``validation_text``,
    :meth:`score`, :meth:`predict_log_proba`, the ``prime`` of :meth:`sample`) raise a ValueError
    that names them: the model has no probability for them, and silently dropping or replacing them
    would distort the score.
    """

    def __init__(self, cell="lstm", hidden_size=256, num_layers=2, seq_len=100, batch_size=64,
                 embedding_size=64, dropout=0.0, learning_rate=2e-3, clip_grad_norm=5.0, max_epochs=10,
                 max_time=None, validation_interval=None, vocabulary=None, random_state=None, verbose=False,
                 dtype="float32", backend="auto", n_threads=None):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.embedding_size = embedding_size
        self.dropout = dropout
        self.learning_rate = learning_rate
        self.clip_grad_norm = clip_grad_norm
        self.max_epochs = max_epochs
        self.max_time = max_time
        self.validation_interval = validation_interval
        self.vocabulary = vocabulary
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.backend = backend
        self.n_threads = n_threads

    # ------------------------------------------------------------------ checks
    def _check_params(self):
        if self.cell not in _LAYERS:
            raise ValueError(f"cell must be one of {sorted(_LAYERS)}; got {self.cell!r}")
        names = ["hidden_size", "num_layers", "seq_len", "batch_size", "embedding_size", "max_epochs"]
        if self.validation_interval is not None:
            names.append("validation_interval")
        for name in names:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        for name, value in (("dropout", self.dropout), ("learning_rate", self.learning_rate),
                            ("clip_grad_norm", self.clip_grad_norm), ("max_time", self.max_time)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float, np.number))):
                raise TypeError(f"{name} must be a number; got {type(value).__name__}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None; got {self.clip_grad_norm!r}")
        if self.max_time is not None and not self.max_time > 0:
            raise ValueError(f"max_time must be a positive number of seconds or None; got {self.max_time!r}")
        if self.vocabulary is not None and (not isinstance(self.vocabulary, str) or not self.vocabulary):
            raise TypeError(f"vocabulary must be None or a non-empty string of characters; got {self.vocabulary!r}")
        if self.dtype not in ("float32", "float64", np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}")

    def _encode(self, text, what, vocabulary=None):
        """``text`` (str) as ``(len(text),)`` int64 indices into ``vocabulary`` (default ``vocabulary_``);
        ValueError naming the characters that are not in it."""
        vocab = _codepoints(self.vocabulary_ if vocabulary is None else vocabulary)
        codes = _codepoints(text)
        index = np.minimum(np.searchsorted(vocab, codes), len(vocab) - 1)
        unknown = vocab[index] != codes
        if unknown.any():
            chars = sorted(set(chr(c) for c in codes[unknown]))
            shown = ", ".join(repr(c) for c in chars[:20]) + (", ..." if len(chars) > 20 else "")
            raise ValueError(f"{what} holds {len(chars)} character(s) outside the model's vocabulary: {shown}. "
                             f"Remove or replace them, or fit with vocabulary=... (a string of every character "
                             f"to know) that includes them.")
        return index.astype(np.int64)

    def _text_ids(self, text, what, min_length, vocabulary=None):
        text = _as_text(text, what)
        if len(text) < min_length:
            raise ValueError(f"{what} must hold at least {min_length} characters; got {len(text)}")
        return self._encode(text, what, vocabulary)

    # ------------------------------------------------------------------ the model
    def _build(self, vocabulary, rng):
        """Create the modules for ``vocabulary`` (a str) with seeds drawn from ``rng`` (RandomState)."""
        dtype = np.dtype(self.dtype)
        seeds = rng.randint(2 ** 31, size=4)
        V, E, H = len(vocabulary), self.embedding_size, self.hidden_size
        self.vocabulary_ = vocabulary
        self.embedding_ = Embedding(V, E, dtype=dtype, random_state=int(seeds[0]))
        kwargs = dict(num_layers=self.num_layers, dropout=self.dropout, dtype=dtype, backend=self.backend,
                      random_state=int(seeds[1]))
        self.rnn_ = _LAYERS[self.cell](E, H, **kwargs)
        self.head_ = Linear(H, V, dtype=dtype, random_state=int(seeds[2]))
        self._dropout_rng = np.random.default_rng(int(seeds[3]))

    def _modules(self):
        return {"embedding": self.embedding_, "rnn": self.rnn_, "head": self.head_}

    def _parameters(self):
        """Live parameter arrays keyed like the PyTorch module ``bench/charlm.py`` builds."""
        return {f"{m}.{k}": v for m, module in self._modules().items() for k, v in module.params.items()}

    def _gradients(self):
        return {f"{m}.{k}": v for m, module in self._modules().items() for k, v in module.grads.items()}

    def state_dict(self):
        """Copies of all parameters: ``embedding.weight`` (V, E), ``rnn.weight_ih_l0`` ... (PyTorch's
        names and shapes), ``head.weight`` (V, H), ``head.bias`` (V,)."""
        check_is_fitted(self, "rnn_")
        return {name: value.copy() for name, value in self._parameters().items()}

    def _zero_state(self, batch):
        shape = (self.num_layers, batch, self.hidden_size)
        dtype = np.dtype(self.dtype)
        return np.zeros(shape, dtype), (np.zeros(shape, dtype) if self.cell == "lstm" else None)

    def _forward(self, x, state, need_grad):
        """Logits ``(B*T, V)`` for class indices ``x`` ``(B, T)`` starting from ``state`` ``(h, c or
        None)``, each ``(L, B, H)``; returns ``(logits, new_state)``."""
        emb = self.embedding_.forward(x, need_grad=need_grad)
        h0, c0 = state
        if self.cell == "lstm":
            out, h_n, c_n = self.rnn_.forward(emb, None, h0, c0, need_grad=need_grad)
        else:
            (out, h_n), c_n = self.rnn_.forward(emb, None, h0, need_grad=need_grad), None
        out = out.reshape(-1, self.hidden_size)
        self._head_mask = None
        if need_grad and self.rnn_.training and self.dropout > 0:
            keep = 1.0 - self.dropout
            self._head_mask = (self._dropout_rng.random(out.shape) < keep).astype(out.dtype) / out.dtype.type(keep)
            out = out * self._head_mask
        logits = self.head_.forward(out)                 # one GEMM over the whole chunk: (B*T, H) x (H, V)
        if not need_grad:
            self.head_._input = None                      # nothing kept for a backward that will not come
        return logits, (h_n, c_n)

    def _loss_and_grads(self, x, y, state):
        """Mean cross-entropy (nats) of predicting ``y`` ``(B, T)`` from ``x`` ``(B, T)``, with the
        gradients of every parameter (:meth:`_gradients`) filled; returns ``(loss, new_state)``.

        Truncated BPTT: no gradient flows into ``state``. Nothing is computed past a non-finite loss.
        """
        logits, new_state = self._forward(x, state, need_grad=True)
        log_p = _log_softmax(logits)
        rows, targets = np.arange(log_p.shape[0]), y.reshape(-1)
        loss = -float(log_p[rows, targets].sum(dtype=np.float64)) / len(rows)
        if not np.isfinite(loss):
            return loss, new_state
        grad = np.exp(log_p, out=log_p)
        grad[rows, targets] -= 1.0
        grad *= grad.dtype.type(1.0 / len(rows))
        grad_out = self.head_.backward(grad)
        self.head_._input = None
        if self._head_mask is not None:
            grad_out *= self._head_mask
        grad_emb = self.rnn_.backward(grad_out.reshape(x.shape + (self.hidden_size,)))
        self.embedding_.backward(grad_emb)
        return loss, new_state

    def _total_nats(self, ids):
        """Summed cross-entropy (nats) over the ``len(ids) - 1`` predictions, by :func:`evaluation_windows`."""
        starts, width, mask = evaluation_windows(len(ids), self.seq_len)
        columns = starts[:, None] + np.arange(width + 1)[None, :]
        windows = ids[columns]                                 # (S, width + 1)
        state = self._zero_state(len(starts))
        total = 0.0
        for t0 in range(0, width, _EVAL_CHUNK):
            stop = min(t0 + _EVAL_CHUNK, width)
            x, y = windows[:, t0:stop], windows[:, t0 + 1:stop + 1]
            logits, state = self._forward(x, state, need_grad=False)
            log_p = _log_softmax(logits)
            picked = log_p[np.arange(log_p.shape[0]), y.reshape(-1)]
            total -= float(np.dot(picked.astype(np.float64), mask[:, t0:t0 + x.shape[1]].reshape(-1)))
        return total

    # ------------------------------------------------------------------ training
    def fit(self, text, validation_text=None):
        """Learn the vocabulary and the model from ``text``; returns self.

        ``text``: a string, or a list of strings (joined by blank lines), of at least 2 characters.
        ``validation_text`` (same types): scored in bits per character at every validation point
        (``validation_bpc_``). Every character of both must be in the vocabulary (the
        training text's characters, or the ``vocabulary`` parameter), else ValueError naming them.
        """
        self._check_params()
        train = _as_text(text, "text")
        if len(train) < 2:
            raise ValueError(f"text must hold at least 2 characters; got {len(train)}")
        start = time.perf_counter()
        vocabulary = "".join(sorted(set(train if self.vocabulary is None else self.vocabulary)))
        ids = self._encode(train, "text", vocabulary)
        val_ids = None if validation_text is None else self._text_ids(validation_text, "validation_text", 2,
                                                                      vocabulary)
        self._build(vocabulary, check_random_state(self.random_state))
        self.char_frequencies_ = np.bincount(ids, minlength=len(self.vocabulary_)) / len(ids)
        self.loss_curve_, self.validation_bpc_ = [], ([] if val_ids is not None else None)
        self.n_iter_, self.n_chars_trained_ = 0, 0
        with _threads(self.n_threads):
            self._train(ids, val_ids, start)
        self.fit_time_ = time.perf_counter() - start
        return self

    def _train(self, ids, val_ids, start):
        """The training loop over class indices ``ids`` ``(n,)``: epochs of truncated-BPTT steps over
        ``B`` parallel contiguous streams, until ``max_epochs``, ``max_time`` (counted from ``start``),
        divergence or an interrupt."""
        B = max(1, min(self.batch_size, (len(ids) - 1) // self.seq_len))
        per_stream = (len(ids) - 1) // B
        inputs = ids[:B * per_stream].reshape(B, per_stream)
        targets = ids[1:B * per_stream + 1].reshape(B, per_stream)
        self._chars_per_epoch = B * per_stream
        deadline = None if self.max_time is None else start + float(self.max_time)
        optimizer = Adam(learning_rate=self.learning_rate)
        params = self._parameters()
        period = {"nats": 0.0, "chars": 0, "start": time.perf_counter()}
        timing = {"step": 0.0, "eval_per_char": None, "train_per_char": None}
        last_good = before_step = self._snapshot()  # the initial weights are the fallback until a step succeeds
        self.rnn_.train()
        try:
            for _ in range(self.max_epochs):
                state = self._zero_state(B)
                for t0 in range(0, per_stream, self.seq_len):
                    if deadline is not None and self._out_of_time(deadline, val_ids, timing):
                        return self._close_period(period, val_ids)
                    step_start = time.perf_counter()
                    x, y = inputs[:, t0:t0 + self.seq_len], targets[:, t0:t0 + self.seq_len]
                    before_step = self._snapshot()
                    loss, state = self._optimiser_step(x, y, state, optimizer, params)
                    if not (np.isfinite(loss) and self._parameters_finite()):
                        # keep the latest weights known to give a finite loss
                        self._restore(before_step if np.isfinite(loss) else last_good)
                        warnings.warn(f"training diverged (non-finite loss or weights) at step {self.n_iter_ + 1}; "
                                      f"the last weights that gave a finite loss were kept. Lower learning_rate "
                                      f"or set clip_grad_norm.", ConvergenceWarning, stacklevel=3)
                        return self._close_period(period, val_ids)
                    last_good = before_step  # these weights gave a finite loss on this chunk
                    self._count_step(x.size, loss, time.perf_counter() - step_start, period, timing)
                    if self.validation_interval and self.n_iter_ % self.validation_interval == 0:
                        self._close_period(period, val_ids, timing)
                if not self.validation_interval:
                    self._close_period(period, val_ids, timing)
        except KeyboardInterrupt:
            self._restore(before_step)  # the weights as the interrupted step found them
            warnings.warn(f"training interrupted at step {self.n_iter_ + 1}; the model keeps the weights of the "
                          f"last complete training step", UserWarning, stacklevel=3)
        self._close_period(period, val_ids)

    def _optimiser_step(self, x, y, state, optimizer, params):
        """Forward, backward, clip and Adam update on the chunk ``x``, ``y`` ``(B, T)`` from ``state``;
        returns ``(loss in nats, new state)``. A non-finite loss leaves the weights untouched."""
        with np.errstate(over="ignore", invalid="ignore"):  # divergence is reported by the caller
            loss, state = self._loss_and_grads(x, y, state)
        if np.isfinite(loss):
            grads = self._gradients()
            if self.clip_grad_norm is not None:
                clip_grad_norm(grads, self.clip_grad_norm)
            optimizer.update_params(params, grads)
        return loss, state

    def _count_step(self, n_chars, loss, seconds, period, timing):
        """Book-keeping after a successful step: counters, the period's loss, speed estimates."""
        self.n_iter_ += 1
        self.n_chars_trained_ += n_chars
        period["nats"] += loss * n_chars
        period["chars"] += n_chars
        if self.n_iter_ > 1:  # the first step also loads the kernels: later ones tell the speed
            timing["step"] = seconds
            timing["train_per_char"] = min(seconds / n_chars, timing["train_per_char"] or np.inf)

    def _out_of_time(self, deadline, val_ids, timing):
        """Whether one more step, plus the last validation pass, would end past ``deadline``."""
        reserve = 0.0
        if val_ids is not None:
            per_char = timing["eval_per_char"]
            if per_char is None and timing["train_per_char"] is not None:
                per_char = timing["train_per_char"] / 2  # forward only: about a third of a training step
            reserve = (per_char or 0.0) * len(val_ids)
        return time.perf_counter() + timing["step"] + reserve >= deadline

    def _close_period(self, period, val_ids, timing=None):
        """Record a loss-curve point (and a validation score) for the steps since the last one."""
        if period["chars"] == 0:
            return
        train_bpc = period["nats"] / period["chars"] * _NATS_TO_BITS
        self.loss_curve_.append(train_bpc)
        val_bpc = None
        if val_ids is not None:
            eval_start = time.perf_counter()
            self.rnn_.eval()
            val_bpc = self._total_nats(val_ids) / (len(val_ids) - 1) * _NATS_TO_BITS
            self.rnn_.train()
            self.validation_bpc_.append(val_bpc)
            if timing is not None:
                timing["eval_per_char"] = (time.perf_counter() - eval_start) / len(val_ids)
        if self.verbose:
            speed = period["chars"] / max(time.perf_counter() - period["start"], 1e-9)
            epochs = self.n_chars_trained_ / self._chars_per_epoch
            extra = "" if val_bpc is None else f" | validation {val_bpc:.3f} bpc"
            sys.stderr.write(f"epoch {epochs:6.2f} step {self.n_iter_:>6} | train {train_bpc:.3f} bpc{extra} | "
                             f"{speed:,.0f} chars/s\n")
            sys.stderr.flush()
        period.update(nats=0.0, chars=0, start=time.perf_counter())

    def _snapshot(self):
        return {name: value.copy() for name, value in self._parameters().items()}

    def _restore(self, snapshot):
        for name, value in self._parameters().items():
            value[...] = snapshot[name]

    def _parameters_finite(self):
        return all(np.isfinite(v).all() for v in self._parameters().values())

    # ------------------------------------------------------------------ using the model
    def score(self, text):
        """Bits per character of ``text`` under the model: a cost, lower is better.

        Note: scikit-learn's convention is "higher is better"; this is the opposite, so negate it (or
        use a custom scorer) before handing the model to a model-selection tool. ``text`` is a string
        or a list of strings (joined by blank lines) of at least 2 characters, all in
        ``vocabulary_`` (else ValueError naming the others). Every character after the first is
        predicted from the ones before it; long texts are read as parallel streams that overlap by
        ``seq_len`` characters (:func:`evaluation_windows`), which matches one sequential pass
        closely. ``log2(len(vocabulary_))`` is what guessing uniformly would give.
        """
        check_is_fitted(self, "rnn_")
        ids = self._text_ids(text, "text", 2)
        with _threads(self.n_threads):
            self.rnn_.eval()
            try:
                return self._total_nats(ids) / (len(ids) - 1) * _NATS_TO_BITS
            finally:
                self.rnn_.train()

    def bits_per_character(self, text):
        """Alias of :meth:`score`: bits per character of ``text`` (lower is better)."""
        return self.score(text)

    def predict_log_proba(self, text, state=None, return_state=False):
        """Natural-log probabilities of the character after each prefix of ``text``, read in one pass.

        Returns ``(len(text), V)``: row ``i`` is the distribution of the character that follows
        ``text[:i + 1]`` (columns ordered as ``vocabulary_``). ``state`` continues from where an
        earlier call stopped (``return_state=True`` returns it as a second value): ``h``
        ``(num_layers, 1, hidden_size)``, or the pair ``(h, c)`` for an LSTM; None starts afresh.
        """
        check_is_fitted(self, "rnn_")
        if not isinstance(text, str):
            raise TypeError(f"text must be a string; got {type(text).__name__}")
        ids = self._text_ids(text, "text", 1)[None, :]
        state = self._check_state(state)
        out = []
        with _threads(self.n_threads):
            self.rnn_.eval()
            try:
                for t0 in range(0, ids.shape[1], _EVAL_CHUNK):
                    logits, state = self._forward(ids[:, t0:t0 + _EVAL_CHUNK], state, need_grad=False)
                    out.append(_log_softmax(logits))
            finally:
                self.rnn_.train()
        log_p = np.concatenate(out)
        return (log_p, self._public_state(state)) if return_state else log_p

    def _check_state(self, state):
        if state is None:
            return self._zero_state(1)
        parts = state if self.cell == "lstm" else (state,)
        if self.cell == "lstm" and not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError("an LSTM's state is the pair (h, c) that predict_log_proba(..., return_state=True) "
                             "returned")
        shape = (self.num_layers, 1, self.hidden_size)
        checked = []
        for part in parts:
            part = np.asarray(part)
            if part.shape != shape:
                raise ValueError(f"state arrays must have shape {shape}; got {part.shape}")
            checked.append(part.astype(np.dtype(self.dtype)))
        return checked[0], (checked[1] if len(checked) == 2 else None)

    def _public_state(self, state):
        return state if self.cell == "lstm" else state[0]

    def sample(self, n_chars, prime="", temperature=1.0, random_state=None):
        """Generate ``n_chars`` characters that continue ``prime``; returns them as a str (without
        the prime).

        ``temperature`` divides the logits: below 1 the text is more conservative, above 1 more
        varied, and 0 always takes the most likely character. With an empty ``prime`` the first
        character is drawn from the training text's character frequencies. ``random_state`` (int,
        Generator or None) makes the result reproducible. Characters of ``prime`` outside
        ``vocabulary_`` raise a ValueError naming them.
        """
        check_is_fitted(self, "rnn_")
        if isinstance(n_chars, bool) or not isinstance(n_chars, (int, np.integer)) or n_chars < 0:
            raise ValueError(f"n_chars must be a non-negative integer; got {n_chars!r}")
        if not isinstance(prime, str):
            raise TypeError(f"prime must be a string; got {type(prime).__name__}")
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float, np.number)) \
                or not (np.isfinite(temperature) and temperature >= 0):
            raise ValueError(f"temperature must be a finite number >= 0; got {temperature!r}")
        rng = np.random.default_rng(random_state)
        if n_chars == 0:
            return ""
        with _threads(self.n_threads):
            if prime:
                log_p, state = self.predict_log_proba(prime, return_state=True)
                log_p = log_p[-1]
            else:
                log_p, state = np.log(np.maximum(self.char_frequencies_, 1e-300)), None
            chosen = []
            weight, bias = self.head_.params["weight"], self.head_.params["bias"]
            while True:
                chosen.append(self._draw(log_p, temperature, rng))
                if len(chosen) == n_chars:
                    break
                x = self.embedding_.forward(np.array([chosen[-1]]), need_grad=False)   # (1, E)
                y, state = self.rnn_.step(x, state)
                log_p = (y @ weight.T + bias)[0].astype(np.float64)
        return "".join(self.vocabulary_[i] for i in chosen)

    @staticmethod
    def _draw(logits, temperature, rng):
        """An index drawn from ``softmax(logits / temperature)`` (argmax for temperature 0)."""
        logits = np.asarray(logits, dtype=np.float64)
        if temperature == 0:
            return int(np.argmax(logits))
        z = logits / temperature
        p = np.exp(z - z.max())
        cdf = np.cumsum(p)
        return int(min(np.searchsorted(cdf, rng.random() * cdf[-1], side="right"), len(p) - 1))

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_head_mask", None)
        return state


def shakespeare_demo(minutes, cell="lstm", hidden_size=256, num_layers=2, seed=0, validation_play="tempest",
                     validation_interval=20, n_chars=400, temperatures=(0.5, 1.0), out=None):
    """What ``python -m fastrnn generate`` runs: fit a :class:`CharLM` for ``minutes`` (wall clock,
    validation passes included) on the shipped plays except ``validation_play``, printing a progress
    line (train and validation bits per character) every ``validation_interval`` steps on stderr,
    then write ``n_chars`` sampled characters per temperature to ``out`` (default stdout).
    Returns the fitted model."""
    from .datasets import PLAYS, load_shakespeare

    if validation_play not in PLAYS:
        raise ValueError(f"validation_play must be one of {list(PLAYS)}; got {validation_play!r}")
    out = sys.stdout if out is None else out
    plays = load_shakespeare()
    train = [text for name, text in plays.items() if name != validation_play]
    model = CharLM(cell=cell, hidden_size=hidden_size, num_layers=num_layers, max_epochs=10 ** 6,
                   max_time=minutes * 60.0, validation_interval=validation_interval, random_state=seed,
                   vocabulary="".join(plays.values()),  # the held-out play has characters the others lack
                   verbose=True)
    sys.stderr.write(f"training a {num_layers}-layer {cell.upper()} ({hidden_size} units) for {minutes:g} min on "
                     f"{len(train)} plays; validation: {validation_play}\n")
    model.fit(train, plays[validation_play])
    bpc = model.validation_bpc_[-1] if model.validation_bpc_ else model.score(plays[validation_play])
    out.write(f"{model.n_iter_} steps, {model.n_chars_trained_:,} characters in {model.fit_time_:.1f} s; "
              f"validation {bpc:.3f} bits per character (uniform guessing: "
              f"{math.log2(len(model.vocabulary_)):.3f})\n")
    for temperature in temperatures:
        text = model.sample(n_chars, prime="\n", temperature=temperature, random_state=seed)
        out.write(f"\n--- sample at temperature {temperature:g} ---\n{text}\n")
    out.flush()
    return model
