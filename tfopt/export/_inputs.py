"""Checking what export is given: the model and the output path.

Example inputs are checked by tfopt._data, with the rules quantize uses too.

Every check runs before conversion, which is the slow part, so a typo costs
seconds, not minutes, and the messages say what was given and what would work.
"""

import os

import tensorflow as tf

from tfopt import _data
from tfopt import _models


def validate_model(model, action):
    """Raises ValueError unless `model` is a built tf_keras Model with one known input spec."""
    _models.validate_tf_keras_model(model, action)
    if not model.built or model.save_spec() is None:
        raise ValueError(f"{action} needs a model with a known input shape; {model.name!r} has "
                         "none yet. Give it a keras.Input, or call it once on a batch of data.")


def input_spec(model, action):
    """The model's single input as a TensorSpec with a free batch dimension."""
    specs = _data.input_specs(model)
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
