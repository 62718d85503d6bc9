"""Emit fastrnn models as ONNX nodes: the recurrent stack, the input scaling and the estimator heads.

Everything here writes through a small builder interface (``constant``, ``op``) so the same code
feeds both :func:`fastrnn.export.to_onnx` (a graph of our own) and the skl2onnx converter (nodes
added to skl2onnx's container).

Standard ONNX operators only. What differs from PyTorch's layout: ONNX gate orders (LSTM i,o,f,c;
GRU z,r,h), one ``B`` holding the input and recurrent biases side by side, ``Y`` shaped
``(T, D, B, H)`` time-major, and ``sequence_lens`` as int32.
"""
import numpy as np

MIN_OPSET = 14  # Reshape's allowzero, Squeeze/Unsqueeze with axes as inputs
# ONNX gate block k is PyTorch's block _GATE_ORDER[cell][k].
_GATE_ORDER = {"lstm": (0, 3, 1, 2), "gru": (1, 0, 2), "rnn": (0,)}
_ONNX_OP = {"lstm": "LSTM", "gru": "GRU", "rnn": "RNN"}


class OnnxBuilder:
    """Collects nodes and initializers for a stand-alone :class:`onnx.GraphProto`."""

    def __init__(self, opset):
        from onnx import helper, numpy_helper
        self._helper, self._numpy_helper = helper, numpy_helper
        self.opset = opset
        self.nodes, self.initializers = [], []
        self._count = 0

    def _name(self, hint):
        self._count += 1
        return f"{hint}_{self._count}"

    def constant(self, array, hint):
        """Add ``array`` as an initializer; return its name."""
        name = self._name(hint)
        self.initializers.append(self._numpy_helper.from_array(np.asarray(array), name))
        return name

    def op(self, op_type, inputs, n_outputs=1, outputs=None, **attrs):
        """Add one node; return its output name (a list when ``n_outputs > 1``). ``inputs`` may
        hold "" for an omitted optional input; ``outputs`` names them instead of fresh names."""
        outputs = outputs or [self._name(op_type.lower()) for _ in range(n_outputs)]
        self.nodes.append(self._helper.make_node(op_type, list(inputs), list(outputs),
                                                 name=self._name(op_type), **attrs))
        return outputs[0] if len(outputs) == 1 else outputs


# ------------------------------------------------------------------ the recurrent stack
def _layer_description(layer):
    cell = layer.cell.split("_")[0]  # "rnn_tanh" -> "rnn"
    return cell, getattr(layer, "nonlinearity", None)


def _reordered(array, cell, hidden_size):
    """Rows of a PyTorch ``(G*H, ...)`` weight or ``(G*H,)`` bias in ONNX gate order."""
    blocks = [array[k * hidden_size:(k + 1) * hidden_size] for k in _GATE_ORDER[cell]]
    return np.concatenate(blocks, axis=0)


def onnx_weights(layer, index, dtype):
    """``(W (D, G*H, I), R (D, G*H, H), B (D, 2*G*H))`` of layer ``index`` in ONNX layout."""
    cell, _ = _layer_description(layer)
    H = layer.hidden_size
    W, R, B = [], [], []
    for direction in range(layer.num_directions):
        w_ih, w_hh, b_ih, b_hh = layer._weights(index, direction)
        W.append(_reordered(w_ih, cell, H))
        R.append(_reordered(w_hh, cell, H))
        B.append(np.concatenate([_reordered(b_ih, cell, H), _reordered(b_hh, cell, H)]))
    return tuple(np.stack(part).astype(dtype) for part in (W, R, B))


