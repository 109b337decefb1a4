"""What tfopt-export is given, checked before anything is exported.

Each check raises `UsageError` naming the flag, what was given and what would
work. The flags are checked first, then the model and the data files against
the model, so every mistake the tool can see ends the run before TensorFlow
converts or saves anything.
"""

import json
import os
import zipfile

import tf_keras as keras

from tfopt import _data
from tfopt.cli import _inputs
from tfopt.cli._app import UsageError
from tfopt.export import _inputs as _export_inputs
from tfopt.export import _layout
from tfopt.export import _servable
from tfopt.export import _serving_config
from tfopt.export import _tflite

SAVED_MODEL = "saved_model"
_TFLITE_PREFIX = "tflite_"
FORMATS = (SAVED_MODEL,) + tuple(_TFLITE_PREFIX + mode for mode in _tflite.TFLITE_MODES)

# Names the export root already uses for something else (_layout): a model's base path
# is <root>/<model name>.
_RESERVED_NAMES = (_layout.TFLITE_DIR, _layout.MODELS_CONFIG, _layout.BATCHING_CONFIG,
                   _layout.MONITORING_CONFIG)
_KERAS_METADATA = "keras_metadata.pb"
_SAVED_MODEL_FILE = "saved_model.pb"


def tflite_mode(name):
    """The export.tflite mode of a --formats entry, or None for the SavedModel."""
    return name[len(_TFLITE_PREFIX):] if name.startswith(_TFLITE_PREFIX) else None


def validate_formats(names):
    """The --formats entries in the order given, each known and given once."""
    names = [name.strip() for name in names]
    if not names or not all(names):
        raise UsageError(f"--formats={','.join(names)!r} names no format; use one or more of "
                         f"{', '.join(FORMATS)}, separated by commas.")
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise UsageError(f"--formats: unknown format {unknown[0]!r}; use one or more of "
                         f"{', '.join(FORMATS)}, separated by commas.")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"--formats names {repeated[0]!r} twice; give each format once.")
    return names


def validate_model_name(name):
    """Raises UsageError unless models.config accepts `name` and the export root has it free."""
    _validate_serving_name(name, "--model_name")
    if name in _RESERVED_NAMES:
        raise UsageError(f"--model_name={name!r} is taken: the export root holds "
                         f"{', '.join(_RESERVED_NAMES)} beside the models' directories. "
                         "Choose another name.")


def _validate_serving_name(name, what):
    try:
        _serving_config.validate_name(name, what)
    except ValueError as error:
        raise UsageError(str(error)) from error


def validate_base_path(base_path, model_name):
    """Raises UsageError unless `base_path` is <export root>/<model name> and can be written.

    TF Serving's config, the deployment kit and the TFLite directory are all
    placed relative to the export root, the base path's parent, and name the
    model's directory after the model.
    """
    given = f"--base_path={base_path!r}"
    if os.path.basename(os.path.normpath(base_path)) != model_name:
        suggestion = os.path.join(os.path.dirname(os.path.normpath(base_path)), model_name)
        raise UsageError(f"{given} must end in the model's name, {model_name!r}: an export root "
                         f"holds one directory per model, named after it (TF Serving's layout). "
                         f"Use --base_path={suggestion!r}.")
    if os.path.isfile(os.path.join(base_path, _SAVED_MODEL_FILE)):
        raise UsageError(f"{given} holds {_SAVED_MODEL_FILE}: it is a version directory, not a "
                         "base path. Give the directory that holds (or will hold) the "
                         "numbered versions.")
    validate_writable_directory(base_path, given)


def validate_writable_directory(path, given):
    """Raises UsageError unless `path` is a directory, or can be created as one, and is writable.

    Writing is tried for real in the nearest existing directory, because
    permission bits do not stop root and a read-only file system shows none.
    """
    target = os.path.abspath(path)
    if os.path.exists(target) and not os.path.isdir(target):
        raise UsageError(f"{given} is a file; give a directory.")
    _inputs.validate_writable_ancestor(target, given)


def validate_labels(labels):
    for label in labels:
        _validate_serving_name(label, "--labels: each label")
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UsageError(f"--labels names {repeated[0]!r} twice; give each label once.")


def load_model(path):
    """The model to export from --model, as a server runs it (pruning wrappers stripped).

    --model is a .keras (or .h5) file or a tf_keras SavedModel directory. A
    .keras file saved by Keras 3 (its metadata.json says so) is loaded with
    Keras 3, every other file as a tf_keras model.
    """
    given = f"--model={path!r}"
    if os.path.isdir(path):
        model = _load_saved_model(path, given)
    elif _saved_by_keras3(path):
        model = _load_keras3(path, given)
    else:
        model = _inputs.load_model(path)
    try:
        model = _servable.validate_model(model, given)
    except ValueError as error:
        raise UsageError(str(error)) from error
    return _servable.for_serving(model)


