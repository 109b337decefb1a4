"""Feature (hint) distillation between layers of different widths, on keras.distillation.

`keras.distillation.FeatureDistillation` compares the two activations as they
are, so a 16-channel teacher layer and a 4-channel student layer fail inside
`fit` ("Dimensions must be equal"). `Hint` is a FeatureDistillation that first
maps the student's activation to the teacher's width through a learned Dense
layer on the channel axis (a 1x1 convolution for images), which the Distiller
owns and trains with the student.
"""

import keras

from tfopt.core import distillation as _core
from tfopt.keras3 import _models


class Hint(keras.distillation.FeatureDistillation):
    """Mean squared error between a teacher layer's activation and a student layer's.

    Args:
      teacher_layer_name: the teacher layer whose activation is the target.
      student_layer_name: the student layer that learns it.
      projection: None when the widths agree, else the layer mapping the
        student's activation to the teacher's width.
    """

    def __init__(self, teacher_layer_name, student_layer_name, projection=None):
        super().__init__(loss="mse", teacher_layer_name=teacher_layer_name,
                         student_layer_name=student_layer_name)
        self.projection = projection

    def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
        if self.projection is not None:
            student_outputs = self.projection(student_outputs)
        return super().compute_loss(teacher_outputs, student_outputs, **kwargs)


def hints(teacher, student, pairs):
    """[Hint] for the (teacher layer, student layer) pairs, with projections where needed."""
    made = []
    for i, pair in enumerate(pairs):
        teacher_output = layer_output(teacher, pair[0], "teacher")
        student_output = layer_output(student, pair[1], "student")
        projection = None
        if _core.hint_shapes(teacher_output.shape, student_output.shape, pair):
            projection = keras.layers.Dense(teacher_output.shape[-1],
                                            name=f"hint_projection_{i}")
            projection.build(student_output.shape)
        made.append(Hint(pair[0], pair[1], projection))
    return made


def layer_output(model, name, role):
    """The symbolic output of a top-level layer, or a ValueError saying what to name."""
    if not _models.is_graph_model(model):
        raise ValueError(
            f"Hint distillation reads the activations of named layers, which needs a Sequential "
            f"or Functional {role}; {model.name!r} is a subclassed model "
            f"({type(model).__name__}). Distill outputs only (no hints), or rebuild the {role} "
            "with the Functional API.")
    try:
        layer = model.get_layer(name)
    except ValueError:
        available = [layer.name for layer in model.layers]
        raise ValueError(f"The {role} {model.name!r} has no layer {name!r}; its layers are "
                         f"{available}. Name a top-level layer of the {role}.") from None
    # The layer's call inside this model: a reloaded Sequential has called its layers
    # twice, and `layer.output` is then the first call's, outside the model's graph.
    graph = getattr(model, "_functional", None) or model
    nodes = {id(node) for depth in graph._nodes_by_depth.values() for node in depth}
    calls = [node for node in layer._inbound_nodes if id(node) in nodes]
    if len(calls) != 1 or len(calls[0].output_tensors) != 1:
        raise ValueError(f"The {role}'s layer {name!r} is called more than once in "
                         f"{model.name!r}, so its activation is ambiguous; pair a layer that "
                         "is used once.")
    return calls[0].output_tensors[0]


def extractor(model, names, role):
    """A model sharing `model`'s layers that returns its output and the named activations.

    The outputs are a dict keyed as keras.distillation reads them: "final_output"
    and the layer names. None when no layer is named.
    """
    if not names:
        return None
    outputs = {"final_output": model.outputs[0]}
    outputs.update({name: layer_output(model, name, role) for name in names})
    return keras.Model(model.inputs, outputs, name=f"{model.name}_hints")
