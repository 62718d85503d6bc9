"""Safe model files: fastrnn.save / estimator.save and fastrnn.load (arrays + JSON, nothing executed).

Loaded models must predict bit-identically (same backend) and within float tolerance on any other
backend; every damaged or foreign file must give a ValueError that names the problem.
"""
import io
import json
import os
import pickle
import subprocess
import sys
import zipfile

import numpy as np
import pytest

import fastrnn
from fastrnn.kernels import available_backends

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
QUICK = dict(hidden_size=6, max_epochs=3, batch_size=16, random_state=0)


def data(n=40, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 7, 3))
    return X, X[:, -1, 0] + 0.5 * X[:, -2, 1]


@pytest.fixture(scope="module")
def fitted_models():
    X, y = data()
    labels = np.where(y > 0.5, "high", np.where(y < -0.5, "low", "mid")).astype(object)
    return X, {
        "lstm_regressor_2_outputs": fastrnn.LSTMRegressor(**QUICK, num_layers=2, bidirectional=True).fit(
            X, np.column_stack([y, -y])),
        "gru_classifier_strings": fastrnn.GRUClassifier(**QUICK, dtype="float64").fit(X, labels),
        "rnn_classifier_binary_ints": fastrnn.RNNClassifier(**QUICK, nonlinearity="relu",
                                                            class_weight={0: 1.0, 1: 2.0}).fit(X, (y > 0).astype(int)),
        "rnn_regressor_sequence": fastrnn.RNNRegressor(**QUICK, output="sequence").fit(X, X[:, :, 0].cumsum(axis=1)),
    }


def outputs(model, X):
    return model.predict_proba(X) if hasattr(model, "predict_proba") else model.predict(X)


@pytest.mark.parametrize("name", ["lstm_regressor_2_outputs", "gru_classifier_strings",
                                  "rnn_classifier_binary_ints", "rnn_regressor_sequence"])
def test_round_trip_predicts_bit_identically(tmp_path, fitted_models, name):
    X, models = fitted_models
    model = models[name]
    path = tmp_path / "model.fastrnn"
    model.save(path)
    loaded = fastrnn.load(path)
    assert type(loaded) is type(model) and loaded.get_params() == model.get_params()
    assert np.array_equal(outputs(loaded, X), outputs(model, X))
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X).dtype == model.predict(X).dtype
    for attr in ("n_features_in_", "n_iter_", "t_", "loss_curve_", "best_loss_"):
        assert getattr(loaded, attr) == getattr(model, attr)
    if hasattr(model, "classes_"):
        assert np.array_equal(loaded.classes_, model.classes_) and loaded.classes_.dtype == model.classes_.dtype


def test_loaded_model_predicts_with_every_backend(tmp_path, fitted_models):
    X, models = fitted_models
    model = models["lstm_regressor_2_outputs"]
    fastrnn.save(model, tmp_path / "m.fastrnn")
    expected = model.predict(X)
    loaded = fastrnn.load(tmp_path / "m.fastrnn")
    for backend in available_backends():
        loaded.model_.set_backend(backend)
        np.testing.assert_allclose(loaded.predict(X), expected, rtol=1e-4, atol=1e-5)
        reference = pickle.loads(pickle.dumps(model))
        reference.model_.set_backend(backend)
        assert np.array_equal(loaded.predict(X), reference.predict(X))  # same backend: bit-identical


def test_loaded_in_a_new_process_predicts_bit_identically(tmp_path, fitted_models):
    X, models = fitted_models
    model = models["gru_classifier_strings"]
    model.save(tmp_path / "m.fastrnn")
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "expected.npy", model.predict_proba(X))
    script = ("import sys, numpy as np, fastrnn\n"
              "m = fastrnn.load(sys.argv[1])\n"
              "assert np.array_equal(m.predict_proba(np.load(sys.argv[2])), np.load(sys.argv[3]))\n")
    subprocess.run([sys.executable, "-c", script, str(tmp_path / "m.fastrnn"), str(tmp_path / "X.npy"),
                    str(tmp_path / "expected.npy")], check=True, cwd=tmp_path)


