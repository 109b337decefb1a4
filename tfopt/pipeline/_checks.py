"""Checks of what `optimize` is given: the data against the model, a teacher against its task."""

import numpy as np

from tfopt.pipeline import _stages


def validate_teacher(teacher, model, test):
    """Raises ValueError unless `teacher` takes `model`'s inputs and gives its classes.

    A teacher the pipeline cannot see into (a wrapped SavedModel) must give
    logits: its rows may not look like probabilities.
    """
    if teacher is model:
        return
    if tuple(teacher.input_shape[1:]) != tuple(model.input_shape[1:]) or \
            tuple(teacher.output_shape[1:]) != tuple(model.output_shape[1:]):
        raise ValueError(f"teacher {teacher.name!r} maps {tuple(teacher.input_shape[1:])} to "
                         f"{tuple(teacher.output_shape[1:])}; the model maps "
                         f"{tuple(model.input_shape[1:])} to {tuple(model.output_shape[1:])}. "
                         "Give a teacher of the same task.")
    if _stages.outputs_kind(teacher) == "probabilities":
        return
    outputs = np.asarray(teacher.predict(test[0][:32], verbose=0))
    if outputs.min() >= 0 and np.allclose(outputs.sum(axis=-1), 1, atol=1e-3):
        raise ValueError(f"teacher {teacher.name!r} outputs what look like probabilities (its "
                         "rows are non-negative and sum to 1), but does not end in a softmax "
                         "layer the stages could see; give a teacher that outputs logits.")


def validate_data(data, model, names=("train", "test")):
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise ValueError("data must be ((x_train, y_train), (x_test, y_test)); got "
                         f"{type(data).__name__}.") from None
    classes = model.output_shape[-1]
    split = {}
    for where, x, y in ((names[0], x_train, y_train), (names[1], x_test, y_test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape[1:] != tuple(model.input_shape[1:]):
            raise ValueError(f"data: x_{where} has examples of shape {x.shape[1:]}; the model "
                             f"takes {tuple(model.input_shape[1:])}.")
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"data: y_{where} must be {len(x)} integer class ids (shape "
                             f"({len(x)},)); got shape {y.shape}, dtype {y.dtype}.")
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"data: y_{where} holds classes {y.min()}..{y.max()}; the model "
                             f"has {classes} outputs (0..{classes - 1}).")
        if not len(x):
            raise ValueError(f"data: x_{where} holds no examples.")
        split[where] = (x.astype(np.float32), y)
    return split[names[0]], split[names[1]]
