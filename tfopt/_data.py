"""Checking example data against a model: one set of rules for every entry point.

`quantize` (representative_data), `export.tflite` (representative_data,
verify) and `export.verify_tflite` (x, y) all take examples. They check them
here, before any slow work, with the same rules: each input shaped like the
model's input, of a compatible dtype, every value finite (one NaN in
calibration data turns every activation range into NaN and the model then
predicts NaN for every input, without an error), inputs and labels counting
the same examples, and iterables read up to a cap, since a ``tf.data``
pipeline may repeat forever.
"""

import inspect

import numpy as np
import tensorflow as tf

# Calibration needs a few hundred examples; reading an iterable stops here.
MAX_ITERABLE_EXAMPLES = 1000


def input_specs(model):
    """The model's inputs as TensorSpecs with a free batch dimension.

    Returns:
      One TensorSpec for a single-input model, else the list or dict of them
      in the structure the model is called with (a dict even for one input).
    """
    if getattr(model, "_is_graph_network", False) and model.inputs:
        structure = tf.nest.map_structure(
            lambda x: tf.TensorSpec(x.shape, x.dtype, name=x._keras_history.layer.name),
            model._nested_inputs)
    else:
        args, kwargs = model.save_spec(dynamic_batch=True)
        structure = args[0] if len(args) == 1 and not kwargs else list(tf.nest.flatten(args))
    flat = tf.nest.flatten(structure)
    return flat[0] if len(flat) == 1 and not isinstance(structure, dict) else structure


def validate_examples(data, specs, what):
    """`data` as numpy arrays of the inputs' dtypes, after checking them.

    Args:
      data: examples as the model takes them: an array or tensor (a list or
        dict of them for several inputs), or an iterable of such batches (a
        ``tf.data.Dataset``, a generator, or a function returning one, as
        ``TFLiteConverter.representative_dataset``); an element
        ``(inputs, labels[, weights])`` counts as its inputs, as in `fit`.
      specs: `input_specs` of the model (or a file's input as a TensorSpec).
      what: the argument's name, for messages.

    Returns:
      The examples in the structure of `specs`, each a numpy array; from an
      iterable, at most `MAX_ITERABLE_EXAMPLES` examples.

    Raises:
      TypeError: `data` is not examples at all.
      ValueError: shape, dtype, count or values do not fit the model.
    """
    if inspect.isroutine(data):
        data = data()
    if _is_batch(data, specs):
        examples = _validate_batch(data, specs, what)
    elif hasattr(data, "__iter__") and not isinstance(data, (str, bytes, dict)):
        examples = _read_batches(data, specs, what)
    else:
        raise TypeError(f"{what} must be {_described(specs)}, a tf.data.Dataset or an iterable "
                        f"of such batches, got {type(data).__name__}.")
    count = len(tf.nest.flatten(examples)[0])
    if count == 0:
        raise ValueError(f"{what} holds no examples; give at least one (a few hundred for "
                         "calibration).")
    _validate_finite(examples, what)
    return tf.nest.map_structure(
        lambda x, spec: x.astype(spec.dtype.as_numpy_dtype, copy=False), examples, specs,
        check_types=False)


def validate_labels(y, count, what="y"):
    """`y` as a numpy array with one label per example; one-hot rows are fine."""
    if isinstance(y, (str, bytes, dict)) or not hasattr(y, "__len__"):
        raise TypeError(f"{what} must be an array of labels, one per example, got "
                        f"{type(y).__name__}.")
    labels = np.asarray(y)
    if labels.dtype.kind not in "biuf":
        raise TypeError(f"{what} must hold numbers (class ids or one-hot rows), got dtype "
                        f"{labels.dtype}.")
    if labels.ndim == 0 or len(labels) != count:
        given = "a scalar" if labels.ndim == 0 else f"{len(labels)} labels"
        raise ValueError(f"{what} has {given} for {count} examples; give one label per example.")
    _validate_finite(labels, what)
    return labels


def _described(specs):
    if isinstance(specs, tf.TensorSpec):
        return "an array of examples"
    if isinstance(specs, dict):
        return f"a dict of arrays keyed {sorted(specs)}"
    return f"a list of {len(specs)} arrays, one per model input"


def _is_array(x):
    return isinstance(x, (np.ndarray, tf.Tensor, np.generic, int, float))


def _is_batch(data, specs):
    """Whether `data` is one batch of inputs (rather than an iterable of batches)."""
    if isinstance(specs, tf.TensorSpec):
        return _is_array(data)
    if isinstance(specs, dict):
        return isinstance(data, dict) and all(_is_array(x) for x in data.values())
    return (isinstance(data, (list, tuple)) and len(data) == len(specs)
            and all(_is_array(x) for x in data))


