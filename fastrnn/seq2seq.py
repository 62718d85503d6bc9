"""Sequence-to-sequence estimators on :class:`fastrnn.nn.Seq2Seq`.

- :class:`Seq2SeqForecaster`: multi-step forecasts, ``X (n, T[, F])`` -> ``y (n, horizon[, k])``.
- :class:`Seq2SeqTranslator`: character-level string-to-string translation (e.g.
  :func:`fastrnn.datasets.make_dates`).
- :func:`date_translation_accuracy`: the translator on held-out :func:`~fastrnn.datasets.make_dates` pairs.
- :func:`sunspot_horizon_table`: the forecaster against the naive and the recursive one-step
  forecasts on the shipped sunspot series.

The training policy follows the other estimators: Adam, gradient clipping, optional early stopping
on a held-out fraction (the best weights are kept), a warning and the last good weights when training
diverges, one progress line per epoch with ``verbose=True``. ``__init__`` only stores parameters.
"""
import warnings

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_array, check_is_fitted

from ._validation import check_sequences
from .estimators._base import PREDICT_BATCH_SIZE, _ProgressBar, thread_limit
from .nn.losses import softmax_cross_entropy
from .nn.optim import Adam, clip_grad_norm
from .nn.seq2seq import DECODER_INPUTS, Seq2Seq

__all__ = ["Seq2SeqForecaster", "Seq2SeqTranslator", "sunspot_horizon_table", "date_translation_accuracy"]


