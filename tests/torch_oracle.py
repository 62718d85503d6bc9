"""Run the same model in PyTorch: the oracle for outputs, final states and all gradients."""
import numpy as np
import torch

TORCH_CLASSES = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "rnn_tanh": torch.nn.RNN, "rnn_relu": torch.nn.RNN}


def torch_twin(layer):
    """A ``torch.nn`` module with ``layer``'s configuration and weights (float64, batch_first)."""
    kwargs = dict(num_layers=layer.num_layers, bidirectional=layer.bidirectional, batch_first=True,
                  dropout=0.0, dtype=torch.float64)
    if layer.cell.startswith("rnn_"):
        kwargs["nonlinearity"] = layer.cell[4:]
    module = TORCH_CLASSES[layer.cell](layer.input_size, layer.hidden_size, **kwargs)
    module.load_state_dict({k: torch.tensor(v, dtype=torch.float64) for k, v in layer.state_dict().items()})
    return module


def torch_run(module, x, lengths, h0, c0, grad_output, grad_h_n, grad_c_n):
    """Forward and backward through ``module`` with packed sequences.

    Returns numpy arrays: output (N, T, D*H), h_n, c_n (or None), grad_x, grad_h0, grad_c0, and the
    parameter gradients keyed like ``state_dict()``.
    """
    lstm = isinstance(module, torch.nn.LSTM)
    N, T = x.shape[:2]
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    h0t = torch.tensor(h0, dtype=torch.float64, requires_grad=True)
    c0t = torch.tensor(c0, dtype=torch.float64, requires_grad=True) if lstm else None
    packed = torch.nn.utils.rnn.pack_padded_sequence(xt, torch.tensor(lengths), batch_first=True,
                                                     enforce_sorted=False)
    if lstm:
        packed_out, (h_n, c_n) = module(packed, (h0t, c0t))
    else:
        packed_out, h_n = module(packed, h0t)
        c_n = None
    out, _ = torch.nn.utils.rnn.pad_packed_sequence(packed_out, batch_first=True, total_length=T)
    loss = (out * torch.tensor(grad_output)).sum() + (h_n * torch.tensor(grad_h_n)).sum()
    if lstm:
        loss = loss + (c_n * torch.tensor(grad_c_n)).sum()
    module.zero_grad()
    loss.backward()
    as_np = lambda t: None if t is None else t.detach().numpy().copy()
    return dict(output=as_np(out), h_n=as_np(h_n), c_n=as_np(c_n), grad_x=as_np(xt.grad),
                grad_h0=as_np(h0t.grad), grad_c0=as_np(c0t.grad) if lstm else None,
                grads={name: as_np(p.grad) for name, p in module.named_parameters()})
