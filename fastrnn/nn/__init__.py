"""The engine: recurrent layer stacks over any kernel backend (PyTorch-compatible layout)."""
from .embedding import Embedding
from .rnn import GRU, LSTM, RNN
from .seq2seq import Seq2Seq

__all__ = ["LSTM", "GRU", "RNN", "Seq2Seq", "Embedding"]