def test_file_objects_and_partial_fit_after_load(fitted_models):
    X, models = fitted_models
    buffer = io.BytesIO()
    models["rnn_classifier_binary_ints"].save(buffer)
    buffer.seek(0)
    loaded = fastrnn.load(buffer)
    loaded.partial_fit(X, (X[:, -1, 0] > 0).astype(int))  # a fresh optimiser continues training
    assert loaded.n_iter_ == models["rnn_classifier_binary_ints"].n_iter_ + 1


# ------------------------------------------------------------------ damaged and foreign files
@pytest.fixture(scope="module")
def good_file(tmp_path_factory, fitted_models):
    path = tmp_path_factory.mktemp("files") / "good.fastrnn"
    fitted_models[1]["lstm_regressor_2_outputs"].save(path)
    return path.read_bytes()


def load_bytes(content, tmp_path):
    path = tmp_path / "bad.fastrnn"
    path.write_bytes(content)
    return fastrnn.load(path)


@pytest.mark.parametrize("fraction", [0.0, 0.1, 0.5, 0.9, 0.999])
def test_truncated_files_are_refused_clearly(tmp_path, good_file, fraction):
    with pytest.raises(ValueError, match="not a fastrnn model file|corrupted|incomplete"):
        load_bytes(good_file[:int(len(good_file) * fraction)], tmp_path)


def rewrite(good_file, change):
    """A copy of the archive with ``change(name, bytes) -> bytes`` applied to every entry."""
    source = zipfile.ZipFile(io.BytesIO(good_file))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            target.writestr(info.filename, change(info.filename, source.read(info.filename)))
    return out.getvalue()


def test_modified_weights_fail_the_checksum(tmp_path, good_file):
    def flip(name, content):
        if name != "rnn.weight_hh_l0.npy":
            return content
        content = bytearray(content)
        content[-1] ^= 0x01  # one bit of one weight
        return bytes(content)

    with pytest.raises(ValueError, match="checksum"):
        load_bytes(rewrite(good_file, flip), tmp_path)


def test_future_format_version_is_refused(tmp_path, good_file):
    def bump(name, content):
        if name != "fastrnn.json":
            return content
        metadata = json.loads(content)
        metadata["format_version"] = 99
        return json.dumps(metadata).encode()

    with pytest.raises(ValueError, match="format version 99.*reads version 1"):
        load_bytes(rewrite(good_file, bump), tmp_path)


@pytest.mark.parametrize("content, match", [
    (b"", "not a zip archive"),
    (os.urandom(4096), "not a zip archive"),
    (b"\x80\x04K\x01.", "not a zip archive"),  # a pickle
])
def test_foreign_files_are_refused(tmp_path, content, match):
    with pytest.raises(ValueError, match=match):
        load_bytes(content, tmp_path)


def test_other_zip_archives_are_refused(tmp_path):
    buffer = io.BytesIO()
    np.savez(buffer, a=np.arange(3))
    with pytest.raises(ValueError, match="no fastrnn.json"):
        load_bytes(buffer.getvalue(), tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fastrnn.json", json.dumps({"format": "something-else"}))
    with pytest.raises(ValueError, match="not a fastrnn model file"):
        load_bytes(buffer.getvalue(), tmp_path)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("fastrnn.json", b"{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_bytes(buffer.getvalue(), tmp_path)


class _Marker:
    """Unpickling this would create a file: proof that loading executed something."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_pickled_arrays_inside_are_never_executed(tmp_path, good_file):
    marker = tmp_path / "executed"

    def poison(name, content):
        if name != "head.bias.npy":
            return content
        entry = io.BytesIO()
        np.lib.format.write_array(entry, np.array([_Marker(str(marker))], dtype=object), allow_pickle=True)
        return entry.getvalue()

    with pytest.raises(ValueError, match="corrupted"):
        load_bytes(rewrite(good_file, poison), tmp_path)
    assert not marker.exists()


def test_unfitted_and_unsavable_estimators_are_refused(tmp_path):
    from sklearn.exceptions import NotFittedError
    with pytest.raises(NotFittedError):
        fastrnn.LSTMRegressor().save(tmp_path / "x")
    X, y = data(20)
    model = fastrnn.GRURegressor(**dict(QUICK, random_state=np.random.RandomState(0))).fit(X, y)
    with pytest.raises(TypeError, match="random_state"):
        model.save(tmp_path / "x")
    assert not (tmp_path / "x").exists()  # nothing half-written
    with pytest.raises(TypeError, match="fastrnn estimator"):
        fastrnn.save(object(), tmp_path / "y")
