"""One callable per (system, shape, cell, mode): what the peer script and the pytest-benchmark cases time.

Systems: fastrnn on a named backend, PyTorch (``nn.LSTM``/``nn.GRU``, ``batch_first=True``) and
ONNX Runtime (the PyTorch model exported with ``torch.onnx.export``). All start from the same
weights (a fastrnn layer built with ``random_state=0``, copied into PyTorch) and the same inputs.
Peers are optional: :func:`peer_status` says which import here.
"""
import importlib
import io
import sys
import warnings

import numpy as np

from _training import initial_head, make_training_step


def peer_status():
    """``{name: version or None}`` for the optional peers ``torch`` and ``onnxruntime``."""
    status = {}
    for name in ("torch", "onnxruntime"):
        try:
            status[name] = importlib.import_module(name).__version__
        except ImportError:
            status[name] = None
    return status


def set_threads(n):
    """Use ``n`` threads in every system: fastrnn's kernels, NumPy's BLAS, PyTorch (if imported).

    ``fastrnn.set_num_threads`` loads fastrnn's compiled backends before anything else starts an
    OpenMP runtime, so fastrnn's choice of waiting policy applies as it would in a user's program
    (see fastrnn/kernels/_openmp.py).
    """
    import fastrnn
    from threadpoolctl import threadpool_limits

    fastrnn.set_num_threads(n)
    threadpool_limits(n, user_api="blas")
    torch = sys.modules.get("torch")  # only if a peer already imported it: torch is slow to import
    if torch is not None:
        torch.set_num_threads(n)


def backend_supports(backend, cell):
    """None if fastrnn's ``backend`` has kernels for ``cell`` here, else the reason it has not."""
    from fastrnn.kernels import cell_kernels

    try:
        cell_kernels(cell, backend)
    except (ImportError, AttributeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _layer_class(cell):
    import fastrnn.nn

    return {"lstm": fastrnn.nn.LSTM, "gru": fastrnn.nn.GRU}[cell]


def reference_state(shape, cell, seed=0):
    """The shared initial weights: a fastrnn layer's ``state_dict()`` (PyTorch names and layout)."""
    layer = _layer_class(cell)(shape.I, shape.H, num_layers=shape.layers, backend="reference",
                               random_state=seed)
    return layer.state_dict()


def fastrnn_call(shape, cell, mode, backend, x, y, state):
    """Callable running one inference forward or one training step of fastrnn on ``backend``."""
    layer = _layer_class(cell)(shape.I, shape.H, num_layers=shape.layers, backend=backend)
    layer.load_state_dict(state)
    if mode == "training":
        return make_training_step(layer, x, y)
    layer.eval()
    # need_grad=False: inference does not keep the activations a backward pass would read (the peers'
    # inference, under torch.no_grad and in ONNX Runtime, does not either).
    return lambda: layer.forward(x, need_grad=False)


def _torch_model(shape, cell, state):
    import torch

    module = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[cell]
    model = module(shape.I, shape.H, num_layers=shape.layers, batch_first=True)
    model.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in state.items()})
    return model


def torch_call(shape, cell, mode, x, y, state):
    """Callable running PyTorch: ``no_grad`` forward, or forward + MSE + backward + Adam step."""
    import torch

    model = _torch_model(shape, cell, state)
    inputs = torch.from_numpy(x)
    if mode == "inference":
        model.eval()

        def forward():
            with torch.no_grad():
                return model(inputs)

        return forward
    weight, bias = initial_head(shape.H)
    head = torch.nn.Linear(shape.H, 1)
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(weight))
        head.bias.copy_(torch.from_numpy(bias))
    target = torch.from_numpy(y)
    optimiser = torch.optim.Adam(list(model.parameters()) + list(head.parameters()), lr=1e-3)
    model.train()

    def step():
        optimiser.zero_grad(set_to_none=True)
        output = model(inputs)[0]
        loss = torch.nn.functional.mse_loss(head(output[:, -1, :]), target)
        loss.backward()
        optimiser.step()
        return loss

    return step


def export_onnx(shape, cell, state):
    """The PyTorch model of this shape as ONNX bytes (fixed input shape, opset 17).

    torch 2.13's default exporter (``dynamo=True``) needs the ``onnxscript`` package; the
    TorchScript exporter (``dynamo=False``) needs nothing extra and emits ONNX's native
    ``LSTM``/``GRU`` operators, which is what ONNX Runtime's fused kernels run.
    """
    import torch

    model = _torch_model(shape, cell, state).eval()
    example = torch.zeros((shape.B, shape.T, shape.I), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (example,), buffer, input_names=["x"], opset_version=17, dynamo=False)
    return buffer.getvalue()


def onnx_call(shape, cell, x, state, threads):
    """Callable running the exported model in ONNX Runtime with ``threads`` intra-op threads."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    session = ort.InferenceSession(export_onnx(shape, cell, state), options,
                                   providers=["CPUExecutionProvider"])
    feed = {"x": x}
    return lambda: session.run(None, feed)