class _Seq2SeqEstimator(BaseEstimator):
    """Parameter checks and the training loop shared by the two estimators (not public)."""

    def _check_params(self):
        for name in ("hidden_size", "num_layers", "batch_size", "max_epochs", "n_iter_no_change"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.cell not in ("lstm", "gru"):
            raise ValueError(f"cell must be 'lstm' or 'gru'; got {self.cell!r}")
        if not isinstance(self.teacher_forcing_ratio, (int, float, np.number)) or isinstance(
                self.teacher_forcing_ratio, bool) or not 0.0 <= self.teacher_forcing_ratio <= 1.0:
            raise ValueError(f"teacher_forcing_ratio must be a number in [0, 1] (1: always feed the ground truth, "
                             f"0: always feed the model's own predictions); got {self.teacher_forcing_ratio!r}")
        if not (isinstance(self.learning_rate, (int, float, np.number)) and np.isfinite(self.learning_rate)
                and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number; got {self.learning_rate!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {self.alpha!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None; got {self.clip_grad_norm!r}")
        if self.early_stopping and not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1); got {self.validation_fraction!r}")
        if str(self.dtype) not in ("float32", "float64") and np.dtype(self.dtype) not in (np.float32, np.float64):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}")

    def _new_model(self, input_size, output_size, rng, embedding_dim=None, decoder_input="previous"):
        self.model_ = Seq2Seq(input_size, output_size, self.hidden_size, num_layers=self.num_layers,
                              cell=self.cell, bidirectional=self.bidirectional, embedding_dim=embedding_dim,
                              decoder_input=decoder_input, dtype=np.dtype(self.dtype), backend=self.backend,
                              random_state=int(rng.integers(2 ** 31)))
        self._tf_rng = np.random.default_rng(int(rng.integers(2 ** 31)))

    def _update(self, grad_z):
        """Backpropagate ``grad_z`` through the model and take one optimiser step."""
        self.model_.backward(grad_z, need_input_grad=False)  # the source sequences are data
        params, grads = self.model_.params, self.model_.grads
        if self.alpha:
            grads = {name: (g + self.alpha * params[name] if "weight" in name else g) for name, g in grads.items()}
        if self.clip_grad_norm is not None:
            clip_grad_norm(grads, self.clip_grad_norm)
        self._optimizer.update_params(params, grads)

    def _train(self, n_samples, train_step, validation_score, rng):
        """Epochs of shuffled mini-batches: ``train_step(indices) -> loss`` trains on a batch and
        ``validation_score(indices) -> float`` (higher is better) rates held-out samples."""
        self._optimizer = Adam(learning_rate=self.learning_rate)
        self.loss_curve_, self.validation_scores_, self.n_iter_ = [], [], 0
        order = rng.permutation(n_samples)
        n_val = max(1, int(round(self.validation_fraction * n_samples))) if self.early_stopping else 0
        if self.early_stopping and n_samples - n_val < 1:
            raise ValueError(f"early_stopping needs more samples: {n_samples} leaves none for training after a "
                             f"validation_fraction of {self.validation_fraction}")
        val_idx, train_idx = order[:n_val], order[n_val:]
        snapshot = lambda: self.model_.state_dict()
        best, best_score, best_loss = snapshot(), -np.inf, np.inf
        progress = _ProgressBar(self.max_epochs, bool(self.verbose))
        no_improvement, converged = 0, False
        for _ in range(self.max_epochs):
            shuffled = rng.permutation(train_idx)
            total = 0.0
            for start in range(0, len(shuffled), self.batch_size):
                batch = shuffled[start:start + self.batch_size]
                before = snapshot()
                loss = train_step(batch)
                if not np.isfinite(loss) or not all(np.all(np.isfinite(p)) for p in self.model_.params.values()):
                    self.model_.load_state_dict(before)
                    warnings.warn(f"training diverged (non-finite loss) in epoch {self.n_iter_ + 1}; the last weights "
                                  f"that gave a finite loss were kept. Lower learning_rate or set clip_grad_norm.",
                                  ConvergenceWarning, stacklevel=3)
                    return
                total += loss * len(batch)
            self.n_iter_ += 1
            epoch_loss = total / len(train_idx)
            self.loss_curve_.append(epoch_loss)
            score = None
            if self.early_stopping:
                score = validation_score(val_idx)
                self.validation_scores_.append(score)
                no_improvement = 0 if score > best_score + self.tol else no_improvement + 1
                if score > best_score:
                    best_score, best = score, snapshot()
            else:
                no_improvement = no_improvement + 1 if epoch_loss > best_loss - self.tol else 0
            best_loss = min(best_loss, epoch_loss)
            progress.update(self.n_iter_, epoch_loss, score)
            if no_improvement >= self.n_iter_no_change:
                converged = True
                break
        if self.early_stopping:
            self.model_.load_state_dict(best)
        if not converged and not self.early_stopping:
            warnings.warn(f"{type(self).__name__} reached max_epochs={self.max_epochs} without converging "
                          f"(tol={self.tol}, n_iter_no_change={self.n_iter_no_change}); consider more epochs",
                          ConvergenceWarning, stacklevel=3)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.non_deterministic = False
        return tags


class Seq2SeqForecaster(RegressorMixin, _Seq2SeqEstimator):
    """Multi-step forecaster: an encoder reads the window, a decoder emits the next ``horizon`` values.

    ``fit(X, y)``: ``X`` is ``(n, T, F)``, ``(n, T)`` (univariate) or a list of ``(T_i, F)`` arrays;
    ``y`` is ``(n, horizon)`` (one output) or ``(n, horizon, n_outputs)`` (``(n,)``: horizon 1). The
    horizon is ``y``'s second axis. ``predict(X)`` returns ``y``'s shape.

    Scaling: with ``scaling="window"`` each window is first standardised by its own mean and spread per
    feature (over its valid steps; the spread is ``sqrt(var + window_floor_**2)``, ``window_floor_``
    a tenth of the training inputs' standard deviation, so flat windows are not blown up) and its
    targets by the same numbers, and the forecasts are mapped back: the network learns the shape of
    what follows, not the level, so it carries over to a test period whose level or amplitude the
    training data never reached (RevIN, Kim et al. 2022, without its learned affine). This needs the
    inputs to be the series' own past (as many features as ``y`` has outputs, as
    :func:`fastrnn.make_windows` makes them); "auto" (default) uses it then and "global" otherwise;
    "global" never does. Then inputs and targets are standardised per feature / output over the
    whole training set (``x_mean_``, ``x_scale_``, ``y_mean_``, ``y_scale_``).

    Decoder inputs (``decoder_input``, see :mod:`fastrnn.nn.seq2seq`): "previous+context" (default)
    reads the previous target values (scaled) and the encoder's final state at every step; "previous"
    the values alone; "context" the encoder's final state alone (no feedback: ``start`` and
    ``teacher_forcing_ratio`` then do nothing). Step 0 reads ``start``: "auto" (default) uses the last
    input step when the inputs are the series' own past (as above) and zeros otherwise; "last" demands
    the former; "zeros" always uses zeros. During training each decoder step is teacher forced with
    probability ``teacher_forcing_ratio`` (drawn per step and batch from a generator seeded by
    ``random_state``); otherwise it reads the model's own prediction, and the gradient flows through
    it. The default, 0.0, trains on the ``horizon``-step forecast itself, as prediction (greedy, from
    the model's own predictions) uses it. Forecasting sunspots 12 years ahead (test RMSE, mean over
    seeds 0-11, :func:`sunspot_horizon_table`): the defaults 33.9 (the recursive one-step LSTM: 37.1);
    "context" 34.0; "previous" 34.5 at ratio 0.0 and 36.1 at 1.0; with ``scaling="global"``
    "previous" at 1.0 gives 37.3 and every free-running variant 53-60 (the test decades lie higher
    than any training decade, and a multi-step forecast trained on levels regresses to the old ones).

    Parameters as :class:`fastrnn.LSTMRegressor` where the names agree; ``cell`` is "lstm" or "gru";
    ``bidirectional`` makes the encoder bidirectional (its two directions' final states are summed).
    ``score`` is R² averaged over all steps (and outputs), like scikit-learn's multi-output R².
    """

    def __init__(self, cell="lstm", hidden_size=64, num_layers=1, bidirectional=False,
                 decoder_input="previous+context", scaling="auto", teacher_forcing_ratio=0.0, start="auto",
                 learning_rate=0.005, batch_size=32, max_epochs=200, alpha=1e-5, clip_grad_norm=5.0,
                 early_stopping=False, validation_fraction=0.1, n_iter_no_change=10, tol=1e-4, random_state=None,
                 verbose=False, dtype="float32", backend="auto", n_threads=None):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.decoder_input = decoder_input
        self.scaling = scaling
        self.teacher_forcing_ratio = teacher_forcing_ratio
        self.start = start
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.alpha = alpha
        self.clip_grad_norm = clip_grad_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.backend = backend
        self.n_threads = n_threads

    def _check_y(self, y, n_samples):
        y = check_array(y, ensure_2d=False, allow_nd=True, dtype=[np.float64, np.float32], input_name="y")
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim not in (2, 3):
            raise ValueError(f"y must have shape (n_samples, horizon) or (n_samples, horizon, n_outputs); "
                             f"got shape {y.shape}")
        if y.shape[0] != n_samples:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: X has {n_samples}, "
                             f"y has {y.shape[0]}")
        return y

    def _start_values(self, X_raw, lengths):
        """Step-0 decoder input ``(n, n_outputs)`` in scaled target units, from unscaled ``X``."""
        n = X_raw.shape[0]
        if self._start_from_inputs:
            last = X_raw[np.arange(n), lengths - 1]
            return ((last - self.y_mean_) / self.y_scale_).astype(X_raw.dtype)
        return np.zeros((n, self.n_outputs_), dtype=X_raw.dtype)

    def _window_stats(self, X, lengths):
        """Per-window location and scale ``(n, 1, F)`` of unscaled ``X (n, T, F)`` over its valid steps.

        The scale is ``sqrt(var + window_floor_**2)``: a flat window is not blown up beyond ten times
        the whole training data's spread per feature (``window_floor_`` is a tenth of it).
        """
        valid = (np.arange(X.shape[1])[None, :] < lengths[:, None])[:, :, None]
        count = lengths[:, None, None].astype(X.dtype)
        loc = np.where(valid, X, 0).sum(axis=1, keepdims=True) / count
        var = np.where(valid, (X - loc) ** 2, 0).sum(axis=1, keepdims=True) / count
        return loc, np.sqrt(var + self.window_floor_ ** 2).astype(X.dtype)

    def fit(self, X, y):
        """Fit to windows ``X (n, T[, F])`` and their futures ``y (n, horizon[, n_outputs])``; returns self."""
        self._check_params()
        if self.start not in ("auto", "last", "zeros"):
            raise ValueError(f"start must be 'auto', 'last' or 'zeros'; got {self.start!r}")
        if self.decoder_input not in DECODER_INPUTS:
            raise ValueError(f"decoder_input must be one of {list(DECODER_INPUTS)}; got {self.decoder_input!r}")
        if self.scaling not in ("auto", "window", "global"):
            raise ValueError(f"scaling must be 'auto', 'window' or 'global'; got {self.scaling!r}")
        dtype = np.dtype(self.dtype)
        X, lengths = check_sequences(X, dtype=dtype)
        if y is None:
            raise ValueError("Seq2SeqForecaster requires y: the future values (n_samples, horizon[, n_outputs])")
        y = self._check_y(y, X.shape[0])
        self._y_ndim = y.ndim if y.ndim == 3 else 2
        Y = (y if y.ndim == 3 else y[:, :, None]).astype(dtype)
        self.n_features_in_, self.horizon_, self.n_outputs_ = X.shape[2], Y.shape[1], Y.shape[2]
        same = self.n_features_in_ == self.n_outputs_
        for option, value in (("start", self.start == "last"), ("scaling", self.scaling == "window")):
            if value and not same:
                raise ValueError(f"{option}={getattr(self, option)!r} treats the inputs as the series' own past, so X "
                                 f"needs as many features as y has outputs; got {self.n_features_in_} and "
                                 f"{self.n_outputs_}")
        self._start_from_inputs = self.start != "zeros" and same
        self._window_scaling = self.scaling != "global" and same
        valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
        if self._window_scaling:
            self.window_floor_ = 0.1 * _mean_scale(X[valid])[1]
            loc, scale = self._window_stats(X, lengths)
            X, Y = (X - loc) / scale, (Y - loc) / scale
        self.x_mean_, self.x_scale_ = _mean_scale(X[valid])
        self.y_mean_, self.y_scale_ = _mean_scale(Y.reshape(-1, self.n_outputs_))
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2 ** 31))
        self._new_model(self.n_features_in_, self.n_outputs_, rng, decoder_input=self.decoder_input)
        starts = self._start_values(X, lengths)
        Xs, Ys = self._scale_X(X, lengths), (Y - self.y_mean_) / self.y_scale_

        def train_step(batch):
            steps = int(lengths[batch].max())
            z = self.model_.forward(Xs[batch, :steps], Ys[batch], lengths[batch], starts[batch],
                                    self.teacher_forcing_ratio, rng=self._tf_rng)
            diff = z - Ys[batch]
            count = diff.shape[0] * diff.shape[1]
            loss = 0.5 * float(np.sum(diff.astype(np.float64) ** 2)) / count
            if np.isfinite(loss):
                self._update(diff / count)
            return loss

        def validation_score(idx):
            pred = self.model_.generate(Xs[idx], self.horizon_, lengths[idx], starts[idx])
            return r2_score(Ys[idx].reshape(len(idx), -1), pred.reshape(len(idx), -1))

        with thread_limit(self.n_threads):
            self._train(X.shape[0], train_step, validation_score, rng)
        return self

    def _scale_X(self, X, lengths):
        scaled = (X - self.x_mean_) / self.x_scale_
        scaled[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = 0.0
        return scaled

    def predict(self, X):
        """Forecasts ``(n, horizon)`` (or ``(n, horizon, n_outputs)`` if ``y`` was 3-D), in ``y``'s units."""
        check_is_fitted(self, "model_")
        X, lengths = check_sequences(X, dtype=np.dtype(self.dtype), n_features=self.n_features_in_)
        chunks = []
        with thread_limit(self.n_threads):
            for first in range(0, X.shape[0], PREDICT_BATCH_SIZE):
                part = slice(first, first + PREDICT_BATCH_SIZE)
                steps = int(lengths[part].max())
                Xp = X[part, :steps]
                if self._window_scaling:
                    loc, scale = self._window_stats(Xp, lengths[part])
                    Xp = (Xp - loc) / scale
                z = self.model_.generate(self._scale_X(Xp, lengths[part]), self.horizon_, lengths[part],
                                         self._start_values(Xp, lengths[part]))
                z = z * self.y_scale_ + self.y_mean_
                chunks.append(z * scale + loc if self._window_scaling else z)
        y = np.concatenate(chunks, axis=0)
        if not np.all(np.isfinite(y)):
            raise ValueError("the model produced non-finite forecasts for this X: the inputs are far outside what "
                             "it was trained on, or training diverged (see the warnings from fit)")
        return y if self._y_ndim == 3 else y[:, :, 0]

    def score(self, X, y, sample_weight=None):
        """R² of :meth:`predict`, averaged uniformly over every step (and output)."""
        pred = self.predict(X)
        y = self._check_y(y, pred.shape[0]).reshape(pred.shape[0], -1)
        return float(r2_score(y, pred.reshape(pred.shape[0], -1), sample_weight=sample_weight))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.target_tags.multi_output = True
        return tags


def _mean_scale(rows):
    """Per-column mean and standard deviation of ``rows (m, k)``; constant columns get scale 1."""
    mean = rows.mean(axis=0)
    scale = rows.std(axis=0)
    scale[~(scale > 1e-12 * np.maximum(np.abs(mean), 1.0))] = 1.0
    return mean.astype(rows.dtype), scale.astype(rows.dtype)


PAD, START, END = "<pad>", "<s>", "</s>"


def _check_strings(values, name):
    if isinstance(values, str) or not hasattr(values, "__len__"):
        raise TypeError(f"{name} must be a list of strings; got {type(values).__name__}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} is empty; at least one string is needed")
    for i, value in enumerate(values):
        if not isinstance(value, str):
            raise TypeError(f"{name}[{i}] is a {type(value).__name__}; {name} must hold strings only")
    return values


class Seq2SeqTranslator(_Seq2SeqEstimator):
    """Character-level string-to-string translator (encoder-decoder with greedy decoding).

    ``fit(sources, targets)`` takes two equal-length lists of strings and builds the vocabularies:
    ``source_vocabulary_`` (the source characters plus an end-of-source marker) and
    ``target_vocabulary_`` (``"<pad>"`` = 0, ``"<s>"`` = 1, ``"</s>"`` = 2, then the target characters).
    Sources are one-hot encoded (``reverse_source=True`` reads them back to front, which shortens the
    path from a target's first characters to the source characters that decide them); the decoder
    reads an ``embedding_dim`` embedding of the previous character. ``predict(sources)`` returns a list
    of strings, decoded greedily until ``"</s>"`` or ``max_length`` characters (default: the longest
    training target plus 10). A character not seen in the training sources raises a ValueError naming it.
    ``score`` is the exact-match accuracy. Other parameters as :class:`Seq2SeqForecaster`.
    """

    def __init__(self, cell="lstm", hidden_size=128, num_layers=1, bidirectional=False, embedding_dim=32,
                 teacher_forcing_ratio=1.0, reverse_source=True, max_length=None, learning_rate=0.005,
                 batch_size=64, max_epochs=50, alpha=0.0, clip_grad_norm=5.0, early_stopping=False,
                 validation_fraction=0.1, n_iter_no_change=5, tol=1e-4, random_state=None, verbose=False,
                 dtype="float32", backend="auto", n_threads=None):
        self.cell = cell
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.embedding_dim = embedding_dim
        self.teacher_forcing_ratio = teacher_forcing_ratio
        self.reverse_source = reverse_source
        self.max_length = max_length
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.alpha = alpha
        self.clip_grad_norm = clip_grad_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.backend = backend
        self.n_threads = n_threads

    def _check_params(self):
        super()._check_params()
        if isinstance(self.embedding_dim, bool) or not isinstance(self.embedding_dim, (int, np.integer)) \
                or self.embedding_dim < 1:
            raise ValueError(f"embedding_dim must be a positive integer; got {self.embedding_dim!r}")
        if self.max_length is not None and (isinstance(self.max_length, bool) or not isinstance(
                self.max_length, (int, np.integer)) or self.max_length < 1):
            raise ValueError(f"max_length must be a positive integer or None; got {self.max_length!r}")

    def _encode_sources(self, sources):
        """One-hot sources ``(n, S, V_src)`` (each ends with the end-of-source marker) and lengths."""
        index = self._source_index
        unknown = sorted({ch for s in sources for ch in s} - set(index))
        if unknown:
            raise ValueError(f"sources contain characters not seen in fit: {unknown}; refit with training sources "
                             f"that contain them, or remove them")
        lengths = np.array([len(s) + 1 for s in sources], dtype=np.int64)
        ids = np.zeros((len(sources), lengths.max()), dtype=np.int64)
        end = index[END]
        for i, s in enumerate(sources):
            chars = [index[ch] for ch in (s[::-1] if self.reverse_source else s)]
            ids[i, :len(chars) + 1] = chars + [end]
        X = np.zeros(ids.shape + (len(index),), dtype=np.dtype(self.dtype))
        np.put_along_axis(X, ids[..., None], 1.0, axis=2)
        X[np.arange(ids.shape[1])[None, :] >= lengths[:, None]] = 0.0
        return X, lengths

    def _encode_targets(self, targets):
        """Target ids ``(n, T_max + 1)`` ending in ``</s>``, padded with ``<pad>``."""
        index = self._target_index
        ids = np.zeros((len(targets), max(len(t) for t in targets) + 1), dtype=np.int64)
        for i, t in enumerate(targets):
            ids[i, :len(t) + 1] = [index[ch] for ch in t] + [index[END]]
        return ids

    def fit(self, sources, targets):
        """Learn to map each string of ``sources`` to the string of ``targets`` at the same position."""
        self._check_params()
        sources, targets = _check_strings(sources, "sources"), _check_strings(targets, "targets")
        if len(sources) != len(targets):
            raise ValueError(f"sources and targets must be equally long; got {len(sources)} and {len(targets)}")
        self.source_vocabulary_ = [END] + sorted({ch for s in sources for ch in s})
        self.target_vocabulary_ = [PAD, START, END] + sorted({ch for t in targets for ch in t})
        self._source_index = {tok: i for i, tok in enumerate(self.source_vocabulary_)}
        self._target_index = {tok: i for i, tok in enumerate(self.target_vocabulary_)}
        self.max_length_ = self.max_length or max(len(t) for t in targets) + 10
        X, lengths = self._encode_sources(sources)
        Y = self._encode_targets(targets)
        rng = np.random.default_rng(check_random_state(self.random_state).randint(2 ** 31))
        self._new_model(X.shape[2], len(self.target_vocabulary_), rng, embedding_dim=self.embedding_dim)

        def train_step(batch):
            steps = int(lengths[batch].max())
            target_steps = int((Y[batch] != 0).sum(axis=1).max())
            yb = Y[batch, :target_steps]
            z = self.model_.forward(X[batch, :steps], yb, lengths[batch], 1, self.teacher_forcing_ratio,
                                    rng=self._tf_rng)
            mask = (yb != 0).reshape(-1).astype(z.dtype)
            loss, grad = softmax_cross_entropy(z.reshape(-1, z.shape[2]), yb.reshape(-1), mask)
            if np.isfinite(loss):
                self._update(grad.reshape(z.shape).astype(z.dtype, copy=False))
            return loss

        def validation_score(idx):
            return float(np.mean([p == targets[i] for p, i in zip(self._decode(X[idx], lengths[idx]), idx)]))

        with thread_limit(self.n_threads):
            self._train(len(sources), train_step, validation_score, rng)
        return self

    def _decode(self, X, lengths):
        steps = int(lengths.max())
        ids = self.model_.generate(X[:, :steps], self.max_length_ + 1, lengths, start=1,
                                   end_token=self._target_index[END])
        out = []
        for row in ids:
            chars = []
            for token in row:
                if token == 2:
                    break
                chars.append(self.target_vocabulary_[token] if token > 2 else "")
            out.append("".join(chars))
        return out

    def predict(self, sources):
        """Translations of ``sources`` (a list of strings) as a list of strings (greedy decoding)."""
        check_is_fitted(self, "model_")
        sources = _check_strings(sources, "sources")
        out = []
        with thread_limit(self.n_threads):
            for first in range(0, len(sources), PREDICT_BATCH_SIZE):
                X, lengths = self._encode_sources(sources[first:first + PREDICT_BATCH_SIZE])
                out.extend(self._decode(X, lengths))
        return out

    def score(self, sources, targets):
        """Exact-match accuracy: the fraction of ``sources`` translated to exactly their ``targets``."""
        targets = _check_strings(targets, "targets")
        predictions = self.predict(sources)
        if len(predictions) != len(targets):
            raise ValueError(f"sources and targets must be equally long; got {len(predictions)} and {len(targets)}")
        return float(np.mean([p == t for p, t in zip(predictions, targets)]))


def _rmse(y, pred):
    return float(np.sqrt(np.mean((np.asarray(y, dtype=np.float64) - pred) ** 2)))


def sunspot_horizon_table(random_state=0, n_seeds=3, horizon=12, window=12, test_fraction=0.2):
    """Test RMSE of three ``horizon``-step forecasts of the yearly sunspot series; returns ``{name: rmse}``.

    The series is split chronologically: the last ``test_fraction`` of the years are the test period.
    Training windows (``window`` years in, ``horizon`` out, :func:`fastrnn.make_windows`) lie wholly
    before it; test windows forecast every ``horizon``-year stretch inside it from the ``window`` years
    before. Forecasts: ``"naive"`` repeats the last observed value; ``"recursive_lstm"`` is an
    :class:`fastrnn.LSTMRegressor` fitted on one-step targets and fed its own forecast ``horizon``
    times; ``"seq2seq"`` is a :class:`Seq2SeqForecaster`. Both networks have 64 hidden units and the
    same training policy (Adam at 0.005, early stopping on a random 20% of the training windows, at
    most 200 epochs). With so few training windows (about 220) one fit depends visibly on its seed, so
    each network is fitted with the ``n_seeds`` seeds ``random_state, random_state + 1, ...`` and its
    entry is the mean test RMSE over them.

    Measured (``random_state=0, n_seeds=12``): naive 72.2, recursive_lstm 37.1, seq2seq 33.9 (its
    defaults: window scaling, context at every decoder step, trained free running). Per seed
    (recursive / seq2seq): 35.9/36.0, 44.1/34.6, 44.7/32.5, 35.7/33.0, 43.9/33.4, 35.2/34.1,
    33.7/33.6, 34.8/34.3, 37.9/33.9, 32.8/33.6, 33.8/33.3, 33.0/34.3: the seq2seq wins 9 of 12 and
    stays within 32.5-36.0, while some recursive fits drift far off; on seeds 6-11 alone they are
    close (34.3 / 33.8). Much of the gain is the window scaling, which the one-step LSTMRegressor
    does not have: the same scaling applied around it by hand (each fed-back window rescaled) gave a
    mean of 35.2, against which the seq2seq wins on 5 seeds, ties 1 and loses 6; its edge there is
    consistency (no fit far off), not a per-seed win.
    """
    from .datasets import load_sunspots
    from .estimators import LSTMRegressor
    from .preprocessing import make_windows

    series = load_sunspots().astype(np.float64)
    split = len(series) - int(round(test_fraction * len(series)))
    X_train, y_train = make_windows(series[:split], window, horizon)
    X_one, y_one = make_windows(series[:split], window, 1)
    X_test, y_test = make_windows(series[split - window:], window, horizon)
    policy = dict(hidden_size=64, learning_rate=0.005, max_epochs=200, early_stopping=True, validation_fraction=0.2)
    recursive, direct = [], []
    for seed in range(random_state, random_state + n_seeds):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            one_step = LSTMRegressor(random_state=seed, **policy).fit(X_one, y_one)
            seq2seq = Seq2SeqForecaster(random_state=seed, **policy).fit(X_train, y_train)
        window_now, steps = X_test[:, :, 0].copy(), []
        for _ in range(horizon):
            step = one_step.predict(window_now)
            steps.append(step)
            window_now = np.concatenate([window_now[:, 1:], step[:, None]], axis=1)
        recursive.append(_rmse(y_test, np.stack(steps, axis=1)))
        direct.append(_rmse(y_test, seq2seq.predict(X_test)))
    return {"naive": _rmse(y_test, np.repeat(X_test[:, -1, :], horizon, axis=1)),
            "recursive_lstm": float(np.mean(recursive)), "seq2seq": float(np.mean(direct))}


def date_translation_accuracy(n_train=10000, n_test=2000, max_epochs=10, random_state=0, **params):
    """Fit a :class:`Seq2SeqTranslator` on ``n_train`` :func:`~fastrnn.datasets.make_dates` pairs and
    return ``(exact-match accuracy on held-out pairs, training seconds)``.

    Held-out pairs come from another seed, minus any source string that also occurs in training.
    ``params`` go to the translator (default: its defaults with ``max_epochs``).
    """
    import time

    from .datasets import make_dates

    sources, targets = make_dates(n_train, random_state=random_state)
    seen = set(sources)
    held_out = [pair for pair in zip(*make_dates(n_test, random_state=random_state + 1)) if pair[0] not in seen]
    model = Seq2SeqTranslator(max_epochs=max_epochs, random_state=random_state, **params)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(sources, targets)
    seconds = time.perf_counter() - start
    return model.score([s for s, _ in held_out], [t for _, t in held_out]), seconds
