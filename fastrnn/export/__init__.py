"""Models leave and enter fastrnn unchanged: ONNX export, a PyTorch round trip, skl2onnx converters.

- :func:`to_onnx` — a layer (``fastrnn.nn.LSTM/GRU/RNN``) or a fitted estimator as an ONNX model of
  standard ``LSTM``/``GRU``/``RNN`` operators, runnable by ONNX Runtime (needs ``onnx``).
- :func:`to_torch` / :func:`from_torch` — the same model as a ``torch.nn.Module`` and back (needs
  ``torch``).
- :func:`register_skl2onnx` — teaches skl2onnx the six estimators, so ``skl2onnx.to_onnx(estimator,
  X[:1])`` works (needs ``skl2onnx``).

The optional packages are imported only when these functions run; a missing one is named in the error.
"""
from ._onnx import to_onnx
from ._skl2onnx import register_skl2onnx
from ._torch import from_torch, to_torch

__all__ = ["to_onnx", "to_torch", "from_torch", "register_skl2onnx"]
