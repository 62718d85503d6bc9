"""The engine: recurrent layer stacks over any kernel backend (PyTorch-compatible layout)."""
from .rnn import GRU, LSTM, RNN

__all__ = ["LSTM", "GRU", "RNN"]
