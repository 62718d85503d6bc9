"""Pictures of what a model learned: loss curves, forecasts against the truth, confusion matrices.

Needs matplotlib (``pip install "fastrnn[plot]"``), imported when a function is first called. Every
function draws into ``ax`` when given (a ``matplotlib.axes.Axes``), else into a new pyplot figure,
and returns the Axes: ``ax.figure.savefig("file.png")`` writes it.
"""
import numpy as np


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError as error:
        raise ImportError('fastrnn.plot needs matplotlib: pip install "fastrnn[plot]" (or pip install '
                          'matplotlib)') from error
    return plt


def _axes(ax, figsize):
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
    return ax


def loss_curve(estimator, ax=None):
    """The training loss per epoch of a fitted estimator (``loss_curve_``, log scale), and its
    validation score per epoch on a second axis when it trained with early stopping."""
    curve = getattr(estimator, "loss_curve_", None)
    if curve is None:
        raise ValueError(f"{type(estimator).__name__} has no loss_curve_: fit it first")
    curve = np.asarray(curve, dtype=float)
    if curve.size == 0:
        raise ValueError("loss_curve_ is empty: the estimator has not trained for an epoch yet")
    ax = _axes(ax, (6, 4))
    epochs = np.arange(1, curve.size + 1)
    ax.plot(epochs, curve, color="tab:blue", label="training loss")
    if np.all(curve > 0):
        ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("training loss", color="tab:blue")
    ax.set_title(f"{type(estimator).__name__}: learning curve")
    scores = getattr(estimator, "validation_scores_", None)
    if scores:
        second = ax.twinx()
        metric = "accuracy" if hasattr(estimator, "classes_") else "R²"
        second.plot(epochs[:len(scores)], scores, color="tab:orange", label="validation score")
        second.set_ylabel(f"validation score ({metric})", color="tab:orange")
    ax.grid(True, alpha=0.3)
    return ax


def forecast(y_true, y_pred, baseline=None, ax=None, index=None, title="Forecast", labels=None):
    """Predictions against the truth over time, with an optional baseline forecast.

    ``y_true``, ``y_pred`` and ``baseline`` are 1-D and of one length (for multi-step forecasts pass
    one horizon step, e.g. ``y_pred[:, 0]``); ``index`` gives their x positions (dates or numbers).
    ``labels`` renames the three lines (default "truth", "fastrnn", "baseline"); the legend shows each
    forecast's RMSE.
    """
    series = {"truth": y_true, "fastrnn": y_pred}
    if baseline is not None:
        series["baseline"] = baseline
    series = {name: np.asarray(values, dtype=float) for name, values in series.items()}
    for name, values in series.items():
        if values.ndim != 1:
            raise ValueError(f"{name} must be 1-D (one value per time step); got shape {values.shape}")
        if values.shape != series["truth"].shape:
            raise ValueError(f"{name} has {values.size} values but y_true has {series['truth'].size}")
    names = dict(zip(("truth", "fastrnn", "baseline"), labels or ("truth", "fastrnn", "baseline")))
    x = np.arange(series["truth"].size) if index is None else np.asarray(index)
    ax = _axes(ax, (8, 4))
    styles = {"truth": dict(color="black", linewidth=1.5), "fastrnn": dict(color="tab:blue"),
              "baseline": dict(color="tab:gray", linestyle="--")}
    for name, values in series.items():
        label = names[name]
        if name != "truth":
            label += f" (RMSE {np.sqrt(np.mean((values - series['truth']) ** 2)):.3g})"
        ax.plot(x, values, label=label, **styles[name])
    ax.set_title(title)
    ax.legend()
    ax.grid(True, alpha=0.3)
    return ax


def confusion_matrix(y_true, y_pred, labels=None, normalize=None, ax=None, title="Confusion matrix"):
    """A confusion matrix as a heat map with the counts (or fractions) written in each cell.

    ``labels`` orders the classes (default: every label seen, sorted); ``normalize`` is None, "true"
    (rows sum to 1), "pred" or "all", as in :func:`sklearn.metrics.confusion_matrix`.
    """
    from sklearn.metrics import confusion_matrix as compute

    if labels is None:
        labels = np.unique(np.concatenate([np.asarray(y_true).ravel(), np.asarray(y_pred).ravel()]))
    matrix = compute(y_true, y_pred, labels=labels, normalize=normalize)
    ax = _axes(ax, (1.2 + 0.55 * len(labels),) * 2)
    image = ax.imshow(matrix, cmap="Blues")
    ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    ticks = np.arange(len(labels))
    long_names = len(labels) > 6 and max(len(str(label)) for label in labels) > 3
    ax.set_xticks(ticks, [str(label) for label in labels], rotation=45 if long_names else 0)
    ax.set_yticks(ticks, [str(label) for label in labels])
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    threshold = matrix.max() / 2.0 if matrix.size else 0.0
    for (row, column), value in np.ndenumerate(matrix):
        text = f"{value:.2f}" if normalize else str(int(value))
        ax.text(column, row, text, ha="center", va="center", fontsize=8,
                color="white" if value > threshold else "black")
    return ax
