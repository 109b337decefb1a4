"""What a command-line tool reads and writes, checked before any slow work.

Each check raises `UsageError` naming the flag, what was given and what would
work, so a wrong path or a data set that does not fit the model ends the run
in a second with one line, not minutes later in a TensorFlow traceback.
"""

import contextlib
import json
import logging
import os
import tempfile
import zipfile

import numpy as np
import tf_keras as keras

from tfopt import _data
from tfopt import datasets
from tfopt.export import _inputs as _export_inputs
from tfopt.cli._app import UsageError

DATA_SETS = ("digits", "fashion_mnist")
_NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
_ZIP_MAGIC = b"PK\x03\x04"
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_SAVE_HINT = "Save the model with model.save('model.keras') (import tf_keras as keras)."


def validate_output(path, flag="--output"):
    """Raises UsageError unless a .keras file can be written at `path`.

    Missing parent directories are fine (they are created). Writing is tried
    for real in the nearest existing directory, because permission bits do not
    stop root and a read-only file system shows none.
    """
    given = f"{flag}={path!r}"
    if not path.endswith(".keras"):
        raise UsageError(f"{given} must end in .keras, the format the model is saved in.")
    target = os.path.abspath(path)
    if os.path.isdir(target):
        raise UsageError(f"{given} is a directory; give a file name inside it, e.g. "
                         f"{os.path.join(path, 'pruned.keras')!r}.")
    validate_writable_ancestor(os.path.dirname(target), given)


def validate_writable_ancestor(directory, given):
    """Raises UsageError unless files can be created in `directory` once it is made.

    Writing is tried for real in `directory`'s nearest existing ancestor,
    because permission bits do not stop root and a read-only file system shows
    none.
    """
    ancestor = os.path.abspath(directory)
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor):
        raise UsageError(f"{given} cannot be written: {ancestor!r} is a file, not a directory.")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as error:
        raise UsageError(f"{given} cannot be written: creating a file in {ancestor!r} fails "
                         f"({error.strerror}). Choose a directory you can write to.") from error


def load_model(path, flag="--model"):
    """The tf_keras model saved at `path`: a .keras file, or a legacy .h5 one."""
    given = f"{flag}={path!r}"
    if not os.path.exists(path):
        raise UsageError(f"{given} does not exist.")
    if os.path.isdir(path):
        raise UsageError(f"{given} is a directory, not a model file. {_SAVE_HINT}")
    with open(path, "rb") as f:
        head = f.read(len(_HDF5_MAGIC))
    if head.startswith(_ZIP_MAGIC):
        _validate_keras_archive(path, given)
    elif not head.startswith(_HDF5_MAGIC):
        raise UsageError(f"{given} is not a Keras model: neither a .keras archive nor an HDF5 "
                         f"file. {_SAVE_HINT}")
    try:
        with _without_optimizer_restore_warning():
            model = keras.models.load_model(path)
    except Exception as error:  # pylint: disable=broad-except  (any failure means: not loadable)
        lines = [line for line in str(error).splitlines() if line.strip()]
        reason = lines[0] if lines else type(error).__name__
        raise UsageError(f"{given} cannot be loaded as a tf_keras model: {reason}") from error
    return model


def _validate_keras_archive(path, given):
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            metadata = (json.loads(archive.read("metadata.json"))
                        if "metadata.json" in names else {})
    except (zipfile.BadZipFile, OSError, ValueError) as error:
        raise UsageError(f"{given} is a damaged zip archive ({error}); a copy that was cut "
                         f"short looks like this. {_SAVE_HINT}") from error
    if "config.json" not in names:
        raise UsageError(f"{given} is a zip archive without config.json, not a .keras model. "
                         f"{_SAVE_HINT}")
    version = str(metadata.get("keras_version", ""))
    if version.startswith("3"):
        raise UsageError(f"{given} was saved by Keras {version}; tfopt works with Keras 2. "
                         f"{_SAVE_HINT}")


@contextlib.contextmanager
def _without_optimizer_restore_warning():
    """Hides tf_keras' warning that the saved optimizer state does not fit.

    The tools fine-tune with a new optimizer, so the saved one is never used and
    the warning (about an optimizer that was compiled but never stepped, for
    instance) would only puzzle the user.
    """
    def keep(record):
        return not record.getMessage().startswith("Skipping variable loading for optimizer")

    logger = logging.getLogger("absl")
    logger.addFilter(keep)
    try:
        yield
    finally:
        logger.removeFilter(keep)


