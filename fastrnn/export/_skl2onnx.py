"""skl2onnx converters for the six estimators: ``register_skl2onnx()`` then ``skl2onnx.to_onnx(est, X[:1])``.

The graph is the one :func:`fastrnn.export.to_onnx` builds (same emitters), written into skl2onnx's
container: input scaling, the recurrent stack, the head; classifiers give skl2onnx's usual ``label``
and ``probabilities`` outputs (and its ZipMap unless ``options={"zipmap": False}``).
"""
import numpy as np

from ._graph import MIN_OPSET, emit_estimator
from ._optional import require


class _ContainerBuilder:
    """The builder interface of :mod:`._graph` over skl2onnx's scope and container."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def constant(self, array, hint):
        from onnx import TensorProto, numpy_helper
        name = self.scope.get_unique_variable_name(hint)
        array = np.asarray(array)
        if array.dtype == object:  # strings: make_tensor, not raw bytes
            self.container.add_initializer(name, TensorProto.STRING, list(array.shape),
                                           [str(v).encode() for v in array.ravel()])
        else:
            tensor = numpy_helper.from_array(array, name)
            self.container.add_initializer(name, tensor.data_type, list(array.shape), tensor)
        return name

    def op(self, op_type, inputs, n_outputs=1, outputs=None, **attrs):
        outputs = outputs or [self.scope.get_unique_variable_name(op_type.lower()) for _ in range(n_outputs)]
        self.container.add_node(op_type, list(inputs), list(outputs),
                                name=self.scope.get_unique_operator_name(op_type), **attrs)
        return outputs[0] if len(outputs) == 1 else outputs


def _is_classifier(estimator):
    return hasattr(estimator, "classes_")


def _batch_and_time(operator):
    shape = list(operator.inputs[0].type.shape)
    return shape[0], (shape[1] if len(shape) > 1 else None)


def _shape_calculator(operator):
    from skl2onnx.common.data_types import Int64TensorType, StringTensorType
    estimator = operator.raw_operator
    input_type = operator.inputs[0].type
    batch, steps = _batch_and_time(operator)
    per_step = [steps] if estimator.output == "sequence" else []
    float_type = type(input_type)
    if _is_classifier(estimator):
        label_type = Int64TensorType if _integer_labels(estimator.classes_) else StringTensorType
        operator.outputs[0].type = label_type([batch] + per_step)
        operator.outputs[1].type = float_type([batch] + per_step + [len(estimator.classes_)])
    else:
        outputs = [] if estimator._y_was_1d else [estimator.n_outputs_]
        operator.outputs[0].type = float_type([batch] + per_step + outputs)


def _integer_labels(classes):
    return np.asarray(classes).dtype.kind in "iub"


def _converter(scope, operator, container):
    from skl2onnx.common.data_types import DoubleTensorType
    estimator = operator.raw_operator
    if _is_classifier(estimator) and estimator.output == "sequence":
        raise NotImplementedError("skl2onnx's classifier outputs are one label per sample; for "
                                  "output='sequence' use fastrnn.export.to_onnx(estimator)")
    if _is_classifier(estimator) and np.asarray(estimator.classes_).dtype.kind == "f":
        raise NotImplementedError("skl2onnx labels are integers or strings; this classifier has float "
                                  "labels: use fastrnn.export.to_onnx(estimator) (outputs label_index)")
    if container.target_opset < MIN_OPSET:
        raise RuntimeError(f"fastrnn estimators need target_opset >= {MIN_OPSET}; got {container.target_opset}")
    builder = _ContainerBuilder(scope, container)
    dtype = np.float64 if isinstance(operator.inputs[0].type, DoubleTensorType) else np.float32
    x = operator.inputs[0].full_name
    rank = len(operator.inputs[0].type.shape)
    if rank == 2:  # univariate sequences (N, T), as predict accepts them
        if estimator.n_features_in_ != 1:
            raise RuntimeError(f"a 2-D input holds univariate sequences, but this estimator has "
                               f"{estimator.n_features_in_} features per step: declare a 3-D input type")
        x = builder.op("Unsqueeze", [x, builder.constant(np.array([2], np.int64), "feature_axis")])
    elif rank != 3:
        raise RuntimeError(f"fastrnn estimators take 3-D (N, T, F) or 2-D (N, T) inputs; got rank {rank}")
    results = emit_estimator(builder, estimator, x, dtype)
    if not _is_classifier(estimator):
        builder.op("Identity", [results["predictions"]], outputs=[operator.outputs[0].full_name])
        return
    classes = estimator.classes_
    table = (np.asarray(classes, dtype=np.int64) if _integer_labels(classes)
             else np.array([str(c) for c in classes], dtype=object))
    builder.op("Gather", [builder.constant(table, "classes"), results["label_index"]],
               outputs=[operator.outputs[0].full_name], axis=0)
    builder.op("Identity", [results["probabilities"]], outputs=[operator.outputs[1].full_name])


def register_skl2onnx():
    """Register converters for the six fastrnn estimators with skl2onnx (idempotent).

    After it, ``skl2onnx.to_onnx(estimator, X[:1])`` converts a fitted estimator, alone or at the end
    of a Pipeline. ``X[:1]`` fixes the time axis to X's length; pass
    ``initial_types=[("X", FloatTensorType([None, None, n_features]))]`` for any length. Classifiers
    with ``output="sequence"`` are not supported by skl2onnx's classifier outputs: export them with
    :func:`fastrnn.export.to_onnx`.
    """
    skl2onnx = require("skl2onnx", "Converting fastrnn estimators with skl2onnx")
    from .. import estimators
    for name in estimators.__all__:
        estimator_class = getattr(estimators, name)
        options = None
        if name.endswith("Classifier"):
            options = {"zipmap": [True, False, "columns"], "output_class_labels": [False, True], "nocl": [False]}
        skl2onnx.update_registered_converter(estimator_class, f"Fastrnn{name}", _shape_calculator,
                                             _converter, options=options)

