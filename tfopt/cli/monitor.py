"""tfopt-monitor: report input and prediction drift from TF Serving request logs.

Example (logs from TF Serving's request logging or tfopt-serve, the training
inputs saved with numpy.savez(path, x_train=..., y_train=...)):

  tfopt-monitor --logs='logs/prediction_log*' --reference=train.npz --output_dir=drift

Reads the predict records of the logs (TFRecord files of PredictionLog) and
compares the logged inputs with the reference: per-feature population
stability index (PSI) and Kolmogorov-Smirnov (KS) distance over per-example
summaries (mean, std, min, max) and each element; and the predicted class
shares (argmax of a (batch, classes) output) with the reference's classes
(its `predictions` array, else `y_train`). The reference .npz holds x_train
for a one-input model, or arrays named after the model's inputs. Writes
report.md, report.json and PNG plots into --output_dir.

Exit status: 0 no drift; 3 drift passes a threshold (so cron or CI can act);
2 a usage error (bad flag, no logs, a file that is not a request log or an
.npz); 1 another failure.
"""

import sys

from absl import flags

from tfopt.cli import _app
from tfopt.cli import _flags
from tfopt.cli import _inputs
from tfopt.serving import _drift

DRIFT = 3

_LOGS = flags.DEFINE_string(
    "logs", None, "Request logs: a file or glob of TFRecord files of PredictionLog, e.g. "
    "'logs/prediction_log*' (required).")
_REFERENCE = flags.DEFINE_string(
    "reference", None, "An .npz file of reference inputs: x_train, or arrays named after the "
    "model's inputs; optionally y_train or predictions for prediction drift (required).")
# Shared with tfopt-kit, which gives it a default: required here means given on the command line.
_OUTPUT_DIR = _flags.shared_string("output_dir", "Where report.md, report.json and the plots go "
                                   "(required).", __name__)
_PSI_THRESHOLD = flags.DEFINE_float(
    "psi_threshold", _drift.PSI_SIGNIFICANT, "PSI above which a feature or the class shares "
    "drift (0.1 moderate, 0.25 significant).")
_KS_THRESHOLD = flags.DEFINE_float(
    "ks_threshold", _drift.KS_DEFAULT, "Kolmogorov-Smirnov distance above which a feature "
    "drifts, in (0, 1).")
_TOP_K = flags.DEFINE_integer(
    "top_k", _drift.TOP_K, "How many elements of each input the report lists, highest PSI "
    "first.")
_MODEL_NAME = _flags.shared_string(
    "model_name", "The model's name in TF Serving, e.g. 'digits' (tfopt-monitor: the model "
    "whose requests to read when the logs mix several).", __name__)


def main(argv):
    _validate_flags(argv)
    # Imported after the flags are checked: TensorFlow takes seconds to load.
    from tfopt.serving import _monitor  # pylint: disable=import-outside-toplevel
    from tfopt.serving import _monitor_report  # pylint: disable=import-outside-toplevel
    from tfopt.serving import _request_logs  # pylint: disable=import-outside-toplevel
    try:
        log = _request_logs.read(_LOGS.value, _MODEL_NAME.value)
    except (FileNotFoundError, ValueError, TypeError) as error:
        raise _app.UsageError(f"--logs={_LOGS.value!r}: {error}") from error
    try:
        reference, classes, _ = _monitor.load_reference(_REFERENCE.value, log.inputs)
        report, samples = _monitor.measure(log, reference, classes, _PSI_THRESHOLD.value,
                                           _KS_THRESHOLD.value, _TOP_K.value)
    except ValueError as error:
        raise _app.UsageError(f"--reference={_REFERENCE.value!r}: {error}") from error
    written = _monitor_report.write(report, samples, _OUTPUT_DIR.value)
    for name in written:
        print(name)
    drifted = [name for name, d in {**report["inputs"], **report["predictions"]}.items()
               if d["drifted"]]
    print(f"drift in {', '.join(drifted)}" if drifted else "no drift")
    return DRIFT if report["drift"] else 0


def _validate_flags(argv):
    if len(argv) > 1:
        raise _app.UsageError(f"unexpected arguments {argv[1:]}; every input is a flag, "
                              "e.g. --logs='logs/*'.")
    missing = [name for name, holder in (("--logs", _LOGS), ("--reference", _REFERENCE),
                                         ("--output_dir", _OUTPUT_DIR))
               if not (holder.value and flags.FLAGS[holder.name].present)]
    if missing:
        raise _app.UsageError(f"{' and '.join(missing)} must be given. See tfopt-monitor "
                              "--help.")
    if not _PSI_THRESHOLD.value > 0:
        raise _app.UsageError(f"--psi_threshold={_PSI_THRESHOLD.value} must be above 0; 0.1 "
                              "flags moderate shifts, 0.25 significant ones.")
    if not 0 < _KS_THRESHOLD.value < 1:
        raise _app.UsageError(f"--ks_threshold={_KS_THRESHOLD.value} must be between 0 and 1 "
                              "(a KS distance); e.g. 0.2.")
    if _TOP_K.value < 1:
        raise _app.UsageError(f"--top_k={_TOP_K.value} must be at least 1.")
    _inputs.validate_writable_ancestor(_OUTPUT_DIR.value, f"--output_dir={_OUTPUT_DIR.value!r}")


def run(argv=None):
    _app.run(main, "tfopt-monitor", sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
