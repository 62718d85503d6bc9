"""fastrnn: fast CPU recurrent neural networks (LSTM, GRU, RNN) with scikit-learn estimators.

Public names: the estimators (``LSTMRegressor``, ``GRUClassifier``, ...), the engine
(:mod:`fastrnn.nn`), :func:`make_windows`, :mod:`fastrnn.datasets`, and backend selection
(:func:`set_backend`, :func:`available_backends`).
"""
__version__ = "0.1.0"

import importlib

from . import nn
from .kernels import available_backends, get_default_backend, get_num_threads, set_backend, set_num_threads

# The estimators, the datasets and the preprocessing helpers need scikit-learn, whose import takes
# about a second: they load on first use, so a service that only runs ``fastrnn.nn`` starts fast.
_LAZY_NAMES = {name: "estimators" for name in ("LSTMRegressor", "LSTMClassifier", "GRURegressor", "GRUClassifier",
                                               "RNNRegressor", "RNNClassifier")}
_LAZY_NAMES.update(make_windows="preprocessing", WindowTransformer="preprocessing", load="persistence",
                   save="persistence", CharLM="charlm", Seq2SeqForecaster="seq2seq",
                   Seq2SeqTranslator="seq2seq")
# export (onnx/torch), dask and plot need optional extras: they import them only when used.
_LAZY_MODULES = ("datasets", "estimators", "preprocessing", "persistence", "export", "dask", "plot", "charlm",
                 "seq2seq")

__all__ = ["__version__", "nn", "datasets", "make_windows", "WindowTransformer", "LSTMRegressor", "LSTMClassifier",
           "GRURegressor", "GRUClassifier", "RNNRegressor", "RNNClassifier", "available_backends",
           "get_default_backend", "set_backend", "get_num_threads", "set_num_threads", "load", "save", "CharLM",
           "Seq2SeqForecaster", "Seq2SeqTranslator"]


def __getattr__(name):
    if name in _LAZY_MODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _LAZY_NAMES:
        value = getattr(importlib.import_module(f".{_LAZY_NAMES[name]}", __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'fastrnn' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
