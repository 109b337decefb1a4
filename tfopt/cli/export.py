"""tfopt-export: export a saved Keras model for TF Serving and LiteRT in one run.

Example:
  tfopt-export --model=model.keras --base_path=models/digits --model_name=digits \\
      --formats=saved_model,tflite_int8 --representative_data=digits \\
      --verify_data=digits --labels=stable

Writes, under the export root (the parent of --base_path, which the TF
Serving container mounts at /models):

  <root>/<model_name>/<version>/            the SavedModel (signature serving_default;
                                            classify too with --classify; warmup requests)
  <root>/tflite/<model_name>_<mode>.tflite  one file per tflite_* format (or --tflite_dir)
  <root>/models.config                      this model's entry added or updated; other
                                            models and their labels are kept
  <root>/batching.config, monitoring.config written with defaults when missing, else kept

then prints a table: format, bytes, gzip bytes, accuracy and agreement with the
Keras model on --verify_data, largest output difference, path.

--model is a .keras (or .h5) file, tfopt layers included (pruning wrappers are
stripped first), or a directory written by tf_keras' model.save; a .keras file
saved by Keras 3 is loaded with Keras 3 and exported as such. --version
defaults to the next integer after the highest version in --base_path; an
existing version is replaced only with --overwrite. TFLite files carry no
version: each run replaces the model's files of the formats it writes.
--labels assigns version labels (e.g. stable, canary) to the new version; a
label given moves to it, the others stay where they are, and every labelled
version stays served (the model's version policy lists them). TF Serving
accepts labels at startup only with --allow_version_labels_for_unavailable_models.

The .npz files are those tfopt-prune reads (x_train, y_train, and optionally
x_test, y_test), or 'digits': --representative_data calibrates int8 and int16x8
files with x_train; --verify_data measures on x_test, y_test (x_train, y_train
when it has no test split); --warmup_examples (default: up to 32 when either
is given) become the SavedModel's warmup requests, taken from the first of them.

Exit status: 0 done, 2 bad flags or input files (nothing is exported), 1 a
failure during the run. Nothing partial is left either way: TFLite files are
converted into hidden staging directories and moved into place only after the
SavedModel and the configs are written; if the configs cannot be written
after the SavedModel was, the new version directory is removed (the message
says so). Set TFOPT_VERBOSE=1 to see TensorFlow's log lines and the traceback
of a failure.
"""

import os
import sys

import tfopt  # noqa: F401  (selects Keras 2 before TensorFlow loads)

from absl import flags

from tfopt.cli import _app
from tfopt.cli import _flags
from tfopt.cli import _export_configs
from tfopt.cli import _export_inputs
from tfopt.cli import _export_steps
from tfopt.cli import _export_table
from tfopt.export import _layout
from tfopt.export import _signatures
from tfopt.export import _versions
from tfopt.export import _warmup

_MODEL_NAME_HELP = ("The model's name in TF Serving and in models.config, e.g. 'digits' "
                    "(required).")
_MODEL_HELP = ("Input model: a .keras (or legacy .h5) file, or for tfopt-export also a tf_keras "
               "SavedModel directory (required).")


_MODEL = _flags.shared_string("model", _MODEL_HELP, __name__)
_BASE_PATH = flags.DEFINE_string(
    "base_path", None, "The model's TF Serving base path, <export root>/<model_name>; versions "
    "are written inside it (required).")
_MODEL_NAME = _flags.shared_string("model_name", _MODEL_NAME_HELP, __name__)
_VERSION = flags.DEFINE_integer("version", None, "Version to write, a positive integer. "
                                "Default: the highest existing version + 1 (1 when none).",
                                lower_bound=1, upper_bound=_versions.INT64_MAX)
_FORMATS = _flags.shared_list(
    "formats", [_export_inputs.SAVED_MODEL],
    f"What to write, comma-separated: {', '.join(_export_inputs.FORMATS)}.", __name__)
_REPRESENTATIVE_DATA = flags.DEFINE_string(
    "representative_data", None, "Calibration data for tflite_int8/tflite_int16x8: 'digits' "
    "or an .npz file with x_train, y_train (needed unless the model is quantization-aware).")
_WARMUP_EXAMPLES = flags.DEFINE_integer(
    "warmup_examples", None, f"Examples written as TF Serving warmup requests, each alone and "
    f"in batches, 0 for none; at most {_warmup.max_examples()}, which make TF Serving's cap of "
    f"{_warmup.MAX_RECORDS} records. Default: up to 32 when --representative_data or "
    "--verify_data is given, else none.", lower_bound=0, upper_bound=_warmup.max_examples())
_VERIFY_DATA = flags.DEFINE_string(
    "verify_data", None, "Labelled examples to measure every export on: 'digits' or an .npz "
    "file (x_test, y_test used when present, else x_train, y_train).")
_CLASSIFY = flags.DEFINE_boolean("classify", False, "Also write the 'classify' signature "
                                 "(TF Serving's Classify API; classifiers with one input).")
_LABELS = flags.DEFINE_list("labels", [], "Version labels for the new version, e.g. "
                            "'stable' or 'canary'; comma-separated.")
