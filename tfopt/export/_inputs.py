"""Checking what export is given: the model and the output path.

Example inputs are checked by tfopt._data, with the rules quantize uses too.

Every check runs before conversion, which is the slow part, so a typo costs
seconds, not minutes, and the messages say what was given and what would work.
"""

import os
import sys

import tensorflow as tf

from tfopt import _data
from tfopt.export import _keras3


def validate_keras_model(model, action):
    """Raises ValueError unless `model` is a Keras Model: tf_keras (Keras 2) or Keras 3."""
    tf_keras = sys.modules.get("tf_keras")  # no tf_keras model exists before it is imported
    if _keras3.is_model(model) or (tf_keras is not None and isinstance(model, tf_keras.Model)):
        return
    kind = type(model).__module__ + "." + type(model).__name__
    raise ValueError(f"{action} needs a Keras model, tf_keras (Keras 2) or Keras 3, got {kind}. "
                     "Load a saved one first, e.g. keras.saving.load_model(path).")


def validate_model(model, action):
    """Raises ValueError unless `model` is a built Keras Model (either Keras) with known inputs."""
    validate_keras_model(model, action)
    if _keras3.is_model(model):
        _keras3.validate_model(model, action)
        return
    if not model.built or model.save_spec() is None:
        raise ValueError(f"{action} needs a model with a known input shape; {model.name!r} has "
                         "none yet. Give it a keras.Input, or call it once on a batch of data.")


def input_specs(model):
    """The model's inputs as TensorSpecs with a free batch dimension, for either Keras.

    One TensorSpec for a single-input model, else the list or dict of them in
    the structure the model is called with.
    """
    return _keras3.input_specs(model) if _keras3.is_model(model) else _data.input_specs(model)


def input_spec(model, action):
    """The model's single input as a TensorSpec with a free batch dimension."""
    specs = input_specs(model)
    if not isinstance(specs, tf.TensorSpec):
        names = [spec.name for spec in tf.nest.flatten(specs)]
        raise ValueError(f"{action} supports models with one input; {model.name!r} has "
                         f"{len(names)}: {names}.")
    return specs


def validate_path(path, action):
    """Raises ValueError, before any work is done, if `path` cannot be written.

    Missing parent directories are fine (they are created); a parent that is a
    file, a directory without write permission, or a `path` that is itself a
    directory are not.
    """
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise ValueError(f"{action} needs a file path, got {path!r}.")
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise ValueError(f"{action}: {str(path)!r} is a directory; give a file name inside it, "
                         f"e.g. {os.path.join(str(path), 'model.tflite')!r}.")
    ancestor = os.path.dirname(target)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise ValueError(f"{action} cannot write {str(path)!r}: {ancestor!r} is a file, not a "
                         "directory.")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"{action} cannot write {str(path)!r}: no permission to write in "
                         f"{ancestor!r}. Choose a directory you can write to.")
