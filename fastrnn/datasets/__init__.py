"""Small real data sets shipped with fastrnn, and their loaders. No network access is needed.

Forecasting series (1-D float arrays, oldest first):

- :func:`load_airline` — monthly international airline passengers, 1949-01 to 1960-12 (144 points;
  Box & Jenkins).
- :func:`load_sunspots` — yearly mean sunspot activity, 1700 to 2008 (309 points; public domain).
- :func:`load_co2` — weekly atmospheric CO2 at Mauna Loa in ppm, 1958 to 2001 (2284 weeks, some
  missing; public domain).

Classification sets from the UCR/UEA time-series archive, with their official train/test splits
(``X`` is ``(n_samples, n_timesteps, n_channels)``, ``y`` holds the archive's labels as strings):

======================  ========  =======  =======  ============  ==========================
set                     channels  length   classes  train / test  what
======================  ========  =======  =======  ============  ==========================
ItalyPowerDemand        1         24       2        67 / 1029     daily electricity demand
GunPoint                1         150      2        50 / 150      hand motion
BasicMotions            6         100      4        40 / 40       accelerometer + gyroscope
JapaneseVowels          12        7-29     9        270 / 370     speaker from LPC cepstra
======================  ========  =======  =======  ============  ==========================

JapaneseVowels has sequences of unequal length, so its ``X`` is a list of ``(T_i, 12)`` arrays.

Text: :func:`load_shakespeare` — eight plays (Project Gutenberg editions, headers removed).

Generated: :func:`make_dates` — human-written dates in many formats paired with ISO ``YYYY-MM-DD``
(seeded), a character-level translation task.

The compact files in ``fastrnn/datasets/data`` are made from the raw files by
``python -m fastrnn.datasets._convert``.
"""
import gzip
import os

import numpy as np
from sklearn.utils import Bunch

from .dates import make_dates

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
PLAYS = ("hamlet", "macbeth", "lear", "othello", "romeo_and_juliet", "julius_caesar", "tempest",
         "midsummer_nights_dream")

__all__ = ["load_airline", "load_sunspots", "load_co2", "load_italy_power_demand", "load_gunpoint",
           "load_basic_motions", "load_japanese_vowels", "load_shakespeare", "PLAYS", "make_dates"]


def _npz(name):
    with np.load(os.path.join(DATA_DIR, f"{name}.npz"), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _series(name, return_dates):
    data = _npz(name)
    return (data["values"], data["dates"]) if return_dates else data["values"]


def load_airline(return_dates=False):
    """Monthly airline passengers (thousands), 144 values; with ``return_dates`` also "YYYY-MM" strings."""
    return _series("airline", return_dates)


def load_sunspots(return_dates=False):
    """Yearly sunspot activity 1700-2008, 309 values; with ``return_dates`` also the years as strings."""
    return _series("sunspots", return_dates)


def load_co2(return_dates=False, fill_missing=True):
    """Weekly Mauna Loa CO2 (ppm), 2284 values; dates as "YYYYMMDD" strings with ``return_dates``.

    59 weeks have no measurement. With ``fill_missing=True`` (default) they are filled by linear
    interpolation between their neighbours; with ``fill_missing=False`` they are NaN.
    """
    values, dates = _series("co2", True)
    if fill_missing:
        missing = np.isnan(values)
        index = np.arange(len(values))
        values = values.copy()
        values[missing] = np.interp(index[missing], index[~missing], values[~missing])
    return (values, dates) if return_dates else values


def _ucr(name, split, return_X_y, ragged):
    if split not in ("train", "test", None):
        raise ValueError(f"split must be 'train', 'test' or None (both, as a Bunch); got {split!r}")
    data = _npz(name)

    def part(which):
        values, lengths = data[f"{which}_values"], data[f"{which}_lengths"]
        sequences = np.split(values, np.cumsum(lengths)[:-1])
        X = sequences if ragged else np.stack(sequences)
        return X, data[f"{which}_labels"].astype(str)

    if split is not None:
        X, y = part(split)
        return (X, y) if return_X_y else Bunch(data=X, target=y, DESCR=_describe(name))
    X_train, y_train = part("train")
    X_test, y_test = part("test")
    if return_X_y:
        return X_train, X_test, y_train, y_test
    return Bunch(X_train=X_train, X_test=X_test, y_train=y_train, y_test=y_test, DESCR=_describe(name))


def _describe(name):
    return f"{name} from the UCR/UEA time-series classification archive (official split); see fastrnn.datasets."


def load_italy_power_demand(split=None, return_X_y=True):
    """ItalyPowerDemand: (n, 24, 1), 2 classes. ``split=None`` returns ``X_train, X_test, y_train, y_test``;
    "train"/"test" returns ``X, y``; ``return_X_y=False`` returns a :class:`sklearn.utils.Bunch`."""
    return _ucr("ItalyPowerDemand", split, return_X_y, ragged=False)


def load_gunpoint(split=None, return_X_y=True):
    """GunPoint: (n, 150, 1), 2 classes; arguments as :func:`load_italy_power_demand`."""
    return _ucr("GunPoint", split, return_X_y, ragged=False)


def load_basic_motions(split=None, return_X_y=True):
    """BasicMotions: (n, 100, 6), 4 classes; arguments as :func:`load_italy_power_demand`."""
    return _ucr("BasicMotions", split, return_X_y, ragged=False)


def load_japanese_vowels(split=None, return_X_y=True):
    """JapaneseVowels: a list of (T_i, 12) arrays with T_i in 7..29, 9 classes (speakers); arguments
    as :func:`load_italy_power_demand`."""
    return _ucr("JapaneseVowels", split, return_X_y, ragged=True)


def load_shakespeare(plays=None, concatenate=False):
    """The plays' texts: a dict play name -> text (names in :data:`PLAYS`), or with ``concatenate`` one
    string with the plays separated by blank lines."""
    plays = PLAYS if plays is None else tuple(plays)
    unknown = sorted(set(plays) - set(PLAYS))
    if unknown:
        raise ValueError(f"unknown plays {unknown}; choose from {list(PLAYS)}")
    texts = {}
    for play in plays:
        with gzip.open(os.path.join(DATA_DIR, f"{play}.txt.gz"), "rt", encoding="utf-8") as fh:
            texts[play] = fh.read()
    return "\n\n".join(texts.values()) if concatenate else texts
