"""make_student(): a narrower copy of a teacher, to distill into."""

import tf_keras as keras

from tfopt import _clone
from tfopt.pruning import _callbacks
from tfopt.pruning import _prune
from tfopt.pruning import _schedules
from tfopt.pruning._shrink import shrink

_WEIGHTS = (None, "teacher")

_L = keras.layers
_WIDTH_KEYS = ((_L.Dense, "units"), (_L.SeparableConv1D, "filters"),
               (_L.SeparableConv2D, "filters"), (_L.Conv1D, "filters"), (_L.Conv2D, "filters"),
               (_L.Conv3D, "filters"), (_L.LSTM, "units"), (_L.GRU, "units"),
               (_L.SimpleRNN, "units"))


def _width_key(layer):
    if isinstance(layer, _L.DepthwiseConv2D):  # follows its input's channels
        return None
    return next((key for kind, key in _WIDTH_KEYS if isinstance(layer, kind)), None)


def make_student(teacher, width=0.5, weights=None):
    """A copy of `teacher` with every hidden Dense/Conv/RNN layer `width` times as wide.

    Layers keep their types, activations and order; units and filters are
    scaled (rounded, at least 1), the output layers keep theirs so the student
    predicts the same classes. Train the student with a `Distiller`.

    With ``weights="teacher"`` the student starts from the teacher's own
    weights: each narrowed layer keeps the teacher's units with the largest L1
    norm, and the layers after it keep the matching input weights (channel
    pruning to the student's widths, then `tfopt.pruning.shrink`). Such a
    student is far from trained, but it learns much faster than a random one;
    benchmarks/results/distillation.md measures by how much.

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
      ValueError: for a subclassed teacher, a width outside (0, 1], unknown
        `weights`, or a graph that cannot be narrowed consistently: a residual
        Add joining the model input with a narrowed layer, or a nested model
        (which declares its own input width) fed by a narrowed layer. With
        ``weights="teacher"``, also when channel pruning cannot cut a narrowed
        layer (e.g. one feeding a residual Add).

    Example:
      >>> student = make_student(teacher, width=0.25, weights="teacher")
      >>> distiller = Distiller(teacher, student)
    """
    _clone.validate_model(teacher, "make_student")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width!r}: the fraction of each hidden "
                         "layer's units and filters the student keeps.")
    if weights not in _WEIGHTS:
        raise ValueError(f"weights must be one of {list(_WEIGHTS)}, got {weights!r}: None "
                         "starts the student from random weights, 'teacher' from the "
                         "teacher's strongest units.")
    keep = {layer.name for layer in _output_layers(teacher)}
    try:
        student = _narrow(teacher, width, keep)
    except ValueError as error:
        raise ValueError(
            f"make_student cannot narrow {teacher.name!r} consistently: {error} Layers that "
            "must keep matching widths (e.g. a residual Add with the input) need a student "
            "built by hand."
        ) from None
    if weights == "teacher":
        student.set_weights(_teacher_weights(teacher, width, keep, student))
    return student


def _teacher_weights(teacher, width, keep, student):
    """The teacher's weights cut down to `student`'s widths by L1-magnitude channel pruning."""
    narrowed = [layer.name for layer in _clone.all_layers(student)
                if _width_key(layer) is not None and layer.name not in keep]
    try:
        # The schedule is never consulted: each layer is pruned to its own width below.
        pruned = _prune.prune(teacher, _schedules.OneShot(0.5), structure="channels")
    except ValueError:  # not one layer can lose channels
        raise _cannot_cut(teacher, width, narrowed) from None
    for leader, followers in _callbacks.pruned_groups(pruned):
        units = leader.unit_mask().size
        kept = units if leader.layer.name in keep else max(1, int(round(units * width)))
        unit_mask = leader.prune_to(1.0 - kept / units)
        for follower in followers:
            follower.apply_unit_mask(unit_mask)
    cut = shrink(pruned)
    uncut = [mine.name for mine, theirs in zip(_clone.all_layers(student), _clone.all_layers(cut))
             if [w.shape for w in mine.weights] != [w.shape for w in theirs.weights]]
    if uncut:
        raise _cannot_cut(teacher, width, uncut)
    return cut.get_weights()


def _cannot_cut(teacher, width, layers):
    return ValueError(
        f"make_student(weights='teacher') cannot cut {teacher.name!r} to width {width}: "
        f"channel pruning cannot narrow the layers {layers} (they feed a residual Add or "
        "another layer that needs their full width). Use weights=None for a randomly "
        "initialized student."
    )


def _narrow(model, width, keep):
    """Clones `model` with fresh weights and narrower layers, except those in `keep`.

    A nested model is narrowed throughout: its last layer is not the teacher's output.
    """

    def narrow(layer):
        if _clone.is_graph_model(layer):
            return _narrow(layer, width, keep=set())
        config = layer.get_config()
        key = _width_key(layer)
        if key is not None and layer.name not in keep:
            config[key] = max(1, int(round(config[key] * width)))
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=narrow)


def _output_layers(model):
    if isinstance(model, keras.Sequential):
        return model.layers[-1:]
    return [model.get_layer(name) for name in model.output_names]
