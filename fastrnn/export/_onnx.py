"""``to_onnx``: a fastrnn layer stack or fitted estimator as a stand-alone ONNX model."""
import numpy as np

from ..nn.rnn import _RecurrentStack
from ._graph import MIN_OPSET, OnnxBuilder, emit_estimator, emit_stack
from ._optional import require


def to_onnx(model, path=None, opset=17, *, lengths=False, initial_state=False, dtype="float32"):
    """Export ``model`` as an ``onnx.ModelProto`` (written to ``path`` too when given).

    ``model`` is a ``fastrnn.nn.LSTM/GRU/RNN`` (any layers/directions) or a fitted fastrnn estimator.
    Batch and time axes are dynamic. Graph inputs and outputs:

    - layer: ``input`` ``(N, T, I)``; with ``initial_state=True`` also ``h0`` (and ``c0`` for an LSTM)
      ``(L*D, N, H)``; outputs ``output`` ``(N, T, D*H)``, ``h_n`` (and ``c_n``) ``(L*D, N, H)`` —
      exactly what the layer's ``forward`` returns.
    - estimator: ``X`` ``(N, T, F)`` in the user's units (the estimator's input scaling is in the
      graph); a regressor outputs ``predictions`` (shaped like ``predict``'s answer for 3-D X); a
      classifier outputs ``label_index`` (int64 index into ``classes_``), ``probabilities``
      (columns in the order of ``classes_``) and, for integer, float or string classes, ``label``.
    - ``lengths=True`` adds an int64 ``lengths`` ``(N,)`` input, the length of each padded sequence
      (ONNX ``sequence_lens``): ragged batches then give what fastrnn gives for them.

    ``dtype`` is the graph's float type: "float32" (the default, the only one ONNX Runtime's
    recurrent operators run) or "float64". Needs ``opset >= 14``.
    """
    onnx = require("onnx", "ONNX export")
    from onnx import TensorProto, helper

    if not isinstance(opset, (int, np.integer)) or opset < MIN_OPSET:
        raise ValueError(f"opset must be an integer >= {MIN_OPSET}; got {opset!r}")
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"dtype must be 'float32' or 'float64'; got {dtype}")
    float_type = TensorProto.FLOAT if dtype == np.float32 else TensorProto.DOUBLE
    builder = OnnxBuilder(opset)
    graph_inputs, graph_outputs = [], []

    def declare(name, elem_type, shape):
        graph_inputs.append(helper.make_tensor_value_info(name, elem_type, shape))
        return name

    def expose(value, name, elem_type, shape):
        builder.op("Identity", [value], outputs=[name])
        graph_outputs.append(helper.make_tensor_value_info(name, elem_type, shape))

    if isinstance(model, _RecurrentStack):
        x = declare("input", float_type, ["batch", "time", model.input_size])
        seq_lens = _lengths_input(builder, declare, TensorProto) if lengths else None
        h0 = c0 = None
        state_shape = [model.num_layers * model.num_directions, "batch", model.hidden_size]
        if initial_state:
            h0 = declare("h0", float_type, state_shape)
            if model._has_cell_state:
                c0 = declare("c0", float_type, state_shape)
        time_major = builder.op("Transpose", [x], perm=[1, 0, 2])
        sequence, h_n, c_n, _ = emit_stack(builder, model, time_major, dtype, seq_lens, h0, c0)
        width = model.num_directions * model.hidden_size
        expose(builder.op("Transpose", [sequence], perm=[1, 0, 2]), "output", float_type, ["batch", "time", width])
        expose(h_n, "h_n", float_type, state_shape)
        if c_n is not None:
            expose(c_n, "c_n", float_type, state_shape)
    else:
        _check_fitted_estimator(model)
        if initial_state:
            raise ValueError("initial_state=True applies to layers; an estimator always starts from zero states")
        x = declare("X", float_type, ["batch", "time", model.n_features_in_])
        seq_lens = _lengths_input(builder, declare, TensorProto) if lengths else None
        results = emit_estimator(builder, model, x, dtype, seq_lens)
        per_step = ["time"] if model.output == "sequence" else []
        if "predictions" in results:
            outputs = [] if model._y_was_1d else [model.n_outputs_]
            expose(results["predictions"], "predictions", float_type, ["batch"] + per_step + outputs)
        else:
            n_classes = len(model.classes_)
            expose(results["label_index"], "label_index", TensorProto.INT64, ["batch"] + per_step)
            expose(results["probabilities"], "probabilities", float_type, ["batch"] + per_step + [n_classes])
            classes = _classes_tensor(model.classes_)
            if classes is not None:
                labels = builder.op("Gather", [builder.constant(classes, "classes"), results["label_index"]], axis=0)
                expose(labels, "label", helper.np_dtype_to_tensor_dtype(classes.dtype) if classes.dtype != object
                       else TensorProto.STRING, ["batch"] + per_step)
    graph = helper.make_graph(builder.nodes, f"fastrnn_{type(model).__name__}", graph_inputs, graph_outputs, builder.initializers)
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", int(opset))],
                              producer_name="fastrnn", producer_version=_version())
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        onnx.save_model(proto, str(path))
    return proto


def _lengths_input(builder, declare, TensorProto):
    lengths = declare("lengths", TensorProto.INT64, ["batch"])
    return builder.op("Cast", [lengths], to=TensorProto.INT32)  # ONNX sequence_lens is int32


def _check_fitted_estimator(model):
    if not hasattr(model, "model_") or not hasattr(model, "head_"):
        from sklearn.exceptions import NotFittedError
        if hasattr(model, "get_params") and hasattr(model, "_cell"):
            raise NotFittedError(f"this {type(model).__name__} is not fitted yet: call fit before exporting it")
        raise TypeError(f"to_onnx exports fastrnn.nn.LSTM/GRU/RNN layers and fitted fastrnn estimators; "
                        f"got {type(model).__name__}")


def _classes_tensor(classes):
    """``classes_`` as a constant ONNX can gather from (None when the labels have no ONNX type)."""
    kind = np.asarray(classes).dtype.kind
    if kind in "iub":
        return np.asarray(classes, dtype=np.int64)
    if kind == "f":
        return np.asarray(classes, dtype=np.float64)
    if kind in "USO" and all(isinstance(c, (str, np.str_)) for c in classes):
        return np.array([str(c) for c in classes], dtype=object)
    return None


def _version():
    from .. import __version__
    return __version__
