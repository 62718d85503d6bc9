"""The pictures: each plot function draws what it says, and the demo's PNG files are valid images."""
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from PIL import Image  # noqa: E402  (matplotlib depends on pillow)

import fastrnn  # noqa: E402
from fastrnn import demo, plot  # noqa: E402


@pytest.fixture
def regressor():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((40, 8, 1))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fastrnn.GRURegressor(hidden_size=4, max_epochs=6, early_stopping=True, validation_fraction=0.25,
                                    random_state=0).fit(X, X.sum(axis=(1, 2)))


def test_loss_curve_draws_the_losses_and_the_validation_scores(regressor):
    ax = plot.loss_curve(regressor)
    line = ax.get_lines()[0]
    assert np.allclose(line.get_ydata(), regressor.loss_curve_)
    twin = [other for other in ax.figure.axes if other is not ax]
    assert len(twin) == 1 and np.allclose(twin[0].get_lines()[0].get_ydata(), regressor.validation_scores_)
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="fit it first"):
        plot.loss_curve(fastrnn.GRURegressor())


def test_forecast_draws_every_series_with_its_rmse():
    truth = np.sin(np.arange(30.0))
    ax = plot.forecast(truth, truth + 0.1, baseline=np.roll(truth, 1), index=np.arange(1970, 2000))
    lines = ax.get_lines()
    assert len(lines) == 3 and lines[0].get_xdata()[0] == 1970
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend[0] == "truth" and "RMSE 0.1" in legend[1]
    plt.close(ax.figure)
    with pytest.raises(ValueError, match="1-D"):
        plot.forecast(truth[:, None], truth)
    with pytest.raises(ValueError, match="values but y_true has"):
        plot.forecast(truth, truth[:-1])


def test_confusion_matrix_counts_and_labels():
    y_true = np.array(["a", "a", "b", "c", "c", "c"])
    y_pred = np.array(["a", "b", "b", "c", "c", "a"])
    ax = plot.confusion_matrix(y_true, y_pred)
    assert np.array_equal(ax.get_images()[0].get_array(), [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert sorted(t.get_text() for t in ax.texts) == sorted("110010102")
    plt.close(ax.figure)
    ax = plot.confusion_matrix(y_true, y_pred, normalize="true")
    assert np.allclose(ax.get_images()[0].get_array().sum(axis=1), 1.0)
    plt.close(ax.figure)


def test_demo_writes_valid_png_files(tmp_path, regressor):
    rng = np.random.default_rng(1)
    truth = rng.standard_normal(60)
    labels = np.array(list("abcab" * 4))
    results = [dict(estimator=regressor, y_true=truth, y_pred=truth * 0.9, baseline_pred=np.roll(truth, 1)),
               dict(estimator=regressor, y_true=labels, y_pred=np.roll(labels, 1))]
    paths = demo.write_plots(results, tmp_path / "plots")
    assert len(paths) == 4
    for path in paths:
        with Image.open(path) as image:
            image.verify()
        with Image.open(path) as image:
            assert image.format == "PNG" and image.size[0] >= 500 and image.size[1] >= 400
            # a picture, not a blank canvas: many distinct colours
            assert len(image.convert("RGB").getcolors(maxcolors=1 << 16) or []) > 50


def test_missing_matplotlib_says_what_to_install():
    code = textwrap.dedent("""
        import sys
        sys.modules["matplotlib"] = None
        sys.modules["matplotlib.pyplot"] = None
        from fastrnn import plot
        try:
            plot.forecast([1.0, 2.0], [1.0, 2.0])
        except ImportError as error:
            print(error)
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert 'pip install "fastrnn[plot]"' in result.stdout, result.stderr
