"""PyTorch round trip: ``to_torch`` and ``from_torch``."""
import numpy as np

from .. import nn
from ..nn.rnn import _RecurrentStack
from ._optional import require

_TORCH_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64"}


def to_torch(model):
    """The same model as a ``torch.nn.Module`` in eval mode, on the CPU, in the model's dtype.

    A layer becomes ``torch.nn.LSTM/GRU/RNN(..., batch_first=True)`` with identical parameters; a
    fitted estimator becomes a module holding its input scaling, recurrent stack and head, whose
    ``forward(x, lengths=None)`` returns ``predict``'s answer (regressors) or ``predict_proba``'s
    (classifiers) for a 3-D ``x``.
    """
    torch = require("torch", "to_torch")
    if isinstance(model, _RecurrentStack):
        return _torch_stack(torch, model).eval()
    if not (hasattr(model, "model_") and hasattr(model, "head_")):
        if hasattr(model, "_cell"):
            from sklearn.exceptions import NotFittedError
            raise NotFittedError(f"this {type(model).__name__} is not fitted yet: call fit before to_torch")
        raise TypeError(f"to_torch converts fastrnn.nn.LSTM/GRU/RNN layers and fitted fastrnn estimators; "
                        f"got {type(model).__name__}")
    from ._torch_modules import EstimatorModule
    dtype = getattr(torch, _TORCH_DTYPES[model.model_.dtype])
    tensor = lambda a: torch.tensor(np.asarray(a), dtype=dtype)
    weight = model.head_.params["weight"]
    head = torch.nn.Linear(weight.shape[1], weight.shape[0], dtype=dtype)
    head.load_state_dict({name: tensor(value) for name, value in model.head_.params.items()})
    extra = {}
    if hasattr(model, "classes_"):
        task = "classification"
    else:
        task = "regression"
        extra = dict(y_mean=tensor(model.y_mean_), y_scale=tensor(model.y_scale_), squeeze=model._y_was_1d)
    module = EstimatorModule(_torch_stack(torch, model.model_), head, tensor(model.x_mean_), tensor(model.x_scale_),
                             model.output, task, **extra)
    return module.eval()


def _torch_stack(torch, layer):
    kwargs = dict(num_layers=layer.num_layers, bias=True, batch_first=True, dropout=layer.dropout,
                  bidirectional=layer.bidirectional, dtype=getattr(torch, _TORCH_DTYPES[layer.dtype]))
    if layer.cell.startswith("rnn"):
        module = torch.nn.RNN(layer.input_size, layer.hidden_size, nonlinearity=layer.nonlinearity, **kwargs)
    else:
        module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[layer.cell](layer.input_size, layer.hidden_size,
                                                                           **kwargs)
    module.load_state_dict({name: torch.from_numpy(value.copy()) for name, value in layer.params.items()})
    return module


def from_torch(module, backend="auto"):
    """A ``fastrnn.nn.LSTM/GRU/RNN`` with the parameters of ``torch.nn.LSTM/GRU/RNN`` ``module``.

    Every option fastrnn has carries over (layers, bidirectional, dropout, nonlinearity, float32 or
    float64). ``bias=False`` becomes zero biases (the same function). fastrnn layers are batch-first
    whatever ``module.batch_first`` says; the parameters do not depend on it. ``proj_size``,
    half-precision and other dtypes raise ValueError.
    """
    torch = require("torch", "from_torch")
    kinds = {torch.nn.LSTM: nn.LSTM, torch.nn.GRU: nn.GRU, torch.nn.RNN: nn.RNN}
    layer_class = kinds.get(type(module))
    if layer_class is None:
        raise TypeError(f"from_torch converts torch.nn.LSTM, torch.nn.GRU and torch.nn.RNN modules; got "
                        f"{type(module).__name__} (cells such as LSTMCell have no fastrnn counterpart: wrap "
                        f"their weights in a one-layer torch.nn.LSTM)")
    if getattr(module, "proj_size", 0):
        raise ValueError(f"fastrnn has no LSTM projections: this module has proj_size={module.proj_size}")
    state = {name: value.detach().cpu() for name, value in module.state_dict().items()}
    dtype = next(iter(state.values())).dtype
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"fastrnn layers are float32 or float64; this module's parameters are {dtype}: "
                         f"convert it first, e.g. module.float()")
    kwargs = dict(num_layers=module.num_layers, bidirectional=module.bidirectional, dropout=float(module.dropout),
                  dtype=np.float32 if dtype == torch.float32 else np.float64, backend=backend)
    if layer_class is nn.RNN:
        kwargs["nonlinearity"] = module.nonlinearity
    layer = layer_class(module.input_size, module.hidden_size, **kwargs)
    params = {name: value.numpy() for name, value in state.items()}
    if not module.bias:
        params.update({name: np.zeros_like(value) for name, value in layer.params.items() if name.startswith("bias")})
    layer.load_state_dict(params)
    return layer
