"""make_student(): a narrower copy of a teacher, to distill into."""

import tf_keras as keras

from tfopt import _clone

_L = keras.layers
_WIDTH_KEYS = ((_L.Dense, "units"), (_L.SeparableConv1D, "filters"),
               (_L.SeparableConv2D, "filters"), (_L.Conv1D, "filters"), (_L.Conv2D, "filters"),
               (_L.Conv3D, "filters"), (_L.LSTM, "units"), (_L.GRU, "units"),
               (_L.SimpleRNN, "units"))


def _width_key(layer):
    if isinstance(layer, _L.DepthwiseConv2D):  # follows its input's channels
        return None
    return next((key for kind, key in _WIDTH_KEYS if isinstance(layer, kind)), None)


def make_student(teacher, width=0.5):
    """A copy of `teacher` with every hidden Dense/Conv/RNN layer `width` times as wide.

    Layers keep their types, activations and order; units and filters are
    scaled (rounded, at least 1), the output layers keep theirs so the student
    predicts the same classes. Weights are freshly initialized: train the
    student with a `Distiller`.

    Args:
      teacher: a built Sequential or Functional tf_keras model (nested models
        are narrowed too).
      width: the fraction of units and filters to keep, in (0, 1]. Defaults
        to 0.5, which leaves about a quarter of the weights of wide layers.

    Returns:
      A new, untrained Keras model.

    Raises:
      ValueError: for a subclassed teacher, a width outside (0, 1], or a graph
        that cannot be narrowed consistently: a residual Add joining the model
        input with a narrowed layer, or a nested model (which declares its own
        input width) fed by a narrowed layer.

    Example:
      >>> student = make_student(teacher, width=0.25)
      >>> distiller = Distiller(teacher, student)
    """
    _clone.validate_model(teacher, "make_student")
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width!r}: the fraction of each hidden "
                         "layer's units and filters the student keeps.")
    keep = {layer.name for layer in _output_layers(teacher)}
    try:
        return _narrow(teacher, width, keep)
    except ValueError as error:
        raise ValueError(
            f"make_student cannot narrow {teacher.name!r} consistently: {error} Layers that "
            "must keep matching widths (e.g. a residual Add with the input) need a student "
            "built by hand."
        ) from None


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
