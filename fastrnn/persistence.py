"""Model files that execute nothing when read: arrays plus JSON metadata in one zip archive.

``save(estimator, path)`` writes ``fastrnn.json`` (format name and version, fastrnn version, the
estimator's class and parameters, its fitted scalars, a SHA-256 checksum) and one ``.npy`` entry per
array (weights, input/target scaling, classes), all written and read with ``allow_pickle=False``.
``load(path)`` checks everything before it builds anything, so a truncated, corrupted, foreign or
too-new file raises a ValueError naming the problem and never yields a half-loaded model. Pickle
and joblib keep working too, for trusted files only: unpickling runs code.

What is not stored: the optimiser's moment estimates (``partial_fit`` after ``load`` starts a fresh
optimiser) and the activations of the last forward pass.
"""
import hashlib
import io
import json
import zipfile
import zlib

import numpy as np

FORMAT_NAME = "fastrnn-model"
FORMAT_VERSION = 1
_METADATA = "fastrnn.json"
_FITTED_SCALARS = ("n_features_in_", "n_iter_", "t_", "best_loss_", "best_validation_score_", "loss_curve_",
                   "validation_scores_", "n_outputs_", "_y_was_1d")
_FITTED_ARRAYS = ("x_mean_", "x_scale_", "y_mean_", "y_scale_")


def _estimator_classes():
    from . import estimators
    return {name: getattr(estimators, name) for name in ("LSTMRegressor", "LSTMClassifier", "GRURegressor",
                                                          "GRUClassifier", "RNNRegressor", "RNNClassifier")}


# ------------------------------------------------------------------ JSON-safe values
def _to_json(value, what):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if np.isfinite(value) else {"float": repr(value)}  # JSON has no inf/nan
    if isinstance(value, (list, tuple)):
        return [_to_json(v, what) for v in value]
    if isinstance(value, dict):  # e.g. class_weight: keys may be labels of any type
        return {"dict": [[_to_json(k, what), _to_json(v, what)] for k, v in value.items()]}
    raise TypeError(f"cannot save {what} of type {type(value).__name__} ({value!r}) in a fastrnn model file; "
                    f"use plain numbers, strings or None (e.g. an int random_state), or pickle for trusted use")


def _from_json(value):
    if isinstance(value, list):
        return [_from_json(v) for v in value]
    if isinstance(value, dict):
        if "float" in value:
            return float(value["float"])
        if "dict" in value:
            return {_from_json(k): _from_json(v) for k, v in value["dict"]}
        raise ValueError(f"unexpected value {value!r} in the model file's metadata")
    return value


def _classes_to_array(classes):
    """classes_ as an array that needs no pickle, plus how to restore its dtype."""
    classes = np.asarray(classes)
    if classes.dtype != object:
        return classes, None
    items = list(classes)
    if all(isinstance(c, str) for c in items):
        return np.array(items, dtype=str), "object"
    if all(isinstance(c, (bool, int, float, np.number, np.bool_)) for c in items):
        return np.array(items), "object"
    raise TypeError("cannot save class labels that mix types or are not strings or numbers; "
                    f"got {sorted({type(c).__name__ for c in items})}")


# ------------------------------------------------------------------ checksum
def _checksum(metadata, arrays):
    digest = hashlib.sha256()
    digest.update(json.dumps({k: v for k, v in metadata.items() if k != "checksum"}, sort_keys=True).encode())
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


# ------------------------------------------------------------------ save
def save(estimator, path):
    """Write a fitted fastrnn estimator to ``path`` (a file name or a writable binary file)."""
    from sklearn.utils.validation import check_is_fitted

    classes = _estimator_classes()
    name = type(estimator).__name__
    if classes.get(name) is not type(estimator):
        raise TypeError(f"save() takes a fastrnn estimator ({', '.join(classes)}); got {name}")
    check_is_fitted(estimator, "model_")
    from . import __version__

    model = estimator.model_
    arrays = {f"rnn.{key}": value for key, value in model.state_dict().items()}
    arrays.update({f"head.{key}": value for key, value in estimator.head_.state_dict().items()})
    arrays.update({attr: getattr(estimator, attr) for attr in _FITTED_ARRAYS if hasattr(estimator, attr)})
    classes_dtype = None
    if hasattr(estimator, "classes_"):
        arrays["classes_"], classes_dtype = _classes_to_array(estimator.classes_)
    params = estimator.get_params(deep=False)
    metadata = {
        "format": FORMAT_NAME, "format_version": FORMAT_VERSION, "fastrnn_version": __version__,
        "estimator": name,
        "params": {key: _to_json(value, f"parameter {key!r}") for key, value in params.items()},
        "fitted": {attr: _to_json(getattr(estimator, attr), attr) for attr in _FITTED_SCALARS
                   if hasattr(estimator, attr)},
        "dtype": np.dtype(model.dtype).name, "classes_dtype": classes_dtype,
        "model": {"cell": model.cell, "input_size": model.input_size, "hidden_size": model.hidden_size,
                  "num_layers": model.num_layers, "bidirectional": model.bidirectional},
        "arrays": {key: {"dtype": np.asarray(value).dtype.str, "shape": list(np.shape(value))}
                   for key, value in arrays.items()},
    }
    metadata["checksum"] = _checksum(metadata, arrays)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(_METADATA, json.dumps(metadata, indent=1, sort_keys=True))
        for key, value in arrays.items():
            entry = io.BytesIO()
            np.lib.format.write_array(entry, np.ascontiguousarray(value), allow_pickle=False)
            archive.writestr(f"{key}.npy", entry.getvalue())
    data = buffer.getvalue()
    if hasattr(path, "write"):
        path.write(data)
    else:
        with open(path, "wb") as fh:  # one write of a complete archive: no partial file from an error above
            fh.write(data)


