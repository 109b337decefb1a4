"""make_student(): a narrower copy of a teacher, to distill into."""

import tensorflow as tf
import tf_keras as keras
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from tfopt import _clone
from tfopt.core import distillation as _core
from tfopt.distillation import _widths
from tfopt.pruning import _callbacks
from tfopt.pruning import _prune
from tfopt.pruning import _registry
from tfopt.pruning import _schedules
from tfopt.pruning._shrink import shrink
from tfopt.pruning._wrapper import PruneWrapper

def make_student(teacher, width=0.5, weights=None):
    """A copy of `teacher` with its hidden layers `width` times as wide.

    Dense, convolution (1D/2D/3D, separable), LSTM/GRU/SimpleRNN (also inside
    Bidirectional and TimeDistributed) and Embedding layers get `width` times
    their units, filters or output_dim (rounded, at least 1); MultiHeadAttention
    gets `width` times its key_dim and value_dim. Layers keep their types,
    names, activations and order, and the layers that follow adapt: Reshape
    targets, LayerScale and depthwise-style grouped convolutions take the new
    channel count. Widths stay consistent across the graph: tensors joined by
    Add or Multiply (residual and squeeze-excite blocks) narrow together, and
    a group keeps the teacher's width when it holds the model input, the model
    output (the classifier, also one reached through Reshape or Flatten), or a
    layer whose width cannot change. The student predicts the same classes.
    Train it with a `Distiller`.

    With ``weights="teacher"`` the student starts from the teacher's own
    weights: each narrowed layer keeps the teacher's units with the largest L1
    norm, and the layers after it keep the matching input weights (channel
    pruning to the student's widths, then `tfopt.pruning.shrink`). Such a
    student is far from trained, but it learns much faster than a random one;
    benchmarks/results/distillation.md measures by how much. Only layers
    channel pruning can cut are narrowed then (not Bidirectional or
    MultiHeadAttention layers).

    Args:
      teacher: a built Sequential or Functional tf_keras model (nested models
        are narrowed too).
      width: the fraction of units and filters to keep, in (0, 1]. Defaults
        to 0.5, which leaves about a quarter of the weights of wide layers.
      weights: None for fresh random weights, or "teacher" to start from
        the teacher's strongest units. Defaults to None.

    Returns:
      A new, untrained Keras model.

    Raises:
      ValueError: for a subclassed, quantization-aware or unstripped pruned
        teacher, a width outside (0, 1], unknown `weights`, or a layer Keras
        cannot rebuild at its new width. With
        ``weights="teacher"``, also when channel pruning cannot cut a narrowed
        layer (e.g. one feeding a Concatenate).

    Example:
      >>> student = make_student(teacher, width=0.25, weights="teacher")
      >>> distiller = Distiller(teacher, student, teacher_outputs="probabilities")
    """
    _clone.validate_model(teacher, "make_student")
    _validate_not_pruned(teacher)
    width = _core.student_arguments(width, weights)
    narrowable = _channel_prunable if weights == "teacher" else (lambda layer: True)
    plan = _widths.Plan(teacher, width, narrowable)
    try:
        student = _narrow(teacher, plan, [t.shape for t in teacher.inputs], {})
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"make_student cannot rebuild {teacher.name!r} at width {width}: {error} Build the "
            "student by hand, or report the layer that failed."
        ) from None
    if weights == "teacher":
        student.set_weights(_teacher_weights(teacher, width, plan.narrowed(), student))
    return student


def _validate_not_pruned(teacher):
    pruned = [layer.name for layer in _clone.all_layers(teacher)
              if isinstance(layer, (PruneWrapper, pruning_wrapper.PruneLowMagnitude))]
    if pruned:
        raise ValueError(
            f"make_student needs a plain model; {teacher.name!r} still holds pruning wrappers "
            f"{pruned[:3]}{' and more' if len(pruned) > 3 else ''}, which it would copy "
            "instead of narrowing. Strip first: make_student(tfopt.pruning.strip(teacher)).")


def _channel_prunable(layer):
    spec = _registry.spec_for(layer)
    return spec is not None and spec.channel_capable


def _teacher_weights(teacher, width, narrowed, student):
    """The teacher's weights cut down to `student`'s widths by L1-magnitude channel pruning.

    `narrowed` maps the names of the narrowed layers to their units.
    """
    try:
        # The schedule is never consulted: each layer is pruned to its own width below.
        pruned = _prune.prune(teacher, _schedules.OneShot(0.5), structure="channels")
    except ValueError:  # not one layer can lose channels
        raise _cannot_cut(teacher, width, sorted(narrowed)) from None
    for leader, followers in _callbacks.pruned_groups(pruned):
        units = leader.unit_mask().size
        kept = narrowed.get(leader.layer.name, units)
        unit_mask = leader.prune_to(1.0 - kept / units)
        for follower in followers:
            follower.apply_unit_mask(unit_mask)
    cut = shrink(pruned)
    uncut = [mine.name for mine, theirs in zip(_clone.all_layers(student), _clone.all_layers(cut))
             if [w.shape for w in mine.weights] != [w.shape for w in theirs.weights]]
    if uncut:  # name the narrowed layers; their followers and consumers differ with them
        raise _cannot_cut(teacher, width, [name for name in uncut if name in narrowed] or uncut)
    return cut.get_weights()


