"""Recurrent regressors: LSTMRegressor, GRURegressor, RNNRegressor."""
import numpy as np
from sklearn.base import RegressorMixin
from sklearn.metrics import r2_score
from sklearn.utils.validation import check_array, check_is_fitted

from ._base import BaseRecurrentEstimator, thread_limit


class _RecurrentRegressor(RegressorMixin, BaseRecurrentEstimator):
    """Regression on sequences with a recurrent network and a linear head; squared-error loss.

    ``output="last"``: one prediction per sequence, ``y`` of shape (n_samples[, n_outputs]).
    ``output="sequence"``: one prediction per step, ``y`` of shape (n_samples, n_timesteps[, n_outputs])
    (or a list of per-sequence target arrays for ragged ``X``).
    """

    def _loss_name(self):
        return "squared_error"

    def _n_outputs(self):
        return self.n_outputs_

    def _encode_targets(self, y, lengths, first_fit, classes=None):
        if self.output == "sequence" and isinstance(y, (list, tuple)) and len({np.shape(t) for t in y}) > 1:
            y = _pad_targets(y, lengths)
        y = check_array(y, ensure_2d=False, allow_nd=True, dtype=[np.float64, np.float32], input_name="y")
        per_sample_dims = 1 if self.output == "last" else 2
        if y.ndim not in (per_sample_dims, per_sample_dims + 1):
            raise ValueError(f"y must have shape (n_samples{', n_timesteps' if per_sample_dims == 2 else ''}"
                             f"[, n_outputs]) for output={self.output!r}; got shape {y.shape}")
        if self.output == "sequence" and y.shape[1] != lengths.max():
            raise ValueError(f"y has {y.shape[1]} time steps but X has {lengths.max()}")
        single = y.ndim == per_sample_dims
        y = y[..., None] if single else y
        if first_fit:
            self.n_outputs_ = y.shape[-1]
            self._y_was_1d = single
        elif y.shape[-1] != self.n_outputs_:
            raise ValueError(f"y has {y.shape[-1]} outputs; this estimator was fitted with {self.n_outputs_}")
        return y.astype(np.dtype(self.dtype), copy=False)

    def _fit_target_scaling(self, targets, lengths, weights):
        if self.output == "last":
            w = weights[:, None]
            flat = targets
        else:
            valid = np.arange(targets.shape[1])[None, :] < lengths[:, None]
            flat = targets[valid]
            w = np.broadcast_to(weights[:, None], valid.shape)[valid][:, None]
        mean = (flat * w).sum(axis=0) / w.sum()
        scale = np.sqrt((((flat - mean) ** 2) * w).sum(axis=0) / w.sum())
        scale[~(scale > 1e-12 * np.maximum(np.abs(mean), 1.0))] = 1.0
        self.y_mean_, self.y_scale_ = mean.astype(targets.dtype), scale.astype(targets.dtype)

    def _scale_targets(self, targets):
        return (targets - self.y_mean_) / self.y_scale_

    def _validation_score(self, X, lengths, targets, weights):
        z = self._raw_outputs(X, lengths)
        if self.output == "sequence":
            valid = np.arange(z.shape[1])[None, :] < lengths[:, None]
            return r2_score(targets[:, :z.shape[1]][valid], z[valid],
                            sample_weight=np.broadcast_to(weights[:, None], valid.shape)[valid])
        return r2_score(targets, z, sample_weight=weights)

    def predict(self, X, state=None, return_state=False):
        """Predicted targets, in ``y``'s units and shape: (n_samples[, n_outputs]) for output="last";
        (n_samples, n_timesteps[, n_outputs]) for "sequence" (a list of arrays for ragged ``X``).

        Streaming: ``return_state=True`` returns ``(y, state)``, and passing that ``state`` with the next
        chunk of the same sequences continues them, so a long series predicted chunk by chunk gives the
        answers of predicting it whole (unidirectional models; ``state`` is ``h`` ``(num_layers,
        n_samples, hidden_size)``, or ``(h, c)`` for an LSTM).
        """
        check_is_fitted(self, "model_")
        X_checked, lengths = self._validate_X(X, reset=False)
        initial = self._check_carried_state(state, X_checked.shape[0], return_state)
        with thread_limit(self.n_threads):
            z = self._raw_outputs(X_checked, lengths, scaled=False, state=initial, return_state=return_state)
        z, final = z if return_state else (z, None)
        y = z * self.y_scale_ + self.y_mean_
        if self._y_was_1d:
            y = y[..., 0]
        if self.output == "sequence":
            y = self._per_sample_outputs(y, lengths, ragged=bool(np.any(lengths != X_checked.shape[1])))
        return (y, final) if return_state else y

    def score(self, X, y, sample_weight=None):
        """R² of the predictions (over every valid step for output="sequence")."""
        if self.output == "last":
            return super().score(X, y, sample_weight)
        _, lengths = self._validate_X(X, reset=False)
        pred = self.predict(X)
        truth = y if isinstance(pred, list) else np.asarray(y)
        flat = lambda seqs: np.concatenate([np.asarray(s)[:n] for s, n in zip(seqs, lengths)])
        weights = None if sample_weight is None else np.repeat(np.asarray(sample_weight), lengths)
        return r2_score(flat(truth), flat(pred), sample_weight=weights)

    def partial_fit(self, X, y, sample_weight=None):
        """One pass over ``(X, y)``, continuing from the current model (building it on the first call)."""
        return self._fit(X, y, sample_weight, incremental=True)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags


def _pad_targets(y, lengths):
    first = np.asarray(y[0])
    out = np.zeros((len(y), int(lengths.max())) + first.shape[1:], dtype=np.float64)
    for i, target in enumerate(y):
        target = np.asarray(target, dtype=np.float64)
        if len(target) != lengths[i]:
            raise ValueError(f"y[{i}] has {len(target)} steps but X[{i}] has {lengths[i]}")
        out[i, :len(target)] = target
    return out


class LSTMRegressor(_RecurrentRegressor):
    """Regressor on sequences with a long short-term memory network (see the parameters of
    :class:`~fastrnn.estimators._base.BaseRecurrentEstimator`)."""

    _cell = "lstm"


class GRURegressor(_RecurrentRegressor):
    """Regressor on sequences with a gated recurrent unit network."""

    _cell = "gru"


class RNNRegressor(_RecurrentRegressor):
    """Regressor on sequences with a vanilla (Elman) recurrent network, ``nonlinearity`` tanh or relu."""

    _cell = "rnn"

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0, optimizer="adam",
                 learning_rate=0.005, momentum=0.9, batch_size=32, max_epochs=200, alpha=1e-5,
                 clip_grad_norm=5.0, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, shuffle=True, random_state=None, warm_start=False, verbose=False,
                 dtype="float32", backend="auto", n_threads=None, output="last", nonlinearity="tanh"):
        super().__init__(hidden_size, num_layers, bidirectional, dropout, optimizer, learning_rate, momentum,
                         batch_size, max_epochs, alpha, clip_grad_norm, early_stopping, validation_fraction,
                         n_iter_no_change, tol, shuffle, random_state, warm_start, verbose, dtype, backend,
                         n_threads, output)
        self.nonlinearity = nonlinearity