def validate_classifier(model, given):
    """Raises UsageError unless `model` maps one input to one (batch, classes) output."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UsageError(f"{given} has {len(model.inputs)} inputs and {len(model.outputs)} "
                         "outputs; the tool fine-tunes classifiers with one input and one output.")
    shape = tuple(model.output_shape)
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise UsageError(f"{given} outputs shape {shape}; the tool fine-tunes classifiers whose "
                         "output is (batch, classes) with at least 2 classes, trained on integer "
                         "class labels.")


def load_data(name, flag="--data"):
    """((x_train, y_train), (x_test, y_test)) from a data set name or an .npz file."""
    if name == "digits":
        return datasets.load_digits()
    if name == "fashion_mnist":
        try:
            return datasets.load_fashion_mnist(datasets.FASHION_MNIST_DIR)
        except (OSError, ValueError) as error:
            raise UsageError(f"{flag}=fashion_mnist: {error}") from error
    if not name.endswith(".npz"):
        raise UsageError(f"{flag}={name!r}: use {' or '.join(map(repr, DATA_SETS))}, or an .npz "
                         "file holding x_train and y_train (and optionally x_test, y_test).")
    return _load_npz(name, f"{flag}={name!r}")


def load_validation(name, flag="--data"):
    """(x_val, y_val) of an .npz --data that holds them, else None (checked like the rest)."""
    if not name.endswith(".npz"):
        return None
    given = f"{flag}={name!r}"
    _load_npz(name, given)  # the file's own checks first
    with np.load(name, allow_pickle=False) as data:
        keys = set(data.files)
        if ("x_val" in keys) != ("y_val" in keys):
            raise UsageError(f"{given} has {'x_val' if 'x_val' in keys else 'y_val'} without "
                             f"{'y_val' if 'x_val' in keys else 'x_val'}; save both, or neither.")
        if "x_val" not in keys:
            return None
        return _read_array(data, "x_val", given), _read_array(data, "y_val", given)


def _load_npz(path, given):
    if not os.path.isfile(path):
        raise UsageError(f"{given} does not exist." if not os.path.exists(path)
                         else f"{given} is a directory, not an .npz file.")
    if not zipfile.is_zipfile(path):
        raise UsageError(f"{given} is not an .npz file (the zip archive of arrays that "
                         "numpy.savez writes).")
    arrays = {}
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            missing = [key for key in ("x_train", "y_train") if key not in keys]
            if not missing and ("x_test" in keys) != ("y_test" in keys):
                missing = ["y_test" if "x_test" in keys else "x_test"]
            if missing:
                raise UsageError(f"{given} has no {' and '.join(missing)}; it holds "
                                 f"{sorted(keys)}. Save it with numpy.savez(path, x_train=..., "
                                 "y_train=...), adding x_test and y_test together if at all.")
            for key in _NPZ_KEYS:
                if key in keys:
                    arrays[key] = _read_array(data, key, given)
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise UsageError(f"{given} is damaged ({error}); write it again with numpy.savez.") \
            from error
    train = (arrays["x_train"], arrays["y_train"])
    test = (arrays["x_test"], arrays["y_test"]) if "x_test" in arrays else train
    return train, test


def _read_array(data, key, given):
    try:
        return data[key]
    except ValueError as error:  # numpy refuses object arrays without allow_pickle
        raise UsageError(f"{given}: {key} holds Python objects, not numbers ({error}); save "
                         "numeric arrays.") from error


def fit_data(model, train, test, given):
    """(x_train, y_train), (x_test, y_test) checked against `model`, labels as int64.

    Inputs follow the rules every tfopt entry point applies to examples
    (tfopt._data: shaped like the model's input, numbers, finite, at least
    one); labels must be one integer class per example, within the model's
    output classes.
    """
    spec = _export_inputs.input_specs(model)
    classes = model.output_shape[-1]
    checked = []
    for split, (x, y) in (("train", train), ("test", test)):
        try:
            x = _data.validate_examples(_integers_as_floats(np.asarray(x), spec), spec,
                                        f"{given}: x_{split}")
            y = _data.validate_labels(y, len(x), f"{given}: y_{split}")
        except (TypeError, ValueError) as error:
            raise UsageError(str(error)) from error
        checked.append((x, _validate_classes(y, classes, f"{given}: y_{split}")))
    return tuple(checked)


def _integers_as_floats(x, spec):
    """Integer inputs (uint8 pixels, say) cast to a float input's dtype, as `fit` casts them.

    The shared check refuses them, rightly for calibration data read as is;
    for training, Keras casts them and they are common in .npz files.
    """
    if x.dtype.kind in "biu" and spec.dtype.is_floating:
        return x.astype(spec.dtype.as_numpy_dtype)
    return x


def _validate_classes(y, classes, what):
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise UsageError(f"{what} has shape {y.shape}; give one integer class label per "
                         f"example, shape ({len(y)},) (from one-hot labels: y.argmax(-1)).")
    if y.dtype.kind == "f" and not np.array_equal(y, np.round(y)):
        raise UsageError(f"{what} has dtype {y.dtype} with values that are not whole numbers; "
                         "give integer class labels 0, 1, 2, ...")
    low, high = int(y.min()), int(y.max())
    if low < 0 or high >= classes:
        raise UsageError(f"{what} holds labels {low}..{high}, but the model outputs {classes} "
                         f"classes (labels 0..{classes - 1}). Use data labelled for this model, "
                         f"or a model whose last layer has {high + 1} units.")
    return y.astype(np.int64)
