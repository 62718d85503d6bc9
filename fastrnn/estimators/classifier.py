"""Recurrent classifiers: LSTMClassifier, GRUClassifier, RNNClassifier."""
import numpy as np
from sklearn.base import ClassifierMixin
from sklearn.utils.class_weight import compute_class_weight
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, column_or_1d

from ..nn.losses import sigmoid, softmax
from ._base import BaseRecurrentEstimator, thread_limit


class _RecurrentClassifier(ClassifierMixin, BaseRecurrentEstimator):
    """Classification of sequences (``output="last"``) or of every step (``output="sequence"``).

    Two classes use one logit and the logistic loss; more use a softmax. Labels may be strings or
    integers; ``class_weight`` is None, "balanced" or a dict label -> weight.
    """

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0, optimizer="adam",
                 learning_rate=0.005, momentum=0.9, batch_size=32, max_epochs=200, alpha=1e-5,
                 clip_grad_norm=5.0, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, shuffle=True, random_state=None, warm_start=False, verbose=False,
                 dtype="float32", backend="auto", n_threads=None, output="last", class_weight=None):
        super().__init__(hidden_size, num_layers, bidirectional, dropout, optimizer, learning_rate, momentum,
                         batch_size, max_epochs, alpha, clip_grad_norm, early_stopping, validation_fraction,
                         n_iter_no_change, tol, shuffle, random_state, warm_start, verbose, dtype, backend,
                         n_threads, output)
        self.class_weight = class_weight

    def _loss_name(self):
        return "logistic" if len(self.classes_) == 2 else "softmax"

    def _n_outputs(self):
        return 1 if len(self.classes_) == 2 else len(self.classes_)

    def _encode_targets(self, y, lengths, first_fit, classes=None):
        if self.output == "sequence":
            labels, valid = _sequence_labels(y, lengths)
        else:
            labels = column_or_1d(np.asarray(y, dtype=None if np.asarray(y).dtype != object else object),
                                  warn=True)
            valid = None
        check_classification_targets(labels if valid is None else labels[valid])
        if first_fit:
            seen = np.unique(labels if valid is None else labels[valid])
            self.classes_ = np.unique(classes) if classes is not None else seen
            if classes is not None and not np.isin(seen, self.classes_).all():
                raise ValueError(f"y holds labels {sorted(set(seen) - set(self.classes_))!r} not in classes")
            if len(self.classes_) < 2:
                raise ValueError(f"{type(self).__name__} needs samples of at least 2 classes in the data, but "
                                 f"the data contains only one class: {self.classes_[0]!r}")
        present = labels if valid is None else labels[valid]
        unseen = ~np.isin(present, self.classes_)
        if unseen.any():
            raise ValueError(f"y contains labels not seen in the first fit: {sorted(set(present[unseen]))!r}; "
                             f"known classes are {list(self.classes_)!r}")
        if valid is None:
            return np.searchsorted(self.classes_, labels)
        index = np.zeros(labels.shape, dtype=np.int64)
        index[valid] = np.searchsorted(self.classes_, labels[valid])
        return index

    def _class_weights(self, targets):
        if self.class_weight is None:
            return 1.0
        present = np.arange(len(self.classes_))
        flat = targets if self.output == "last" else targets.reshape(-1)
        if isinstance(self.class_weight, dict):
            table = np.array([self.class_weight.get(c, 1.0) for c in self.classes_], dtype=np.float64)
        elif self.class_weight == "balanced":
            table = np.ones(len(self.classes_))
            seen = np.unique(flat)
            table[seen] = compute_class_weight("balanced", classes=seen, y=flat)
        else:
            raise ValueError(f"class_weight must be None, 'balanced' or a dict; got {self.class_weight!r}")
        del present
        if self.output == "sequence":
            return 1.0  # per-step weights are applied in the loss; keep per-sample weights untouched
        return table[targets]

    def _validation_score(self, X, lengths, targets, weights):
        proba = self._proba_from_raw(self._raw_outputs(X, lengths))
        pred = proba.argmax(axis=-1)
        if self.output == "sequence":
            valid = np.arange(pred.shape[1])[None, :] < lengths[:, None]
            w = np.broadcast_to(weights[:, None], valid.shape)[valid]
            return float(np.average(pred[valid] == targets[:, :pred.shape[1]][valid], weights=w))
        return float(np.average(pred == targets, weights=weights))

    def _proba_from_raw(self, z):
        if len(self.classes_) == 2:
            p = sigmoid(z[..., 0].astype(np.float64))
            return np.stack([1.0 - p, p], axis=-1)
        flat = softmax(z.reshape(-1, z.shape[-1]).astype(np.float64))
        return flat.reshape(z.shape)

    def predict_proba(self, X, state=None, return_state=False):
        """Class probabilities, columns in the order of ``classes_``: (n_samples, n_classes) for
        output="last"; (n_samples, n_timesteps, n_classes) for "sequence" (a list for ragged X).

        ``state`` / ``return_state``: stream long sequences chunk by chunk, as in the regressors'
        ``predict`` (``return_state=True`` returns ``(proba, state)``).
        """
        check_is_fitted(self, "model_")
        X_checked, lengths = self._validate_X(X, reset=False)
        initial = self._check_carried_state(state, X_checked.shape[0], return_state)
        with thread_limit(self.n_threads):
            z = self._raw_outputs(X_checked, lengths, scaled=False, state=initial, return_state=return_state)
        z, final = z if return_state else (z, None)
        proba = self._proba_from_raw(z)
        if self.output == "sequence":
            proba = self._per_sample_outputs(proba, lengths, ragged=bool(np.any(lengths != X_checked.shape[1])))
        return (proba, final) if return_state else proba

    def predict(self, X, state=None, return_state=False):
        """Predicted labels: (n_samples,) for output="last"; per step for "sequence". ``state`` /
        ``return_state`` as in :meth:`predict_proba` (``return_state=True`` returns ``(labels, state)``)."""
        proba = self.predict_proba(X, state=state, return_state=return_state)
        proba, final = proba if return_state else (proba, None)
        if isinstance(proba, list):
            labels = [self.classes_[p.argmax(axis=-1)] for p in proba]
        else:
            labels = self.classes_[proba.argmax(axis=-1)]
        return (labels, final) if return_state else labels

    def score(self, X, y, sample_weight=None):
        """Mean accuracy (over every valid step for output="sequence")."""
        if self.output == "last":
            return super().score(X, y, sample_weight)
        pred = self.predict(X)
        _, lengths = self._validate_X(X, reset=False)
        flat = lambda seqs: np.concatenate([np.asarray(s)[:n] for s, n in zip(seqs, lengths)])
        weights = None if sample_weight is None else np.repeat(np.asarray(sample_weight), lengths)
        return float(np.average(flat(pred) == flat(y), weights=weights))

    def partial_fit(self, X, y, classes=None, sample_weight=None):
        """One pass over ``(X, y)``; ``classes`` (all labels that will ever appear) is required on
        the first call."""
        if not hasattr(self, "classes_") and classes is None:
            raise ValueError("classes must be passed on the first call to partial_fit")
        return self._fit(X, y, sample_weight, incremental=True, classes=classes)

    def _loss_and_grad(self, z, targets, weights, lengths):
        if self.output == "sequence" and self.class_weight is not None:
            table = self._class_weight_table(targets, lengths)
            weights = weights[:, None] * table[targets]
            return self._sequence_loss(z, targets, weights, lengths)
        return super()._loss_and_grad(z, targets, weights, lengths)

    def _class_weight_table(self, targets, lengths):
        valid = np.arange(targets.shape[1])[None, :] < lengths[:, None]
        flat = targets[valid]
        if isinstance(self.class_weight, dict):
            return np.array([self.class_weight.get(c, 1.0) for c in self.classes_])
        table = np.ones(len(self.classes_))
        seen = np.unique(flat)
        table[seen] = compute_class_weight("balanced", classes=seen, y=flat)
        return table

    def _sequence_loss(self, z, targets, step_weights, lengths):
        from ..nn.losses import LOSSES
        N, T, k = z.shape
        valid = np.arange(T)[None, :] < lengths[:, None]
        loss, grad = LOSSES[self._loss_name()](z.reshape(N * T, k), targets.reshape(-1),
                                                (valid * step_weights).reshape(-1))
        return loss, grad.reshape(N, T, k)