def _load_saved_model(path, given):
    if not os.path.isfile(os.path.join(path, _SAVED_MODEL_FILE)):
        versions = sorted(name for name in os.listdir(path) if name.isdigit())
        hint = (f" It looks like a TF Serving base path; tfopt-export needs the Keras model "
                f"itself, e.g. the .keras file it was exported from." if versions else
                " Give a .keras file, or a directory written by model.save(directory) in tf_keras.")
        raise UsageError(f"{given} is a directory without {_SAVED_MODEL_FILE}.{hint}")
    if not os.path.isfile(os.path.join(path, _KERAS_METADATA)):
        raise UsageError(f"{given} is a SavedModel without {_KERAS_METADATA}, so it holds no "
                         "Keras model to export (tf.saved_model.save and TF Serving exports write "
                         "none). Give the .keras file, or save with model.save(directory) in "
                         "tf_keras.")
    try:
        return keras.models.load_model(path)
    except Exception as error:  # pylint: disable=broad-except  (any failure means: not loadable)
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise UsageError(f"{given} cannot be loaded as a tf_keras model: "
                         f"{lines[0] if lines else type(error).__name__}") from error


def _saved_by_keras3(path):
    """Whether `path` is a .keras archive whose metadata names Keras 3.x."""
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
    except (zipfile.BadZipFile, OSError, KeyError, ValueError):
        return False  # not one: the tf_keras loader says what it is
    return str(metadata.get("keras_version", "")).startswith("3")


def _load_keras3(path, given):
    import keras
    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as error:  # pylint: disable=broad-except  (any failure means: not loadable)
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise UsageError(f"{given} was saved by Keras 3 and cannot be loaded with "
                         f"keras.saving.load_model: "
                         f"{lines[0] if lines else type(error).__name__}") from error


def validate_single_input_classifier(model, why):
    """Raises UsageError unless `model` maps one input to one (batch, classes) output."""
    if len(model.inputs) != 1 or len(model.outputs) != 1:
        raise UsageError(f"{why}, so it needs a model with one input and one output; --model has "
                         f"{len(model.inputs)} inputs and {len(model.outputs)} outputs.")
    shape = tuple(model.output_shape)
    if len(shape) != 2 or shape[1] is None or shape[1] < 2:
        raise UsageError(f"{why}, so it needs a classifier whose output is (batch, classes) with "
                         f"at least 2 classes; --model outputs shape {shape}.")


def representative_examples(model, name):
    """Calibration inputs for integer TFLite files: x_train of --representative_data."""
    given = f"--representative_data={name!r}"
    if len(model.inputs) != 1:
        raise UsageError(f"{given}: calibration data is read for models with one input; --model "
                         f"has {len(model.inputs)}. Export the SavedModel and float16/dynamic "
                         "TFLite files, which need none.")
    (x, _), _ = _inputs.load_data(name, flag="--representative_data")
    try:
        return _data.validate_examples(x, _export_inputs.input_specs(model),
                                       f"{given}: x_train")
    except (TypeError, ValueError) as error:
        raise UsageError(str(error)) from error


def verify_examples(model, name):
    """(x, y) for the verification figures: the test split of --verify_data."""
    validate_single_input_classifier(
        model, f"--verify_data={name!r} measures top-1 accuracy and agreement")
    given = f"--verify_data={name!r}"
    _, test = _inputs.fit_data(model, *_inputs.load_data(name, flag="--verify_data"), given=given)
    return test


def validate_calibration(model, mode, calibration):
    """Raises UsageError if the TFLite `mode` needs --representative_data and it is missing.

    The rule is export.tflite's own (a quantization-aware model has learned
    ranges for int8 and needs no data, unless some layers hold tensors without
    trained ranges), asked before anything is converted.
    """
    if calibration is not None:
        return
    try:
        _tflite._validate_calibration(mode, None, _tflite._is_quantization_aware(model), model)
    except ValueError as error:
        # The rule's reason, without its advice in API terms (representative_data=...).
        reason = str(error).split(". ")[0].split(": ", 1)[-1]
        raise UsageError(f"--formats={_TFLITE_PREFIX}{mode} needs --representative_data: "
                         f"{reason}. Give --representative_data=digits or an .npz file with "
                         "x_train and y_train (a few hundred training inputs); tflite_dynamic "
                         "and tflite_float16 need none.") from error


def warmup_examples(count, sources):
    """The first `count` examples of the first data set given, or None for no warmup.

    `count` None takes up to 32 when there are examples, none otherwise.
    """
    given = [(flag, x) for flag, x in sources if x is not None]
    if count == 0 or (count is None and not given):
        return None
    if not given:
        raise UsageError(f"--warmup_examples={count} needs examples to send: give "
                         "--representative_data or --verify_data, or --warmup_examples=0.")
    flag, x = given[0]
    if count is None:
        return x[:32]
    if count > len(x):
        raise UsageError(f"--warmup_examples={count} asks for more examples than {flag} holds "
                         f"({len(x)}); use at most {len(x)}.")
    return x[:count]