def _cannot_cut(teacher, width, layers):
    return ValueError(
        f"make_student(weights='teacher') cannot cut {teacher.name!r} to width {width}: "
        f"channel pruning cannot narrow the layers {layers} (their channels reach a "
        "Concatenate or another layer it cannot cut through; the pruning log says which). "
        "Use weights=None for a randomly initialized student."
    )


def _narrow(model, plan, input_shapes, made):
    """A copy of a Sequential or Functional `model` at the plan's widths, fresh weights.

    Rebuilt node by node, so each new layer is configured for the tensors it
    actually receives; nested models get inputs of their new widths. `made`
    maps the ids of the teacher's layers to the student's (shared layers stay
    shared).
    """
    inputs = [keras.Input(batch_shape=shape, dtype=t.dtype, name=t._keras_history.layer.name)
              for t, shape in zip(model.inputs, input_shapes)]
    if isinstance(model, keras.Sequential):
        student = keras.Sequential(name=model.name)
        student.add(inputs[0])
        for node in _nodes(model):
            student.add(_student_layer(node, [student.outputs[0]], plan, made))
        return student
    new = {id(t): x for t, x in zip(model.inputs, inputs)}
    for node in _nodes(model):
        args, kwargs = tf.nest.map_structure(lambda t: new.get(id(t), t),
                                             (node.call_args, node.call_kwargs))
        layer = _student_layer(node, [new[id(t)] for t in node.keras_inputs], plan, made)
        outputs = layer(*args, **kwargs)
        for teacher_tensor, tensor in zip(tf.nest.flatten(node.outputs),
                                          tf.nest.flatten(outputs)):
            new[id(teacher_tensor)] = tensor
    return keras.Model(
        tf.nest.pack_sequence_as(model._nested_inputs, inputs),
        tf.nest.pack_sequence_as(model._nested_outputs, [new[id(t)] for t in model.outputs]),
        name=model.name)


def _nodes(model):
    """The model's layer calls in an order where inputs come first."""
    return [node for depth in sorted(model._nodes_by_depth, reverse=True)
            for node in model._nodes_by_depth[depth] if not node.is_input]


def _student_layer(node, inputs, plan, made):
    """The student's layer for a teacher node, made once per teacher layer."""
    layer = node.layer
    if id(layer) not in made:
        if _clone.is_graph_model(layer):
            made[id(layer)] = _narrow(layer, plan, [x.shape for x in inputs], made)
        else:
            config = _student_config(node, inputs, plan)
            made[id(layer)] = layer.__class__.from_config(config)
    return made[id(layer)]


def _student_config(node, inputs, plan):
    """The layer's config at the plan's width and for the student's input widths."""
    layer, teacher_inputs = node.layer, node.keras_inputs
    config = layer.get_config()
    if id(layer) in plan.units:
        key, inner = _widths.width_key(layer)
        target = config if inner is layer else config["layer"]["config"]
        target[key] = plan.units[id(layer)]
        if "backward_layer" in config:  # a Bidirectional with its own backward layer
            config["backward_layer"]["config"][key] = plan.units[id(layer)]
    config.update(plan.attention.get(id(layer), {}))
    if isinstance(layer, keras.layers.MultiHeadAttention):
        config.update(_attention_shapes(node, inputs))
    if not inputs or not inputs[0].shape.rank:
        return config
    before, after = teacher_inputs[0].shape[-1], inputs[0].shape[-1]
    if isinstance(layer, keras.layers.Reshape) and config["target_shape"][-1] == before:
        config["target_shape"] = tuple(config["target_shape"][:-1]) + (after,)
    elif _widths.depthwise_style(layer, before):
        config["filters"] = after * (config["filters"] // config["groups"])
        config["groups"] = after
    elif type(layer).__name__ in _widths.PER_CHANNEL_CONFIG:
        config[_widths.PER_CHANNEL_CONFIG[type(layer).__name__]] = after
    return config


def _attention_shapes(node, inputs):
    """MultiHeadAttention builds from the shapes in its config: give it the student's."""
    new = {id(t): x for t, x in zip(node.keras_inputs, inputs)}
    args, kwargs = list(node.call_args), node.call_kwargs
    names = ("query", "value", "key")
    given = {name: kwargs.get(name, args[i] if i < len(args) else None)
             for i, name in enumerate(names)}
    given["key"] = given["key"] if given["key"] is not None else given["value"]
    return {f"{name}_shape": tf.TensorShape(new[id(tensor)].shape)
            for name, tensor in given.items()}
