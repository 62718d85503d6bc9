"""The main job: two real tasks on data shipped with fastrnn, each beside a naive baseline.

1. Forecasting: an LSTM reads the last 12 years of sunspot activity and predicts the next year; the
   last 60 years are held out. Baseline: "next year equals this year".
2. Classification: a GRU names the speaker of a Japanese vowel from its ragged sequence of LPC
   cepstra (the archive's official split). Baseline: the majority class.
"""
import time

import numpy as np

from . import datasets
from .estimators import GRUClassifier, LSTMRegressor
from .preprocessing import make_windows


def sunspots_forecast(window=12, test_years=60, random_state=0, **params):
    """Fit the forecaster; returns a dict with the model's and the naive forecast's test RMSE."""
    series = datasets.load_sunspots()
    X, y = make_windows(series, window)
    split = len(y) - test_years
    settings = dict(hidden_size=32, max_epochs=150, learning_rate=0.005, early_stopping=True,
                    validation_fraction=0.15, n_iter_no_change=15, random_state=random_state)
    settings.update(params)
    start = time.perf_counter()
    model = LSTMRegressor(**settings).fit(X[:split], y[:split])
    seconds = time.perf_counter() - start
    rmse = lambda pred: float(np.sqrt(np.mean((pred - y[split:]) ** 2)))
    return dict(task="sunspots, next year from the last 12 (60 test years)", metric="RMSE",
                model=rmse(model.predict(X[split:])), baseline=rmse(X[split:, -1, 0]),
                baseline_name="last value", seconds=seconds, epochs=model.n_iter_, lower_is_better=True)


def vowels_classification(random_state=0, **params):
    """Fit the classifier; returns a dict with the model's and the majority class's test accuracy."""
    X_train, X_test, y_train, y_test = datasets.load_japanese_vowels()
    settings = dict(hidden_size=48, max_epochs=60, learning_rate=0.005, batch_size=16, early_stopping=True,
                    validation_fraction=0.15, n_iter_no_change=10, random_state=random_state)
    settings.update(params)
    start = time.perf_counter()
    model = GRUClassifier(**settings).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    labels, counts = np.unique(y_train, return_counts=True)
    majority = labels[np.argmax(counts)]
    return dict(task="JapaneseVowels, speaker of a ragged sequence (370 test cases)", metric="accuracy",
                model=float(model.score(X_test, y_test)), baseline=float(np.mean(y_test == majority)),
                baseline_name="majority class", seconds=seconds, epochs=model.n_iter_, lower_is_better=False)


def format_result(result):
    better = (result["model"] < result["baseline"]) == result["lower_is_better"]
    return (f"{result['task']}\n"
            f"  fastrnn   {result['metric']} {result['model']:.4f}  "
            f"({result['epochs']} epochs, trained in {result['seconds']:.1f} s)\n"
            f"  baseline  {result['metric']} {result['baseline']:.4f}  ({result['baseline_name']})\n"
            f"  -> fastrnn {'beats' if better else 'does NOT beat'} the baseline\n")


def run(out=print):
    """Run both tasks and print their results; returns the two result dicts."""
    results = []
    for task in (sunspots_forecast, vowels_classification):
        results.append(task())
        out(format_result(results[-1]))
    return results
