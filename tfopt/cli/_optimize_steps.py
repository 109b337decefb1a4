"""The steps of tfopt-optimize after its flags are checked: data, float model, pipeline, exports.

Each input check raises `UsageError` naming the flag before anything trains.
"""

import os
import shutil

import numpy as np

from tfopt import _files
from tfopt import export as tfopt_export
from tfopt import quantization
from tfopt.cli import _export_inputs
from tfopt.cli import _inputs
from tfopt.cli._app import UsageError
from tfopt.export import _layout
from tfopt.pipeline import _builtin
from tfopt.pipeline import _checks
from tfopt.pipeline import _figures
from tfopt.pipeline import _run
from tfopt.pipeline import _search
from tfopt.pipeline import _strategy
from tfopt.pipeline import _teacher

EXPORT_DIR = "export"
SAVED_MODEL_VERSION = 1
# Calibration examples for an int8 file converted from a float last stage.
_CALIBRATION_EXAMPLES = 200
# Examples replayed through the SavedModel as TF Serving warmup requests and checks.
_WARMUP_EXAMPLES = 8


def load_data(name, search, seed):
    """``(((x_train, y_train), (x_test, y_test)), validation, description)`` from --data.

    `validation` is the .npz's x_val, y_val, or None. For a search on data
    without them, the built-in model must not train on the examples the
    search will judge on: `float_model` holds them out (`builtin_validation`).
    """
    train, test = _inputs.load_data(name)
    validation = _inputs.load_validation(name) if search else None
    description = (f"{name}: {len(train[0])} training and {len(test[0])} test examples"
                   + ("" if test is not train else " (no test split: measured on training)")
                   + (f", {len(validation[0])} validation examples" if validation else ""))
    return (train, test), validation, description


def builtin_path(output_dir, spec):
    return os.path.join(output_dir, f"builtin-{spec[len(_builtin.PREFIX):]}.keras")


def float_model(spec, data, output_dir, overwrite, seed, validation=None, search=False,
                strategy=None):
    """The float model of --model and --data checked against it: ``(model, data, validation)``.

    A built-in model is trained on the training split and kept beside the
    run, so a restart continues with the same weights rather than retraining
    (threaded CPU kernels make a retrained model differ, and the run would
    then be refused as another one). For a search without validation data it
    trains on the training split less the examples the search holds out
    (`_search.validation_split`), which become the validation data, so that
    the search judges on examples no model trained on. Under a `strategy` it
    trains in its scope, so that every worker of a multi-worker run holds the
    same model; `output_dir` is then this worker's copy of the run.
    """
    model, data = _float_model(spec, data, output_dir, overwrite, seed,
                               search and validation is None, strategy)
    if search and validation is None and spec.startswith(_builtin.PREFIX):
        (fit, validation), test = _search.validation_split(data[0], seed), data[1]
        data = (fit, test)
    if validation is not None:
        validation, _ = _inputs.fit_data(model, validation, validation, given="--data (x_val)")
    return model, data, validation


def _float_model(spec, data, output_dir, overwrite, seed, hold_out, strategy):
    given = f"--model={spec!r}"
    if not spec.startswith(_builtin.PREFIX):
        model = _export_inputs.load_model(spec)
        _inputs.validate_classifier(model, given)
        return model, _inputs.fit_data(model, *data, given="--data")
    path = builtin_path(output_dir, spec)
    if _strategy.all_workers(strategy, os.path.isfile(path)) and not overwrite:
        model = quantization.load_model(path, compile=False)
        return model, _inputs.fit_data(model, *data, given="--data")
    if os.path.exists(os.path.join(output_dir, _run.RUN_FILE)) and not overwrite:
        raise UsageError(f"--output_dir={output_dir!r} holds another run (not of {spec}); give "
                         "another --output_dir, or --overwrite to start over there.")
    (x_train, y_train), _ = data
    try:
        labels = np.asarray(y_train)
        classes = max(2, int(labels.max()) + 1) if labels.size and labels.dtype.kind in "iuf" \
            else 2
        blank = _builtin.reference_cnn(np.shape(x_train)[1:], classes)
    except ValueError as error:
        raise UsageError(f"{given} cannot take --data: {error}") from error
    data = _inputs.fit_data(blank, *data, given="--data")
    train = _search.validation_split(data[0], seed)[0] if hold_out else data[0]
    with _strategy.scope(strategy):
        model = _builtin.train_builtin(spec, train, seed=seed)
    with _files.atomic_path(path) as staging:
        model.save(staging)
    if strategy is not None:  # the pipeline takes a model of this process's variables
        model = quantization.load_model(path, compile=False)
    return model, data