def _read_batches(data, specs, what):
    batches, count = [], 0
    for element in data:
        if not _is_batch(element, specs) and isinstance(element, (tuple, list)) and element:
            element = element[0]  # (inputs, labels[, weights]) as `fit` takes them
        batch = _validate_batch(element, specs, what, first=count)
        room = MAX_ITERABLE_EXAMPLES - count
        batches.append(tf.nest.map_structure(lambda x: x[:room], batch))
        count += len(tf.nest.flatten(batches[-1])[0])
        if count >= MAX_ITERABLE_EXAMPLES:
            break
    if not batches:
        raise ValueError(f"{what} yielded no batches.")
    return tf.nest.map_structure(lambda *xs: np.concatenate(xs), *batches)


def _validate_batch(batch, specs, what, first=None):
    """One batch as numpy arrays in the structure of `specs`, shapes and dtypes checked."""
    where = "" if first is None else f" (the batch after {first} examples)"
    if isinstance(specs, tf.TensorSpec):
        if not _is_array(batch):
            raise TypeError(f"{what} must hold arrays of examples, got a batch of type "
                            f"{type(batch).__name__}{where}.")
        return _validate_array(np.asarray(batch), specs, what, where)
    if isinstance(specs, dict):
        if not isinstance(batch, dict) or set(batch) != set(specs):
            given = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
            raise ValueError(f"{what} must be a dict of arrays keyed by the model's inputs "
                             f"{sorted(specs)}, got {given}{where}.")
        arrays = {name: _validate_array(np.asarray(batch[name]), spec, f"{what}[{name!r}]",
                                        where) for name, spec in specs.items()}
    else:
        if not isinstance(batch, (list, tuple)) or len(batch) != len(specs):
            given = (f"{len(batch)} arrays" if isinstance(batch, (list, tuple))
                     else type(batch).__name__)
            raise ValueError(f"{what} must be a list of {len(specs)} arrays, one per model "
                             f"input {[spec.name for spec in specs]}, got {given}{where}.")
        arrays = [_validate_array(np.asarray(x), spec, f"{what}[{i}]", where)
                  for i, (x, spec) in enumerate(zip(batch, specs))]
    counts = {len(x) for x in tf.nest.flatten(arrays)}
    if len(counts) > 1:
        raise ValueError(f"{what} gives the model's inputs different numbers of examples "
                         f"({sorted(counts)}){where}; each input needs one row per example.")
    return arrays


def _validate_array(batch, spec, what, where):
    if batch.dtype.kind not in "biuf":
        raise TypeError(f"{what} holds {batch.dtype} values, not numbers{where}; give arrays of "
                        "examples.")
    expected = tuple(spec.shape)
    shown = "(" + ", ".join("None" if d is None else str(d) for d in expected) + ")"
    if batch.ndim != len(expected) or any(
            want is not None and have != want for have, want in zip(batch.shape[1:], expected[1:])):
        hint = (" It looks like one example at a time: batch it (e.g. dataset.batch(32))."
                if batch.ndim == len(expected) - 1 else "")
        raise ValueError(
            f"{what} has a batch of shape {batch.shape}{where}; the model's input {spec.name!r} "
            f"is {shown}. Give a batch of examples shaped like the model's input, the first "
            f"axis counting examples.{hint}")
    want = np.dtype(spec.dtype.as_numpy_dtype)
    if want.kind != batch.dtype.kind and not (want.kind in "iu" and batch.dtype.kind in "iub"):
        raise ValueError(
            f"{what} has dtype {batch.dtype}; the model's input {spec.name!r} is {want.name}. "
            "Pass the inputs exactly as the model receives them (e.g. images scaled to floats "
            "the way it was trained).")
    return batch


def _validate_finite(examples, what):
    for name, x in _named(examples, what):
        if x.dtype.kind != "f":
            continue
        bad = ~np.isfinite(x)
        if bad.any():
            first = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} holds {int(bad.sum())} non-finite value(s) (NaN or infinity) in "
                f"{int(bad.reshape(len(x), -1).any(axis=1).sum())} example(s); the first is "
                f"{x[first]} at index {first}. One NaN turns every range computed from the data "
                "into NaN: drop those examples or replace the values (e.g. np.nan_to_num).")


def _named(examples, what):
    if isinstance(examples, dict):
        return [(f"{what}[{key!r}]", x) for key, x in examples.items()]
    if isinstance(examples, list):
        return [(f"{what}[{i}]", x) for i, x in enumerate(examples)]
    return [(what, examples)]