_TFLITE_DIR = flags.DEFINE_string("tflite_dir", None, "Directory for the TFLite files. "
                                  "Default: <export root>/tflite.")
_OVERWRITE = _flags.shared_boolean("overwrite", False, "Replace the version given by "
                                   "--version if it exists.", __name__)

# Flags that only change the SavedModel: given without it, they would do nothing.
_SAVED_MODEL_FLAGS = (("--version", _VERSION), ("--classify", _CLASSIFY),
                      ("--labels", _LABELS), ("--warmup_examples", _WARMUP_EXAMPLES),
                      ("--overwrite", _OVERWRITE))


def _validate_flags(argv):
    """The checked --formats; raises UsageError for anything wrong in the flags alone."""
    if len(argv) > 1:
        raise _app.UsageError(f"unexpected arguments {argv[1:]}; every input is a flag, "
                              "e.g. --model=model.keras.")
    missing = [flag for flag, holder in (("--model", _MODEL), ("--base_path", _BASE_PATH),
                                         ("--model_name", _MODEL_NAME)) if not holder.value]
    if missing:
        raise _app.UsageError(f"missing {' and '.join(missing)}: the tool reads a model from "
                              "--model and exports it as --model_name under --base_path.")
    formats = _export_inputs.validate_formats(_FORMATS.value)
    if _export_inputs.SAVED_MODEL not in formats:
        unused = [flag for flag, holder in _SAVED_MODEL_FLAGS if holder.value]
        if unused:
            raise _app.UsageError(f"{unused[0]} applies to the SavedModel, but --formats="
                                  f"{','.join(formats)} does not write one; add saved_model.")
    if _TFLITE_DIR.value is not None and not any(map(_export_inputs.tflite_mode, formats)):
        raise _app.UsageError(f"--tflite_dir applies to TFLite files, but --formats="
                              f"{','.join(formats)} writes none; add a tflite_* format.")
    if _OVERWRITE.value and _VERSION.value is None:
        raise _app.UsageError("--overwrite replaces an existing version: say which with "
                              "--version=N (without --version the next free version is used).")
    _export_inputs.validate_model_name(_MODEL_NAME.value)
    _export_inputs.validate_base_path(_BASE_PATH.value, _MODEL_NAME.value)
    _export_inputs.validate_labels(_LABELS.value)
    if _TFLITE_DIR.value is not None:
        _export_inputs.validate_writable_directory(_TFLITE_DIR.value,
                                                   f"--tflite_dir={_TFLITE_DIR.value!r}")
    return formats


def _tflite_formats(formats, root):
    """``[(format name, mode, final path)]`` of the tflite_* formats, in the order given."""
    found = []
    for name in formats:
        mode = _export_inputs.tflite_mode(name)
        if mode is None:
            continue
        path = _layout.tflite_path(root, _MODEL_NAME.value, mode)
        if _TFLITE_DIR.value is not None:
            path = os.path.join(_TFLITE_DIR.value, os.path.basename(path))
        found.append((name, mode, path))
    return found


def _plan(formats):
    """The checked `_export_steps.Plan`: flags, files and data, all before anything is written."""
    root = _layout.export_root(_BASE_PATH.value)
    saved_model = _export_inputs.SAVED_MODEL in formats
    plan = _export_steps.Plan(model=None, base_path=_BASE_PATH.value,
                              tflite=_tflite_formats(formats, root), saved_model=saved_model,
                              version=_VERSION.value, overwrite=_OVERWRITE.value,
                              classify=_CLASSIFY.value)
    if saved_model:
        plan.configs = _export_configs.ConfigUpdate(root, _MODEL_NAME.value, _BASE_PATH.value,
                                                    _LABELS.value)
        _export_configs.validate_version_free(_BASE_PATH.value, _VERSION.value,
                                              _OVERWRITE.value)
    plan.model = model = _export_inputs.load_model(_MODEL.value)
    if _CLASSIFY.value:
        try:
            _signatures.validate_classify(model, _signatures.input_specs(model), None, None)
        except ValueError as error:
            raise _app.UsageError(f"--classify: {error}") from error
    if _REPRESENTATIVE_DATA.value:
        plan.calibration = _export_inputs.representative_examples(model,
                                                                  _REPRESENTATIVE_DATA.value)
    if _VERIFY_DATA.value:
        plan.verify = _export_inputs.verify_examples(model, _VERIFY_DATA.value)
    for _, mode, _ in plan.tflite:
        _export_inputs.validate_calibration(model, mode, plan.calibration)
    plan.warmup = _export_inputs.warmup_examples(_WARMUP_EXAMPLES.value, [
        ("--representative_data", plan.calibration),
        ("--verify_data", None if plan.verify is None else plan.verify[0])])
    return plan


def main(argv):
    with _app.absl_at_warning():
        plan = _plan(_validate_flags(argv))
        rows = _export_steps.write(plan)
    print(_export_table.render(rows))
    if plan.configs is not None:
        print(plan.configs.summary())


def run(argv=None):
    """Runs tfopt-export on `argv` (default: sys.argv) and exits with its status."""
    _app.run(main, "tfopt-export", sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
