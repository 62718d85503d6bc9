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
    prediction, naive = model.predict(X[split:]), X[split:, -1, 0]
    return dict(task="sunspots, next year from the last 12 (60 test years)", metric="RMSE",
                model=rmse(prediction), baseline=rmse(naive), baseline_name="last value", seconds=seconds,
                epochs=model.n_iter_, lower_is_better=True, estimator=model, y_true=y[split:], y_pred=prediction,
                baseline_pred=naive)


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
    prediction = model.predict(X_test)
    return dict(task="JapaneseVowels, speaker of a ragged sequence (370 test cases)", metric="accuracy",
                model=float(np.mean(prediction == y_test)), baseline=float(np.mean(y_test == majority)),
                baseline_name="majority class", seconds=seconds, epochs=model.n_iter_, lower_is_better=False,
                estimator=model, y_true=y_test, y_pred=prediction)


def format_result(result):
    better = (result["model"] < result["baseline"]) == result["lower_is_better"]
    return (f"{result['task']}\n"
            f"  fastrnn   {result['metric']} {result['model']:.4f}  "
            f"({result['epochs']} epochs, trained in {result['seconds']:.1f} s)\n"
            f"  baseline  {result['metric']} {result['baseline']:.4f}  ({result['baseline_name']})\n"
            f"  -> fastrnn {'beats' if better else 'does NOT beat'} the baseline\n")


def write_plots(results, directory):
    """Save the pictures of both tasks as PNG files in ``directory`` (created if missing): each
    model's learning curve, the sunspot forecast against the truth and the naive forecast, and the
    vowels' confusion matrix. Returns the paths written."""
    import os

    import matplotlib
    matplotlib.use("Agg")  # files only: no window, works without a display
    import matplotlib.pyplot as plt

    from . import plot

    os.makedirs(directory, exist_ok=True)
    sunspots, vowels = results
    first_test_year = 2008 - len(sunspots["y_true"]) + 1  # the series ends in 2008
    drawings = {
        "sunspots_learning_curve.png": lambda ax: plot.loss_curve(sunspots["estimator"], ax=ax),
        "sunspots_forecast.png": lambda ax: plot.forecast(
            sunspots["y_true"], sunspots["y_pred"], sunspots["baseline_pred"], ax=ax,
            index=np.arange(first_test_year, 2009), labels=("observed", "LSTMRegressor", "last value"),
            title="Yearly sunspot number: one-year-ahead forecasts on the held-out years"),
        "vowels_learning_curve.png": lambda ax: plot.loss_curve(vowels["estimator"], ax=ax),
        "vowels_confusion_matrix.png": lambda ax: plot.confusion_matrix(
            vowels["y_true"], vowels["y_pred"], ax=ax, title="JapaneseVowels: speakers (test set)"),
    }
    paths = []
    for name, draw in drawings.items():
        figure, ax = plt.subplots(figsize=(8, 4.5) if "forecast" in name else (6, 4.5), layout="constrained")
        draw(ax)
        paths.append(os.path.join(directory, name))
        figure.savefig(paths[-1], dpi=110)
        plt.close(figure)
    return paths


def run(out=print, plots=None):
    """Run both tasks and print their results; with ``plots`` (a directory) also save their pictures
    (needs matplotlib). Returns the two result dicts."""
    results = []
    for task in (sunspots_forecast, vowels_classification):
        results.append(task())
        out(format_result(results[-1]))
    if plots is not None:
        for path in write_plots(results, plots):
            out(f"wrote {path}")
    return results
