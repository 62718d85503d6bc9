"""make_windows and WindowTransformer: exact windows on a ramp, shapes, and clear errors."""
import numpy as np
import pytest
from sklearn.pipeline import make_pipeline

import fastrnn


def test_windows_of_a_ramp_are_exact():
    X, y = fastrnn.make_windows(np.arange(10.0), window=3)
    assert X.shape == (7, 3, 1) and y.shape == (7,)
    np.testing.assert_array_equal(X[0, :, 0], [0, 1, 2])
    np.testing.assert_array_equal(X[-1, :, 0], [6, 7, 8])
    np.testing.assert_array_equal(y, np.arange(3.0, 10.0))


def test_longer_horizons_and_multivariate_series():
    X, y = fastrnn.make_windows(np.arange(10.0), window=4, horizon=3)
    assert X.shape == (4, 4, 1) and y.shape == (4, 3)
    np.testing.assert_array_equal(y[0], [4, 5, 6])
    series = np.stack([np.arange(8.0), -np.arange(8.0)], axis=1)
    X, y = fastrnn.make_windows(series, window=2, horizon=2)
    assert X.shape == (5, 2, 2) and y.shape == (5, 2, 2)
    np.testing.assert_array_equal(y[1], [[3, -3], [4, -4]])


def test_pandas_series_is_accepted():
    pd = pytest.importorskip("pandas")
    X, y = fastrnn.make_windows(pd.Series(np.arange(5.0)), 2)
    np.testing.assert_array_equal(y, [2, 3, 4])


@pytest.mark.parametrize("series, window, horizon, match", [
    (np.arange(4.0), 4, 1, "too short"),
    (np.arange(4.0), 0, 1, "window"),
    (np.arange(4.0), 2, 0, "horizon"),
    (np.array([1.0, np.nan, 2.0, 3.0]), 2, 1, "NaN"),
    (np.ones((2, 2, 2)), 1, 1, "1-D"),
])
def test_bad_arguments(series, window, horizon, match):
    with pytest.raises(ValueError, match=match):
        fastrnn.make_windows(series, window, horizon)


def test_transformer_feeds_an_estimator():
    series = np.sin(np.arange(120) * 0.3)
    windows = fastrnn.WindowTransformer(window=8)
    X = windows.fit_transform(series)
    y = windows.targets(series)
    assert X.shape == (112, 8, 1) and y.shape == (112,)
    model = fastrnn.GRURegressor(hidden_size=8, max_epochs=5, random_state=0).fit(X, y)
    assert model.predict(windows.transform(series)).shape == (112,)
    pipe = make_pipeline(fastrnn.WindowTransformer(window=8))
    np.testing.assert_array_equal(pipe.fit_transform(series), X)
