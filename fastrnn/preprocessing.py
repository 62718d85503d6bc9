"""The look-back recipe of classic forecasting tutorials: a series becomes (window -> next values) pairs."""
import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_array


def _as_series(series):
    values = check_array(series, ensure_2d=False, allow_nd=True, dtype=[np.float64, np.float32], input_name="series")
    if values.ndim == 1:
        return values[:, None], True
    if values.ndim == 2:
        return values, False
    raise ValueError(f"series must be 1-D (n_steps,) or 2-D (n_steps, n_features); got shape {values.shape}")


def make_windows(series, window, horizon=1):
    """Turn a series into supervised pairs ``(X, y)`` for look-back forecasting.

    ``X[i]`` is ``series[i : i + window]`` with shape ``(window, n_features)`` (a 1-D series gives one
    feature); ``y[i]`` holds the ``horizon`` values that follow it, ``series[i + window : i + window
    + horizon]``. Shapes: ``X`` is ``(n, window, n_features)`` with ``n = len(series) - window - horizon
    + 1``; ``y`` is ``(n,)`` for a 1-D series and ``horizon=1``, ``(n, horizon)`` for a 1-D series and
    a longer horizon, and ``(n, horizon, n_features)`` for a 2-D series.
    """
    values, one_d = _as_series(series)
    for name, value in (("window", window), ("horizon", horizon)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")
    n = len(values) - window - horizon + 1
    if n < 1:
        raise ValueError(f"the series has {len(values)} steps: too short for window={window} and "
                         f"horizon={horizon} (needs at least {window + horizon})")
    index = np.arange(n)[:, None]
    X = values[index + np.arange(window)[None, :]]
    y = values[index + window + np.arange(horizon)[None, :]]
    if one_d:
        y = y[:, :, 0]
        if horizon == 1:
            y = y[:, 0]
    return X, y


class WindowTransformer(TransformerMixin, BaseEstimator):
    """scikit-learn transformer form of :func:`make_windows`: ``transform(series)`` returns the windows
    ``X``; :meth:`targets` returns the matching ``y``. Stateless: ``fit`` only checks the input.
    """

    def __init__(self, window=10, horizon=1):
        self.window = window
        self.horizon = horizon

    def fit(self, series, y=None):
        make_windows(series, self.window, self.horizon)  # validates
        self.n_features_in_ = _as_series(series)[0].shape[1]
        return self

    def transform(self, series):
        return make_windows(series, self.window, self.horizon)[0]

    def targets(self, series):
        """The values each window of ``transform(series)`` should predict."""
        return make_windows(series, self.window, self.horizon)[1]