# ------------------------------------------------------------------ load
def _read(path):
    """(metadata, arrays) from ``path``, every failure turned into a ValueError that says what is wrong."""
    try:
        if hasattr(path, "read"):
            data = path.read()
        else:
            with open(path, "rb") as fh:
                data = fh.read()
    except OSError as exc:
        raise ValueError(f"cannot read the model file {path!r}: {exc}") from exc
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path!r} is not a fastrnn model file (not a zip archive: truncated, corrupted "
                         f"or a different format)") from exc
    with archive:
        try:
            raw = archive.read(_METADATA)
        except KeyError as exc:
            raise ValueError(f"{path!r} is not a fastrnn model file (no {_METADATA} inside)") from exc
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
            raise ValueError(f"the model file {path!r} is corrupted ({exc})") from exc
        try:
            metadata = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"the model file {path!r} is corrupted: its metadata is not valid JSON ({exc})") from exc
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT_NAME:
            raise ValueError(f"{path!r} is not a fastrnn model file (format {metadata.get('format')!r})"
                             if isinstance(metadata, dict) else f"{path!r} is not a fastrnn model file")
        version = metadata.get("format_version")
        if version != FORMAT_VERSION:
            raise ValueError(f"the model file {path!r} has format version {version!r}, written by fastrnn "
                             f"{metadata.get('fastrnn_version')!r}; this fastrnn reads version {FORMAT_VERSION}")
        arrays = {}
        try:
            for key, spec in metadata["arrays"].items():
                array = np.lib.format.read_array(io.BytesIO(archive.read(f"{key}.npy")), allow_pickle=False)
                if array.dtype.str != spec["dtype"] or list(array.shape) != spec["shape"]:
                    raise ValueError(f"array {key!r} has dtype {array.dtype.str} and shape {array.shape}, "
                                     f"the metadata says {spec['dtype']} and {tuple(spec['shape'])}")
                arrays[key] = array
        except KeyError as exc:
            raise ValueError(f"the model file {path!r} is incomplete: missing {exc}") from exc
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, TypeError) as exc:
            raise ValueError(f"the model file {path!r} is corrupted: {exc}") from exc
    if metadata.get("checksum") != _checksum(metadata, arrays):
        raise ValueError(f"the model file {path!r} is corrupted or was modified: its checksum does not match")
    return metadata, arrays


def load(path):
    """Read an estimator written by :func:`save` (or ``estimator.save``); nothing in the file is executed.

    Raises ValueError for a truncated, corrupted or foreign file, or one of an unsupported format version.
    """
    from .nn import GRU, LSTM, RNN
    from .nn.linear import Linear

    metadata, arrays = _read(path)
    try:
        estimator_class = _estimator_classes()[metadata["estimator"]]
        params = {key: _from_json(value) for key, value in metadata["params"].items()}
        estimator = estimator_class(**params)
        spec, dtype = metadata["model"], np.dtype(metadata["dtype"])
        layer_kwargs = dict(num_layers=spec["num_layers"], bidirectional=spec["bidirectional"],
                            dropout=params.get("dropout", 0.0), dtype=dtype, backend=params.get("backend", "auto"))
        if spec["cell"].startswith("rnn_"):
            layer = RNN(spec["input_size"], spec["hidden_size"], nonlinearity=spec["cell"][4:], **layer_kwargs)
        else:
            layer = {"lstm": LSTM, "gru": GRU}[spec["cell"]](spec["input_size"], spec["hidden_size"], **layer_kwargs)
        layer.load_state_dict({key[4:]: value for key, value in arrays.items() if key.startswith("rnn.")})
        layer.eval()
        weight = arrays["head.weight"]
        head = Linear(weight.shape[1], weight.shape[0], dtype=dtype)
        head.params = {"weight": weight.copy(), "bias": arrays["head.bias"].copy()}
        fitted = {key: _from_json(value) for key, value in metadata["fitted"].items()}
        extra = {attr: arrays[attr] for attr in _FITTED_ARRAYS if attr in arrays}
        if "classes_" in arrays:
            classes = arrays["classes_"]
            extra["classes_"] = classes.astype(object) if metadata.get("classes_dtype") == "object" else classes
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"the model file {path!r} does not describe a valid fastrnn model: {exc}") from exc
    # Everything is built and checked: only now does the estimator get its fitted state, all at once.
    estimator.__dict__.update(fitted)
    estimator.__dict__.update(extra)
    estimator.model_, estimator.head_ = layer, head
    return estimator