def _sequence_labels(y, lengths):
    """Per-step labels as a padded (N, T) array plus the mask of real steps."""
    T = int(lengths.max())
    if isinstance(y, (list, tuple)) or (isinstance(y, np.ndarray) and y.dtype == object and y.ndim == 1):
        rows = [np.asarray(r) for r in y]
        labels = np.empty((len(rows), T), dtype=np.result_type(*[r.dtype for r in rows]))
        labels[...] = rows[0].flat[0]
        for i, r in enumerate(rows):
            if r.ndim != 1 or len(r) != lengths[i]:
                raise ValueError(f"y[{i}] must hold one label per step of X[{i}] ({lengths[i]}); got shape {r.shape}")
            labels[i, :len(r)] = r
    else:
        labels = np.asarray(y)
        if labels.ndim != 2 or labels.shape[1] != T:
            raise ValueError(f"y must have shape (n_samples, {T}) for output='sequence'; got {labels.shape}")
    valid = np.arange(T)[None, :] < lengths[:, None]
    return labels, valid


class LSTMClassifier(_RecurrentClassifier):
    """Classifier of sequences with a long short-term memory network."""

    _cell = "lstm"


class GRUClassifier(_RecurrentClassifier):
    """Classifier of sequences with a gated recurrent unit network."""

    _cell = "gru"


class RNNClassifier(_RecurrentClassifier):
    """Classifier of sequences with a vanilla (Elman) recurrent network, ``nonlinearity`` tanh or relu."""

    _cell = "rnn"

    def __init__(self, hidden_size=64, num_layers=1, bidirectional=False, dropout=0.0, optimizer="adam",
                 learning_rate=0.005, momentum=0.9, batch_size=32, max_epochs=200, alpha=1e-5,
                 clip_grad_norm=5.0, early_stopping=False, validation_fraction=0.1, n_iter_no_change=10,
                 tol=1e-4, shuffle=True, random_state=None, warm_start=False, verbose=False,
                 dtype="float32", backend="auto", n_threads=None, output="last", class_weight=None,
                 nonlinearity="tanh"):
        super().__init__(hidden_size, num_layers, bidirectional, dropout, optimizer, learning_rate, momentum,
                         batch_size, max_epochs, alpha, clip_grad_norm, early_stopping, validation_fraction,
                         n_iter_no_change, tol, shuffle, random_state, warm_start, verbose, dtype, backend,
                         n_threads, output, class_weight)
        self.nonlinearity = nonlinearity
