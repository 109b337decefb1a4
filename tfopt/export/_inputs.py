"""Checking what export is given: the model, example inputs, and the output path.

Every check runs before conversion, which is the slow part, so a typo costs
seconds, not minutes, and the messages say what was given and what would work.
"""

import os

import numpy as np
import tensorflow as tf

from tfopt import _models

# Iterables (tf.data pipelines in particular) may repeat forever; calibration
# needs a few hundred examples, so reading stops here.
MAX_ITERABLE_EXAMPLES = 1000


def validate_model(model, action):
    """Raises ValueError unless `model` is a built tf_keras Model with one known input spec."""
    _models.validate_tf_keras_model(model, action)
    if not model.built or model.save_spec() is None:
        raise ValueError(f"{action} needs a model with a known input shape; {model.name!r} has "
                         "none yet. Give it a keras.Input, or call it once on a batch of data.")


def input_spec(model, action):
    """The model's single input as a TensorSpec with a free batch dimension."""
    args, kwargs = model.save_spec(dynamic_batch=True)
    specs = tf.nest.flatten((args, kwargs))
    if len(specs) != 1:
        raise ValueError(f"{action} supports models with one input; {model.name!r} has "
                         f"{len(specs)}: {[spec.name for spec in specs]}.")
    return specs[0]


def validate_examples(data, spec, what):
    """`data` as a numpy array of the spec's dtype, after checking shape and dtype.

    Args:
      data: a numpy array or tensor of examples, or (for representative data) an
        iterable of such batches; an ``(inputs, labels)`` pair counts as its inputs.
      spec: the model input's TensorSpec.
      what: the argument's name, for messages.

    Returns:
      One numpy array holding all examples (iterables: at most
      `MAX_ITERABLE_EXAMPLES`).
    """
    if isinstance(data, (np.ndarray, tf.Tensor)) or np.isscalar(data):
        batches = [np.asarray(data)]
        _validate_batch(batches[0], spec, what)
    elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
        batches = _read_batches(data, spec, what)
    else:
        raise ValueError(f"{what} must be an array of examples, a tf.data.Dataset or an iterable "
                         f"of batches, got {type(data).__name__}.")
    examples = np.concatenate(batches) if len(batches) > 1 else batches[0]
    if len(examples) == 0:
        raise ValueError(f"{what} holds no examples; give at least one (a few hundred for "
                         "calibration).")
    return examples.astype(spec.dtype.as_numpy_dtype, copy=False)


def _read_batches(data, spec, what):
    batches, count = [], 0
    for element in data:
        if isinstance(element, (tuple, list)) and element:
            element = element[0]  # (inputs, labels[, weights]) as `fit` takes them
        batch = np.asarray(element)
        _validate_batch(batch, spec, what)
        batches.append(batch[:MAX_ITERABLE_EXAMPLES - count])
        count += len(batches[-1])
        if count >= MAX_ITERABLE_EXAMPLES:
            break
    if not batches:
        raise ValueError(f"{what} yielded no batches.")
    return batches


def _validate_batch(batch, spec, what):
    if batch.dtype == object:
        raise ValueError(f"{what} holds Python objects, not numbers; give arrays of examples.")
    expected = tuple(spec.shape)
    shown = "(" + ", ".join("None" if d is None else str(d) for d in expected) + ")"
    if batch.ndim != len(expected) or any(
            want is not None and have != want for have, want in zip(batch.shape[1:], expected[1:])):
        raise ValueError(
            f"{what} has a batch of shape {batch.shape}; the model's input {spec.name!r} is "
            f"{shown}. Give a batch of examples shaped like the model's input, the first axis "
            "counting examples.")
    want = np.dtype(spec.dtype.as_numpy_dtype)
    if want.kind != batch.dtype.kind and not (want.kind in "iu" and batch.dtype.kind in "iu"):
        raise ValueError(
            f"{what} has dtype {batch.dtype}; the model's input {spec.name!r} is {want.name}. "
            "Pass the inputs exactly as the model receives them (e.g. images scaled to floats "
            "the way it was trained).")


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
