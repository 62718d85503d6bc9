"""scikit-learn estimators over the recurrent engine."""
from .classifier import GRUClassifier, LSTMClassifier, RNNClassifier
from .regressor import GRURegressor, LSTMRegressor, RNNRegressor

__all__ = ["LSTMRegressor", "GRURegressor", "RNNRegressor", "LSTMClassifier", "GRUClassifier", "RNNClassifier"]
