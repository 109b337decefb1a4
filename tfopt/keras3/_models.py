"""Checks shared by every tfopt.keras3 entry point that takes a Keras 3 model."""

import keras
from keras.src.models.functional import Functional

from tfopt import _counterparts


def validate_keras3_model(model, action):
    """Raises ValueError unless `model` is a Keras 3 Model.

    A tf_keras (Keras 2) model gets the name of the tfopt function that
    takes it.
    """
    if isinstance(model, keras.Model):
        return
    kind = type(model).__module__ + "." + type(model).__name__
    hint = ""
    if type(model).__module__.startswith("tf_keras."):
        hint = (f" It looks like a tf_keras (Keras 2) object: {_counterparts.for_tf_keras(action)}"
                " To move it to Keras 3, convert it with tfopt.keras3.from_tf_keras(model).")
    raise ValueError(f"{action} needs a Keras 3 Model (`import keras`), got {kind}.{hint}")


def is_graph_model(layer):
    """True for Sequential and Functional models, False for subclassed ones."""
    return isinstance(layer, (keras.Sequential, Functional))


def validate_graph_model(model, action):
    """Raises ValueError unless `action` can rebuild `model` layer by layer.

    `model` must be a built Sequential or Functional Keras 3 model.
    """
    validate_keras3_model(model, action)
    if not is_graph_model(model):
        raise ValueError(
            f"{action} supports Sequential and Functional models; {model.name!r} is a "
            f"subclassed model ({type(model).__name__}), whose layers and connections Keras "
            "cannot clone. Rebuild it with the Functional API, or use tfopt's Keras 3 layers "
            "(e.g. tfopt.keras3.pruning.PrunedDense) inside your own class.")
    if not model.built or not model.inputs:
        raise ValueError(f"{action} needs a built model; {model.name!r} has no input shape "
                         "yet. Start it with keras.Input(shape) or call it on data.")
