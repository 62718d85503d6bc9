"""PyTorch modules that reproduce fitted fastrnn estimators (imported only when torch is wanted)."""
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence


class EstimatorModule(torch.nn.Module):
    """A fitted fastrnn estimator as a ``torch.nn.Module``: input scaling, the recurrent stack, the head.

    ``forward(x (N, T, F), lengths=None)`` returns what the estimator's ``predict`` (regressors, in
    ``y``'s units) or ``predict_proba`` (classifiers, columns in the order of ``classes_``) returns
    for a 3-D ``X``: ``(N[, k])`` for output="last", ``(N, T[, k])`` for output="sequence" (steps past
    a sequence's length hold the head's answer for a zero recurrent output, as fastrnn pads them).
    """

    def __init__(self, rnn, head, x_mean, x_scale, output, task, y_mean=None, y_scale=None, squeeze=False):
        super().__init__()
        self.rnn, self.head = rnn, head
        self.output, self.task, self.squeeze = output, task, squeeze
        self.register_buffer("x_mean", x_mean)
        self.register_buffer("x_scale", x_scale)
        if y_mean is not None:
            self.register_buffer("y_mean", y_mean)
            self.register_buffer("y_scale", y_scale)

    def forward(self, x, lengths=None):
        x = (x - self.x_mean) / self.x_scale
        steps = x.shape[1]
        if lengths is not None:
            x = pack_padded_sequence(x, torch.as_tensor(lengths, device="cpu"), batch_first=True,
                                     enforce_sorted=False)
        sequence, h_n = self.rnn(x)
        if isinstance(h_n, tuple):  # LSTM: (h_n, c_n)
            h_n = h_n[0]
        if self.output == "sequence":
            if lengths is not None:
                sequence, _ = pad_packed_sequence(sequence, batch_first=True, total_length=steps)
            features = sequence
        else:
            directions = 2 if self.rnn.bidirectional else 1
            features = torch.cat([h_n[-directions + d] for d in range(directions)], dim=1)
        z = self.head(features)
        if self.task == "regression":
            y = z * self.y_scale + self.y_mean
            return y[..., 0] if self.squeeze else y
        if z.shape[-1] == 1:  # binary: one logit
            p = torch.sigmoid(z)
            return torch.cat([1 - p, p], dim=-1)
        return torch.softmax(z, dim=-1)