def emit_stack(builder, layer, x_time_major, dtype, lengths=None, h0=None, c0=None):
    """Nodes running ``layer`` over ``x_time_major`` ``(T, B, I)``.

    ``lengths`` names an int32 ``(B,)`` tensor (or None: every sequence runs all T steps); ``h0``/``c0``
    name ``(L*D, B, H)`` tensors (or None: zeros). Returns the names of
    ``(output (T, B, D*H), h_n (L*D, B, H), c_n or None, top_h (D, B, H))``.
    """
    cell, nonlinearity = _layer_description(layer)
    D, H = layer.num_directions, layer.hidden_size
    attrs = dict(hidden_size=H, direction="bidirectional" if D == 2 else "forward")
    if cell == "gru":
        attrs["linear_before_reset"] = 1  # PyTorch applies r after the recurrent product
    if cell == "rnn":
        attrs["activations"] = [nonlinearity.capitalize()] * D
    merge_shape = builder.constant(np.array([0, 0, -1], dtype=np.int64), "merge_directions")
    sequence, finals_h, finals_c = x_time_major, [], []
    for index in range(layer.num_layers):
        W, R, B = (builder.constant(a, f"{name}_l{index}")
                   for a, name in zip(onnx_weights(layer, index, dtype), ("W", "R", "B")))
        inputs = [sequence, W, R, B, lengths or ""]
        initial = []
        for state in (h0, c0) if cell == "lstm" else (h0,):
            initial.append(_slice_layers(builder, state, index, D) if state is not None else "")
        inputs += initial
        while inputs and inputs[-1] == "":
            inputs.pop()
        n_outputs = 3 if cell == "lstm" else 2
        results = builder.op(_ONNX_OP[cell], inputs, n_outputs=n_outputs, **attrs)
        y, y_h = results[0], results[1]
        finals_h.append(y_h)
        if cell == "lstm":
            finals_c.append(results[2])
        # (T, D, B, H) -> (T, B, D, H) -> (T, B, D*H): directions side by side, as PyTorch does
        y = builder.op("Transpose", [y], perm=[0, 2, 1, 3])
        sequence = builder.op("Reshape", [y, merge_shape])
    h_n = builder.op("Concat", finals_h, axis=0) if len(finals_h) > 1 else finals_h[0]
    c_n = None
    if cell == "lstm":
        c_n = builder.op("Concat", finals_c, axis=0) if len(finals_c) > 1 else finals_c[0]
    return sequence, h_n, c_n, finals_h[-1]


def _slice_layers(builder, state, index, D):
    start = builder.constant(np.array([index * D], dtype=np.int64), "start")
    end = builder.constant(np.array([(index + 1) * D], dtype=np.int64), "end")
    axis = builder.constant(np.array([0], dtype=np.int64), "axis")
    return builder.op("Slice", [state, start, end, axis])


# ------------------------------------------------------------------ estimators
def emit_estimator(builder, estimator, x_batch_first, dtype, lengths=None):
    """Nodes from the user's ``X`` ``(N, T, F)`` to the estimator's answer.

    Returns ``{"predictions": name}`` for regressors (``(N[, k])`` or ``(N, T[, k])``, in ``y``'s
    units) and ``{"probabilities": name, "label_index": name}`` for classifiers (columns in the
    order of ``classes_``; the index is into ``classes_``).
    """
    mean = builder.constant(estimator.x_mean_.astype(dtype), "x_mean")
    scale = builder.constant(estimator.x_scale_.astype(dtype), "x_scale")
    scaled = builder.op("Div", [builder.op("Sub", [x_batch_first, mean]), scale])
    time_major = builder.op("Transpose", [scaled], perm=[1, 0, 2])
    sequence, _, _, top_h = emit_stack(builder, estimator.model_, time_major, dtype, lengths=lengths)
    if estimator.output == "sequence":
        features = builder.op("Transpose", [sequence], perm=[1, 0, 2])                 # (N, T, D*H)
    else:
        features = builder.op("Transpose", [top_h], perm=[1, 0, 2])                    # (N, D, H)
        features = builder.op("Reshape", [features, builder.constant(np.array([0, -1], np.int64), "flat")])
    weight = builder.constant(estimator.head_.params["weight"].T.astype(dtype), "head_weight")
    bias = builder.constant(estimator.head_.params["bias"].astype(dtype), "head_bias")
    z = builder.op("Add", [builder.op("MatMul", [features, weight]), bias])
    if hasattr(estimator, "classes_"):
        return _emit_probabilities(builder, estimator, z, dtype)
    y = builder.op("Add", [builder.op("Mul", [z, builder.constant(estimator.y_scale_.astype(dtype), "y_scale")]),
                           builder.constant(estimator.y_mean_.astype(dtype), "y_mean")])
    if estimator._y_was_1d:
        y = builder.op("Squeeze", [y, builder.constant(np.array([-1], np.int64), "last_axis")])
    return {"predictions": y}


def _emit_probabilities(builder, estimator, z, dtype):
    if len(estimator.classes_) == 2:
        p1 = builder.op("Sigmoid", [z])                                                  # (..., 1)
        p0 = builder.op("Sub", [builder.constant(np.array(1, dtype=dtype), "one"), p1])
        proba = builder.op("Concat", [p0, p1], axis=-1)
    else:
        proba = builder.op("Softmax", [z], axis=-1)
    index = builder.op("ArgMax", [proba], axis=-1, keepdims=0)
    return {"probabilities": proba, "label_index": index}
