"""make_student() for Keras 3 models: a narrower copy of a teacher, to distill into."""

import keras

from tfopt.core import distillation as _core
from tfopt.core import student_widths
from tfopt.keras3 import _clone
from tfopt.keras3 import _models
from tfopt.keras3.distillation import _teacher_start


class _Graph:
    """Keras 3's layer calls of a Sequential or Functional model, inputs first."""

    is_graph_model = staticmethod(_models.is_graph_model)

    @staticmethod
    def calls(model):
        graph = model._functional if isinstance(model, keras.Sequential) else model
        return [student_widths.Call(node.operation, node.input_tensors, node.output_tensors,
                                    node.arguments.args, node.arguments.kwargs)
                for depth in sorted(graph._nodes_by_depth, reverse=True)
                for node in graph._nodes_by_depth[depth] if not node.is_input]


def make_student(teacher, width=0.5, weights=None):
    """A copy of a Keras 3 `teacher` with its hidden layers `width` times as wide.

    The Keras 3 twin of `tfopt.distillation.make_student`, with the same width
    plan (`tfopt.core.student_widths`): Dense, Conv1D/2D/3D, SeparableConv,
    LSTM/GRU/SimpleRNN (also in Bidirectional and TimeDistributed) and
    Embedding layers get `width` times their units, filters or output_dim
    (rounded, at least 1), MultiHeadAttention its key_dim and value_dim.
    Layers keep their types, names and order; the layers that follow adapt
    (Reshape targets, depthwise-style grouped convolutions). Tensors joined by
    Add or Multiply narrow together, and a group keeps the teacher's width when
    it holds the model input, the model output or a layer whose width cannot
    change, so the student predicts the same classes. Train it with a
    `Distiller`.

    With ``weights="teacher"`` the student starts from the teacher's weights:
    each narrowed Dense or convolution keeps the teacher's units with the
    largest L1 norm (in a residual or squeeze-excite group, those of its first
    layer, which the others follow), and the layers after it
    (BatchNormalization, depthwise convolutions, Flatten and the next Dense or
    convolution) keep the matching weights: the same weights as tf-keras'
    make_student, which gets them by channel pruning and shrinking. Only
    Dense, Conv1D/2D/3D and SeparableConv1D/2D layers narrow then.

    Args:
      teacher: a built Sequential or Functional Keras 3 model (nested models
        are narrowed too).
      width: the fraction of units and filters to keep, in (0, 1]. Defaults
        to 0.5.
      weights: None for fresh random weights, or "teacher" to start from
        the teacher's strongest units. Defaults to None.

    Returns:
      A new Keras 3 model.

    Raises:
      ValueError: for a tf_keras, subclassed or pruned teacher, a width outside
        (0, 1], unknown `weights`, a layer Keras cannot rebuild at its new
        width, or (``weights="teacher"``) a narrowed layer whose followers'
        weights cannot be cut.

    Example:
      >>> student = make_student(teacher, width=0.25, weights="teacher")
      >>> distiller = Distiller(teacher, student)
    """
    _models.validate_graph_model(teacher, "make_student")
    _validate_not_pruned(teacher)
    width = _core.student_arguments(width, weights)
    narrowable = _teacher_start.narrowable if weights == "teacher" else (lambda layer: True)
    plan = student_widths.Plan(teacher, width, narrowable, _Graph)
    made = {}
    try:
        student = _narrow(teacher, plan, [t.shape for t in teacher.inputs], made)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"make_student cannot rebuild {teacher.name!r} at width {width}: {error} Build the "
            "student by hand, or report the layer that failed.") from None
    if weights == "teacher":
        _teacher_start.copy_weights(teacher, plan, made, _Graph, width)
    return student


def _validate_not_pruned(teacher):
    pruned = [layer.name for layer in _clone.all_layers(teacher)
              if student_widths.is_a(layer, "PruningMixin")]
    if pruned:
        raise ValueError(
            f"make_student needs a plain model; {teacher.name!r} still has pruned layers "
            f"{pruned[:3]}{' and more' if len(pruned) > 3 else ''}, which it would copy "
            "instead of narrowing. Strip first: "
            "make_student(tfopt.keras3.pruning.strip(teacher)).")


def _narrow(model, plan, input_shapes, made):
    """A copy of a Sequential or Functional `model` at the plan's widths, fresh weights.

    Rebuilt call by call, so each new layer is configured for the tensors it
    receives; nested models get inputs of their new widths. `made` maps the ids
    of the teacher's layers to the student's (shared layers stay shared).
    """
    inputs = [keras.Input(batch_shape=shape, dtype=t.dtype,
                          name=t._keras_history.operation.name)
              for t, shape in zip(model.inputs, input_shapes)]
    if isinstance(model, keras.Sequential):
        student = keras.Sequential(name=model.name)
        student.add(inputs[0])
        for call in _Graph.calls(model):
            current = student.outputs[0] if student.layers else inputs[0]
            student.add(_student_layer(call, [current], plan, made))
        return student
    new = {id(t): x for t, x in zip(model.inputs, inputs)}
    for call in _Graph.calls(model):
        args, kwargs = keras.tree.map_structure(lambda t: new.get(id(t), t),
                                                (call.args, call.kwargs))
        layer = _student_layer(call, [new[id(t)] for t in call.inputs], plan, made)
        outputs = layer(*args, **kwargs)
        for teacher_tensor, tensor in zip(call.outputs, keras.tree.flatten(outputs)):
            new[id(teacher_tensor)] = tensor
    return keras.Model(
        keras.tree.pack_sequence_as(model._inputs_struct, inputs),
        keras.tree.pack_sequence_as(model._outputs_struct, [new[id(t)] for t in model.outputs]),
        name=model.name)


def _student_layer(call, inputs, plan, made):
    """The student's layer for a teacher call, made once per teacher layer."""
    layer = call.layer
    if id(layer) not in made:
        if _models.is_graph_model(layer):
            made[id(layer)] = _narrow(layer, plan, [x.shape for x in inputs], made)
        elif not isinstance(layer, keras.layers.Layer):
            made[id(layer)] = layer  # a raw keras.ops operation: no weights, no width
        else:
            made[id(layer)] = layer.__class__.from_config(_student_config(call, inputs, plan))
    return made[id(layer)]


def _student_config(call, inputs, plan):
    """The layer's config at the plan's width and for the student's input widths."""
    layer = call.layer
    config = layer.get_config()
    if id(layer) in plan.units:
        key, inner = student_widths.width_key(layer)
        target = config if inner is layer else config["layer"]["config"]
        target[key] = plan.units[id(layer)]
        if config.get("backward_layer"):  # a Bidirectional with its own backward layer
            config["backward_layer"]["config"][key] = plan.units[id(layer)]
    config.update(plan.attention.get(id(layer), {}))
    if not inputs or not inputs[0].shape:
        return config
    before, after = call.inputs[0].shape[-1], inputs[0].shape[-1]
    if student_widths.is_a(layer, "Reshape") and config["target_shape"][-1] == before:
        config["target_shape"] = tuple(config["target_shape"][:-1]) + (after,)
    elif student_widths.depthwise_style(layer, before):
        config["filters"] = after * (config["filters"] // config["groups"])
        config["groups"] = after
    elif type(layer).__name__ in student_widths.PER_CHANNEL_CONFIG:
        config[student_widths.PER_CHANNEL_CONFIG[type(layer).__name__]] = after
    return config