def load_teacher(path, model, data):
    """The model of --teacher, checked against --model and --data; None without --teacher."""
    if not path:
        return None
    given = f"--teacher={path!r}"
    if not os.path.exists(path):
        raise UsageError(f"{given} does not exist; give a .keras file or a SavedModel directory.")
    try:
        teacher = _teacher.load_teacher(path, model.input_shape[1:])
    except ValueError as error:
        raise UsageError(f"{given}: {error}") from error
    except Exception as error:  # pylint: disable=broad-except  (any failure means: not loadable)
        lines = [line for line in str(error).splitlines() if line.strip()]
        raise UsageError(f"{given} cannot be loaded: "
                         f"{lines[0] if lines else type(error).__name__}") from error
    try:
        _checks.validate_teacher(teacher, model, data[1])
    except ValueError as error:
        raise UsageError(f"{given}: {error}") from error
    return teacher


def run_pipeline(model, data, output_dir, options, overwrite, command, data_name, goals,
                 teacher=None, compare_tfmot=False, validation=None, strategy=None):
    """`pipeline.optimize` with the options of the flags; a run held there is a usage error."""
    try:
        return _run.optimize(model, data, output_dir, overwrite=overwrite, command=command,
                             data_name=data_name, teacher=teacher,
                             compare_tfmot=compare_tfmot, validation_data=validation,
                             strategy=strategy or _strategy.DEFAULT, **goals,
                             **options.as_dict())
    except _run.RunConflict as error:
        raise UsageError(f"--output_dir: {error.output_dir!r} holds another run (it differs in "
                         f"{error.changed}); give another --output_dir, or --overwrite to start "
                         "over there.") from error


def export(result, formats, name, data):
    """Exports the last stage into ``<output_dir>/export``; returns the paths written.

    tflite_int8: the qat stage's own int8 file (verified by the pipeline), or
    the last float stage converted to int8 (calibrated on training examples,
    verified on the test split). saved_model: the last stage's model as
    version 1 of ``export/<name>``, replaced on each run.
    Exports newer than the last stage are kept as they are (a finished run
    started again writes nothing).
    """
    root = os.path.join(result.output_dir, EXPORT_DIR)
    last = result.stages[-1]
    stage_dir = os.path.join(result.output_dir, _run.STAGES_DIR, last["stage"])
    model_path = os.path.join(stage_dir, _figures.MODEL_FILE)
    targets = {_export_inputs.SAVED_MODEL: os.path.join(root, name, str(SAVED_MODEL_VERSION)),
               "tflite_int8": _layout.tflite_path(root, name, "int8")}
    written = []
    (x_train, _), (x_test, y_test) = data
    model = None
    for kind in formats:
        target = targets[kind]
        written.append(target)
        if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(model_path):
            continue
        model = model or quantization.load_model(model_path, compile=False)
        if kind == "tflite_int8" and last["name"] == "qat":
            os.makedirs(os.path.dirname(target), exist_ok=True)
            with _files.atomic_path(target) as staging:
                shutil.copyfile(os.path.join(stage_dir, _figures.TFLITE_FILE), staging)
        elif kind == "tflite_int8":
            tfopt_export.tflite(model, target, mode="int8",
                                representative_data=x_train[:_CALIBRATION_EXAMPLES],
                                verify=(x_test, y_test))
        else:
            tfopt_export.saved_model(model, os.path.dirname(target),
                                     version=SAVED_MODEL_VERSION, overwrite=True,
                                     warmup_inputs=x_test[:_WARMUP_EXAMPLES])
    return written
