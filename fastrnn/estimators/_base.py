"""Training policy shared by every estimator: batches, optimiser, early stopping, warm start,
partial_fit, divergence and interrupt handling. The model itself lives in :mod:`fastrnn.nn`."""
import contextlib
import sys
import time
import warnings

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from .. import nn
from .._validation import check_sample_weight, check_sequences
from ..kernels import num_threads
from ..kernels._split_gemm import blas_limited
from ..nn.linear import Linear
from ..nn.optim import OPTIMIZERS, clip_grad_norm

PREDICT_BATCH_SIZE = 4096  # sequences per forward pass at prediction time: bounds memory


@contextlib.contextmanager
def thread_limit(n_threads):
    """Run the block with ``n_threads`` threads for the compiled kernels and BLAS (None: unchanged)."""
    if n_threads is None:
        yield
        return
    with num_threads(n_threads), blas_limited(int(n_threads)):
        yield


class _ProgressBar:
    """One line per epoch on stderr: epoch counter, a bar, the loss and the validation score."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.start = total, enabled, time.perf_counter()

    def update(self, epoch, loss, score=None):
        if not self.enabled:
            return
        filled = int(20 * epoch / max(self.total, 1))
        extra = "" if score is None else f", validation score {score:.4f}"
        sys.stderr.write(f"epoch {epoch:>4}/{self.total} [{'=' * filled}{' ' * (20 - filled)}] "
                         f"loss {loss:.6f}{extra} ({time.perf_counter() - self.start:.1f}s)\n")
        sys.stderr.flush()


class BaseRecurrentEstimator(BaseEstimator):
    """Shared machinery of the six estimators; subclasses set the cell and the task.

    Input sequences are standardised per feature (mean and scale learned in ``fit``, stored as
    ``x_mean_`` / ``x_scale_``); regressors standardise their targets the same way. Both are
    undone where needed, so users pass and receive data in their own units.
    """

    _cell = None  # "lstm", "gru" or "rnn"

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0, optimizer="adam",
                 learning_rate=0.005, momentum=0.9, batch_size=32, max_epochs=200, alpha=1e-5,
                 clip_grad_norm=5.0, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, shuffle=True, random_state=None, warm_start=False, verbose=False,
                 dtype="float32", backend="auto", n_threads=None, output="last"):
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.momentum = momentum
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.alpha = alpha
        self.clip_grad_norm = clip_grad_norm
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.shuffle = shuffle
        self.random_state = random_state
        self.warm_start = warm_start
        self.verbose = verbose
        self.dtype = dtype
        self.backend = backend
        self.n_threads = n_threads
        self.output = output

    # ------------------------------------------------------------------ hooks for subclasses
    def _encode_targets(self, y, lengths, first_fit, classes=None):
        """Return targets as an array of per-sample (or per-step) training targets."""
        raise NotImplementedError

    def _loss_name(self):
        raise NotImplementedError

    def _n_outputs(self):
        raise NotImplementedError

    def save(self, path):
        """Write this fitted estimator to ``path`` in fastrnn's model format: arrays and JSON, nothing
        executable; read it back with :func:`fastrnn.load` (see :mod:`fastrnn.persistence`)."""
        from ..persistence import save
        save(self, path)

    # ------------------------------------------------------------------ parameter checks
    def _check_params(self):
        positive_ints = ("hidden_size", "num_layers", "batch_size", "max_epochs", "n_iter_no_change")
        for name in positive_ints:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive integer; got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}; got {self.optimizer!r}")
        if self.output not in ("last", "sequence"):
            raise ValueError(f"output must be 'last' or 'sequence'; got {self.output!r}")
        if not (np.isfinite(self.learning_rate) and self.learning_rate > 0):
            raise ValueError(f"learning_rate must be positive; got {self.learning_rate!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1); got {self.dropout!r}")
        if self.alpha < 0:
            raise ValueError(f"alpha must be >= 0; got {self.alpha!r}")
        if self.early_stopping and not 0.0 < self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in (0, 1); got {self.validation_fraction!r}")
        if np.dtype(self.dtype) not in (np.dtype(np.float32), np.dtype(np.float64)):
            raise ValueError(f"dtype must be 'float32' or 'float64'; got {self.dtype!r}")
        if self.clip_grad_norm is not None and not self.clip_grad_norm > 0:
            raise ValueError(f"clip_grad_norm must be positive or None; got {self.clip_grad_norm!r}")

    # ------------------------------------------------------------------ the model
    def _build_model(self, n_features, rng):
        dtype = np.dtype(self.dtype)
        kwargs = dict(num_layers=self.num_layers, bidirectional=self.bidirectional, dropout=self.dropout,
                      dtype=dtype, backend=self.backend, random_state=int(rng.integers(2 ** 31)))
        if self._cell == "rnn":
            kwargs["nonlinearity"] = getattr(self, "nonlinearity", "tanh")
        layer_class = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[self._cell]
        self.model_ = layer_class(n_features, self.hidden_size, **kwargs)
        width = self.hidden_size * (2 if self.bidirectional else 1)
        self.head_ = Linear(width, self._n_outputs(), dtype=dtype, random_state=int(rng.integers(2 ** 31)))

    def _parameters(self):
        params = {f"rnn.{k}": v for k, v in self.model_.params.items()}
        params.update({f"head.{k}": v for k, v in self.head_.params.items()})
        return params

    def _snapshot(self):
        return {name: value.copy() for name, value in self._parameters().items()}

    def _restore(self, snapshot):
        for name, value in self._parameters().items():
            value[...] = snapshot[name]

    def _features(self, X, lengths, need_grad, state=None):
        """Recurrent features fed to the head, and the final states ``(h_n, c_n or None)``.

        Features: (N, D*H) for output="last", (N, T, D*H) for "sequence". ``state``: initial states as
        :meth:`_check_carried_state` returns them (None: zeros).
        """
        h0, c0 = state if state is not None else (None, None)
        if self._cell == "lstm":
            output, h_n, c_n = self.model_.forward(X, lengths, h0, c0, need_grad=need_grad)
        else:
            (output, h_n), c_n = self.model_.forward(X, lengths, h0, need_grad=need_grad), None
        if self.output == "sequence":
            return output, (h_n, c_n)
        D = 2 if self.bidirectional else 1
        # the top layer's final states: forward direction at each sequence's own end, reverse at t=0
        return np.concatenate([h_n[-D + d] for d in range(D)], axis=1), (h_n, c_n)

    def _backward_features(self, grad_features, X_shape):
        N, T = X_shape[:2]
        if self.output == "sequence":
            self.model_.backward(grad_features, need_input_grad=False)  # X is data
            return
        D, L, H = (2 if self.bidirectional else 1), self.num_layers, self.hidden_size
        grad_h_n = np.zeros((L * D, N, H), dtype=grad_features.dtype)
        for d in range(D):
            grad_h_n[(L - 1) * D + d] = grad_features[:, d * H:(d + 1) * H]
        zeros = np.zeros((N, T, D * H), dtype=grad_features.dtype)
        self.model_.backward(zeros, grad_h_n, need_input_grad=False)

    def _raw_outputs(self, X, lengths, scaled=True, state=None, return_state=False):
        """Head outputs in batches of PREDICT_BATCH_SIZE: (N, k) or (N, T, k).

        With ``scaled=False`` each batch is standardised on its own, so memory beyond ``X`` and the
        outputs stays bounded by the batch size however many sequences ``X`` holds. ``state`` (checked
        by :meth:`_check_carried_state`) starts the recurrence; ``return_state=True`` also returns the
        final states, each sequence's taken at its own last step.
        """
        self.model_.eval()
        chunks, finals = [], []
        for start in range(0, X.shape[0], PREDICT_BATCH_SIZE):
            part = slice(start, start + PREDICT_BATCH_SIZE)
            steps = int(lengths[part].max())
            inputs = X[part, :steps] if scaled else self._scale_inputs(X[part, :steps], lengths[part])
            initial = None if state is None else tuple(None if s is None else s[:, part] for s in state)
            features, final = self._features(inputs, lengths[part], need_grad=False, state=initial)
            finals.append(final)
            z = self.head_.forward(features)
            if self.output == "sequence" and steps < X.shape[1]:
                z = np.concatenate([z, np.zeros((z.shape[0], X.shape[1] - steps, z.shape[2]), z.dtype)], axis=1)
            chunks.append(z)
        self.head_._input = None
        z = np.concatenate(chunks, axis=0)
        if not np.all(np.isfinite(z)):
            raise ValueError("the model produced non-finite outputs for this X: the inputs are far outside what "
                             "it was trained on, or training diverged (see the warnings from fit)")
        if not return_state:
            return z
        h_n = np.concatenate([h for h, _ in finals], axis=1)
        if self._cell == "lstm":
            return z, (h_n, np.concatenate([c for _, c in finals], axis=1))
        return z, h_n

    def _check_carried_state(self, state, n_samples, return_state):
        """Validate a ``state`` passed to predict: ``h`` ``(L, N, H)``, or ``(h, c)`` for an LSTM.

        Returns ``(h, c_or_None)`` in the model's dtype, or None for no state.
        """
        if (state is not None or return_state) and self.bidirectional:
            raise ValueError("state and return_state need a unidirectional model: a reverse direction reads "
                             "the whole sequence, so it cannot be continued chunk by chunk")
        if state is None:
            return None
        if self._cell != "lstm":
            return self.model_._check_state(state, "state", n_samples), None
        if not (isinstance(state, (tuple, list)) and len(state) == 2):
            raise ValueError("an LSTM's state is the pair (h, c) that predict(..., return_state=True) returned")
        return tuple(self.model_._check_state(part, f"state {name}", n_samples) for name, part in zip("hc", state))

    # ------------------------------------------------------------------ scaling
    def _fit_input_scaling(self, X, lengths, weights):
        valid = np.arange(X.shape[1])[None, :] < lengths[:, None]
        step_weights = (valid * weights[:, None])[..., None]
        total = step_weights.sum()
        mean = (X * step_weights).sum(axis=(0, 1)) / total
        var = (((X - mean) ** 2) * step_weights).sum(axis=(0, 1)) / total
        scale = np.sqrt(var)
        scale[~(scale > 1e-12 * np.maximum(np.abs(mean), 1.0))] = 1.0  # constant features stay unscaled
        self.x_mean_, self.x_scale_ = mean.astype(X.dtype), scale.astype(X.dtype)

    def _scale_inputs(self, X, lengths):
        scaled = (X - self.x_mean_) / self.x_scale_
        if lengths.min() < X.shape[1]:  # padding of shorter sequences stays zero
            scaled[np.arange(X.shape[1])[None, :] >= lengths[:, None]] = 0.0
        if not np.all(np.isfinite(scaled)):
            raise ValueError("X holds values too large to standardise in this dtype; rescale X or use "
                             "dtype='float64'")
        return scaled

    def _validate_X(self, X, reset):
        dtype = np.dtype(self.dtype)
        if reset:
            X, lengths = check_sequences(X, dtype=dtype)
        else:
            check_is_fitted(self, "model_")
            X, lengths = check_sequences(X, dtype=dtype, n_features=self.n_features_in_)
        return X, lengths

    # ------------------------------------------------------------------ training
    def fit(self, X, y, sample_weight=None):
        """Fit the model to sequences ``X`` and targets ``y``; returns self.

        ``X``: (n_samples, n_timesteps, n_features), (n_samples, n_timesteps) or a list of
        (T_i, n_features) arrays. ``y``: (n_samples[, n_outputs]) for ``output="last"``,
        (n_samples, n_timesteps[, n_outputs]) for ``output="sequence"``.
        """
        return self._fit(X, y, sample_weight, incremental=False)

    def _fit(self, X, y, sample_weight, incremental, classes=None):
        self._check_params()
        if y is None:
            raise ValueError(f"{type(self).__name__} requires y to be passed, but the target y is None.")
        first_fit = not (hasattr(self, "model_") and (incremental or self.warm_start))
        X, lengths = self._validate_X(X, reset=first_fit)
        if not isinstance(y, (list, tuple)):
            y = np.asarray(y)
        if len(y) != X.shape[0]:
            raise ValueError(f"Found input variables with inconsistent numbers of samples: "
                             f"X has {X.shape[0]}, y has {len(y)}")
        targets = self._encode_targets(y, lengths, first_fit, classes)
        weights = check_sample_weight(sample_weight, X.shape[0], X.dtype) * self._class_weights(targets)
        rng = check_random_state(self.random_state)
        np_rng = np.random.default_rng(rng.randint(2 ** 31))
        if first_fit:
            self.n_features_in_ = X.shape[2]
            self._fit_input_scaling(X, lengths, weights)
            self._fit_target_scaling(targets, lengths, weights)
            self._build_model(X.shape[2], np_rng)
            self._optimizer = self._make_optimizer()
            self.loss_curve_, self.validation_scores_ = [], ([] if self.early_stopping else None)
            self.best_loss_, self.best_validation_score_ = np.inf, (-np.inf if self.early_stopping else None)
            self.n_iter_, self.t_ = 0, 0
        if not hasattr(self, "_optimizer"):
            self._optimizer = self._make_optimizer()
        X = self._scale_inputs(X, lengths)
        targets = self._scale_targets(targets)
        with thread_limit(self.n_threads):
            self._train(X, lengths, targets, weights, np_rng, epochs=1 if incremental else self.max_epochs,
                        incremental=incremental)
        self.model_.eval()  # fitted = inference mode: pickles the same before and after a predict
        return self

    def _make_optimizer(self):
        if self.optimizer == "sgd":
            return OPTIMIZERS["sgd"](learning_rate=self.learning_rate, momentum=self.momentum)
        return OPTIMIZERS["adam"](learning_rate=self.learning_rate)

    def _split_validation(self, n_samples, rng, targets):
        order = rng.permutation(n_samples)
        n_val = max(1, int(round(self.validation_fraction * n_samples)))
        if n_samples - n_val < 1:
            raise ValueError(f"early_stopping needs more samples: {n_samples} leaves none for training "
                             f"after a validation_fraction of {self.validation_fraction}")
        return order[n_val:], order[:n_val]

    def _train(self, X, lengths, targets, weights, rng, epochs, incremental):
        n_samples = X.shape[0]
        use_validation = self.early_stopping and not incremental
        if use_validation:
            train_idx, val_idx = self._split_validation(n_samples, rng, targets)
        else:
            train_idx, val_idx = np.arange(n_samples), None
        batch_size = min(self.batch_size, len(train_idx))
        progress = _ProgressBar(self.n_iter_ + epochs, bool(self.verbose))
        best = self._snapshot() if use_validation else None
        last_good = self._snapshot()
        no_improvement = 0
        converged = incremental
        try:
            for _ in range(epochs):
                order = rng.permutation(train_idx) if self.shuffle else train_idx
                epoch_loss, epoch_weight = 0.0, 0.0
                self.model_.train()
                for start in range(0, len(order), batch_size):
                    batch = np.sort(order[start:start + batch_size]) if not self.shuffle else order[start:start + batch_size]
                    before_step = self._snapshot()
                    loss = self._train_step(X, lengths, targets, weights, batch)
                    if not np.isfinite(loss) or not self._parameters_finite():
                        self._restore(last_good)
                        warnings.warn(
                            f"training diverged (non-finite loss) in epoch {self.n_iter_ + 1}; the last weights "
                            f"that gave a finite loss were kept. Lower learning_rate or set clip_grad_norm.",
                            ConvergenceWarning, stacklevel=3)
                        return
                    last_good = before_step  # these weights gave a finite loss on this batch
                    batch_weight = float(weights[batch].sum())
                    epoch_loss += loss * batch_weight
                    epoch_weight += batch_weight
                    self.t_ += len(batch)
                self.n_iter_ += 1
                epoch_loss /= max(epoch_weight, 1e-300)
                self.loss_curve_.append(epoch_loss)
                score = None
                if use_validation:
                    score = self._validation_score(X[val_idx], lengths[val_idx], targets[val_idx], weights[val_idx])
                    self.validation_scores_.append(score)
                    if score > self.best_validation_score_ + self.tol:
                        no_improvement = 0
                    else:
                        no_improvement += 1
                    if score > self.best_validation_score_:
                        self.best_validation_score_ = score
                        best = self._snapshot()
                else:
                    no_improvement = no_improvement + 1 if epoch_loss > self.best_loss_ - self.tol else 0
                self.best_loss_ = min(self.best_loss_, epoch_loss)
                progress.update(self.n_iter_, epoch_loss, score)
                if not incremental and no_improvement >= self.n_iter_no_change:
                    converged = True
                    break
        except KeyboardInterrupt:
            self._restore(last_good)
            warnings.warn(f"training interrupted in epoch {self.n_iter_ + 1}; the model keeps the weights of "
                          f"the last complete training step", UserWarning, stacklevel=3)
            converged = True
        if use_validation and best is not None:
            self._restore(best)
        if not converged:
            warnings.warn(f"{type(self).__name__} reached max_epochs={self.max_epochs} without converging "
                          f"(tol={self.tol}, n_iter_no_change={self.n_iter_no_change}); consider more epochs",
                          ConvergenceWarning, stacklevel=3)

    def _parameters_finite(self):
        return all(np.all(np.isfinite(v)) for v in self._parameters().values())

    def _train_step(self, X, lengths, targets, weights, batch):
        steps = int(lengths[batch].max())
        xb, lb = X[batch, :steps], lengths[batch]
        features, _ = self._features(xb, lb, need_grad=True)
        z = self.head_.forward(features)
        loss, grad_z = self._loss_and_grad(z, targets[batch][:, :steps] if self.output == "sequence"
                                           else targets[batch], weights[batch], lb)
        if not np.isfinite(loss):
            return loss
        grad_features = self.head_.backward(grad_z.astype(z.dtype, copy=False))
        self._backward_features(grad_features, xb.shape)
        grads = {f"rnn.{k}": v for k, v in self.model_.grads.items()}
        grads.update({f"head.{k}": v for k, v in self.head_.grads.items()})
        params = self._parameters()
        if self.alpha:
            for name, value in params.items():
                if ".weight" in name:
                    grads[name] = grads[name] + self.alpha * value
        if self.clip_grad_norm is not None:
            clip_grad_norm(grads, self.clip_grad_norm)
        self._optimizer.update_params(params, grads)
        return loss

    def _loss_and_grad(self, z, targets, weights, lengths):
        from ..nn.losses import LOSSES
        loss_fn = LOSSES[self._loss_name()]
        if self.output == "last":
            return loss_fn(z, targets, weights)
        N, T, k = z.shape
        valid = (np.arange(T)[None, :] < lengths[:, None])
        row_weights = (valid * weights[:, None]).reshape(-1)
        flat_targets = targets.reshape((N * T,) + targets.shape[2:])
        loss, grad = loss_fn(z.reshape(N * T, k), flat_targets, row_weights)
        return loss, grad.reshape(N, T, k)

    def _validation_score(self, X, lengths, targets, weights):
        raise NotImplementedError

    def _class_weights(self, targets):
        return 1.0

    def _fit_target_scaling(self, targets, lengths, weights):
        pass

    def _scale_targets(self, targets):
        return targets

    def _per_sample_outputs(self, z, lengths, ragged):
        """Turn (N, T, k) per-step outputs into what predict returns for output="sequence"."""
        if ragged:
            return [z[i, :n] for i, n in enumerate(lengths)]
        return z

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.three_d_array = True
        tags.input_tags.two_d_array = True
        tags.non_deterministic = False
        return tags
