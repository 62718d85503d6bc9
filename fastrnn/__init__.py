"""fastrnn: fast CPU recurrent neural networks (LSTM, GRU, RNN) with scikit-learn estimators.

Public names: the estimators (``LSTMRegressor``, ``GRUClassifier``, ...), the engine
(:mod:`fastrnn.nn`), :func:`make_windows`, :mod:`fastrnn.datasets`, and backend selection
(:func:`set_backend`, :func:`available_backends`).
"""
__version__ = "0.1.0"

from . import datasets, nn
from .estimators import (GRUClassifier, GRURegressor, LSTMClassifier, LSTMRegressor, RNNClassifier,
                         RNNRegressor)
from .kernels import available_backends, get_default_backend, set_backend
from .preprocessing import WindowTransformer, make_windows

__all__ = ["__version__", "nn", "datasets", "make_windows", "WindowTransformer", "LSTMRegressor", "LSTMClassifier", "GRURegressor", "GRUClassifier",
           "RNNRegressor", "RNNClassifier", "available_backends", "get_default_backend", "set_backend"]
