"""The shipped data sets load from the package itself, with the shapes the archive documents."""
import numpy as np
import pytest

from fastrnn import datasets


@pytest.mark.parametrize("loader, n_train, n_test, length, channels, n_classes", [
    (datasets.load_italy_power_demand, 67, 1029, 24, 1, 2),
    (datasets.load_gunpoint, 50, 150, 150, 1, 2),
    (datasets.load_basic_motions, 40, 40, 100, 6, 4),
])
def test_equal_length_classification_sets(loader, n_train, n_test, length, channels, n_classes):
    X_train, X_test, y_train, y_test = loader()
    assert X_train.shape == (n_train, length, channels) and X_test.shape == (n_test, length, channels)
    assert len(y_train) == n_train and len(y_test) == n_test
    assert len(np.unique(np.concatenate([y_train, y_test]))) == n_classes
    assert np.all(np.isfinite(X_train)) and np.all(np.isfinite(X_test))
    X, y = loader(split="test")
    np.testing.assert_array_equal(X, X_test)
    bunch = loader(split="train", return_X_y=False)
    np.testing.assert_array_equal(bunch.data, X_train)
    assert "UCR" in bunch.DESCR


def test_japanese_vowels_is_ragged():
    X_train, X_test, y_train, y_test = datasets.load_japanese_vowels()
    assert (len(X_train), len(X_test)) == (270, 370)
    lengths = [len(x) for x in X_train + X_test]
    assert min(lengths) == 7 and max(lengths) == 29
    assert all(x.shape[1] == 12 for x in X_train + X_test)
    assert sorted(np.unique(y_train)) == [str(i) for i in range(1, 10)]


def test_forecasting_series():
    airline, dates = datasets.load_airline(return_dates=True)
    assert airline.shape == (144,) and dates[0] == "1949-01" and airline[0] == 112
    sunspots = datasets.load_sunspots()
    assert sunspots.shape == (309,) and np.all(np.isfinite(sunspots))
    raw = datasets.load_co2(fill_missing=False)
    filled = datasets.load_co2()
    assert raw.shape == filled.shape == (2284,)
    assert np.isnan(raw).sum() == 59 and np.all(np.isfinite(filled))
    np.testing.assert_array_equal(raw[~np.isnan(raw)], filled[~np.isnan(raw)])


def test_shakespeare():
    texts = datasets.load_shakespeare()
    assert set(texts) == set(datasets.PLAYS)
    assert texts["hamlet"].startswith("HAMLET, PRINCE OF DENMARK")
    assert len(datasets.load_shakespeare(concatenate=True)) > 1_000_000
    with pytest.raises(ValueError, match="unknown plays"):
        datasets.load_shakespeare(["hamlet", "faust"])


def test_loaders_read_the_package_copy():
    assert datasets.DATA_DIR.startswith(str(__import__("pathlib").Path(datasets.__file__).parent))
