"""tfopt-optimize: one command from a trained model to small, fast, deployable files, with a report.

Example:
  tfopt-optimize --model=builtin:reference_cnn --data=digits --output_dir=run

Runs the stages of --recipe one after another on the float model (distill
into a narrower student, prune and remove channels, prune single weights,
quantization-aware training), each distilled from the float model; writes
each stage into <output_dir>/stages/NN-name/ (model.keras, model.tflite,
figures.json) before the next starts, then the report (report.md,
report.json and plots) and the files of --formats under
<output_dir>/export/, laid out as tfopt-export lays out an export root:

  export/tflite/<model_name>_int8.tflite   the last stage as an int8 TFLite file
  export/<model_name>/1/                   the last stage as a SavedModel for TF Serving

and prints the stage table and where the report is. --model is a .keras
(or .h5) file or a tf_keras SavedModel directory, or builtin:reference_cnn:
the benchmarks' reference CNN, trained first on --data (kept in
<output_dir>/builtin-reference_cnn.keras, so a restart continues with it).

A run started again on the same --output_dir continues after its last
finished stage; a finished run does nothing and says so; a run with other
flags, model or data there is refused unless --overwrite.

--strategy=mirrored trains each stage on every local device;
--strategy=multi_worker on every worker of the cluster that the TF_CONFIG
environment variable names (tf.distribute.MultiWorkerMirroredStrategy): start
the same command on each worker with its own TF_CONFIG, e.g. on worker 0 of two

  TF_CONFIG='{"cluster": {"worker": ["host0:12345", "host1:12345"]},
              "task": {"type": "worker", "index": 0}}'

Each step trains on --batch_size examples in all, split among the workers.
The chief (task "chief", or worker 0 in a cluster without one) writes
--output_dir, prints and exports; every other worker keeps its copy of the
run in <output_dir>/.workers/<type>-<index>/ and prints nothing. Continuing
a killed multi-worker run needs --output_dir on a file system all workers
share (the stages' backups are the chief's).

Exit status: 0 done, 2 bad flags or input (nothing is trained), 1 a failure
during the run. Set TFOPT_VERBOSE=1 to see TensorFlow's own log lines and
the traceback of a failure; --verbosity=1 shows every log line of tfopt.
"""

if __name__ == "__main__":  # started as `python -m`: silence TensorFlow before it loads
    from tfopt import quiet as _quiet
    _quiet.silence_tensorflow()

import contextlib  # noqa: E402  (after silencing TensorFlow)
import logging as std_logging  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402

from absl import flags  # noqa: E402
from absl import logging  # noqa: E402

from tfopt import quiet  # noqa: E402
from tfopt.cli import _app  # noqa: E402
from tfopt.cli import _flags  # noqa: E402
from tfopt.pipeline import _builtin  # noqa: E402
from tfopt.pipeline import _recipe  # noqa: E402
from tfopt.pipeline import _strategy  # noqa: E402

_DEFAULTS = _recipe.Options()
TFLITE_INT8 = "tflite_int8"
SAVED_MODEL = "saved_model"
FORMATS = (TFLITE_INT8, SAVED_MODEL)
STRATEGIES = _strategy.STRATEGIES

_MODEL = _flags.shared_string(
    "model", "The trained float model: a .keras (or .h5) file, a tf_keras SavedModel "
    "directory, or builtin:reference_cnn to train the reference CNN on --data first "
    "(required).", __name__)
_DATA = _flags.shared_string(
    "data", "'digits', 'fashion_mnist', or an .npz file with x_train, y_train (and optionally "
    "x_test, y_test; without them the figures are measured on the training data; and x_val, "
    "y_val: the examples the accuracy-aware search judges on, which --model did not train on) "
    "(required).",
    __name__)
_OUTPUT_DIR = _flags.shared_string(
    "output_dir", "The run's directory: stages, report, exports; a restart continues there "
    "(required).", __name__)
_RECIPE = flags.DEFINE_string(
    "recipe", "auto", f"'auto' (every stage) or stages from {','.join(_recipe.STAGES)}, in "
    "that order, comma-separated.")
_TEACHER = flags.DEFINE_string(
    "teacher", None, "The model every stage distills from, when not --model (e.g. a larger "
    "model of the same task): a .keras file, a tf_keras SavedModel, or a SavedModel written by "
    "tf.saved_model.save (a TF-Hub-style model: its __call__ or serving_default signature, "
    "giving logits). Default: --model teaches.")
_WIDTH = flags.DEFINE_float("width", _DEFAULTS.width,
                            "The distilled student's width relative to --model, in (0, 1].")
_CHANNEL_FRACTION = flags.DEFINE_float(
    "channel_fraction", _DEFAULTS.channel_fraction,
    "The share of channels the channels stage removes, in (0, 1).")
_SPARSITY = _flags.shared_float(
    "sparsity", _DEFAULTS.sparsity, "The share of weights the unstructured stage sets to zero, "
    "in (0, 1).", __name__)
_CRITERION = _flags.shared_enum(
    "criterion", _DEFAULTS.criterion, _recipe.CRITERIA, "How the channels stage ranks "
    "channels.", __name__)
_QAT_SCHEME = flags.DEFINE_enum(
    "qat_scheme", _DEFAULTS.qat_scheme, _recipe.QAT_SCHEMES, "The quantization of the qat "
    "stage; only int8_prune_preserving keeps the zeros of the unstructured stage.")
_EPOCHS_PER_STAGE = flags.DEFINE_integer("epochs_per_stage", _DEFAULTS.epochs_per_stage,
                                         "Training epochs of each stage, at least 1.")
_MIN_STEPS_PER_STAGE = flags.DEFINE_integer(
    "min_steps_per_stage", _DEFAULTS.min_steps_per_stage,
    "Training steps each stage gets at least: on a small data set a stage trains more whole "
    "epochs than --epochs_per_stage to reach them. 0 trains exactly --epochs_per_stage.")
_BATCH_SIZE = _flags.shared_integer("batch_size", _DEFAULTS.batch_size,
                                    "Training batch size, at least 1.", __name__)
_TEMPERATURE = flags.DEFINE_float("temperature", _DEFAULTS.temperature,
                                  "The distillation temperature, above 0.")
_MAX_ACCURACY_DROP = flags.DEFINE_float(
    "max_accuracy_drop", None, "Accuracy-aware search: the largest drop of TFLite accuracy "
    "below the float model's allowed, in points (0.5: 90.0% -> 89.5%). The search picks "
    "--width, --channel_fraction and --sparsity for the smallest model within the drop, judged "
    "on 10% of the training data held out, never on the test split.")
_TARGET_SIZE_KB = flags.DEFINE_float(
    "target_size_kb", None, "Accuracy-aware search: the largest gzipped TFLite file, in KB. "
    "Without --max_accuracy_drop the search picks the most accurate model that meets it.")
_TARGET_LATENCY_US = flags.DEFINE_float(
    "target_latency_us", None, "Accuracy-aware search: the largest single-thread LiteRT "
    "latency at batch 1, in microseconds; as --target_size_kb.")
_FORMATS = _flags.shared_list(
    "formats", list(FORMATS), f"What to export from the last stage, comma-separated: "
    f"{', '.join(FORMATS)}.", __name__)
_MODEL_NAME = _flags.shared_string(
    "model_name", "The exports' model name, e.g. 'digits'. Default: --model's file name "
    "without extension ('reference_cnn' for the built-in model).", __name__)
_STRATEGY = flags.DEFINE_enum(
    "strategy", _strategy.DEFAULT, STRATEGIES, "Where the stages train: 'default' (this "
    "process), 'mirrored' (every local device), 'multi_worker' (every worker named by the "
    "TF_CONFIG environment variable; run the same command on each).")
_COMPARE_TFMOT = flags.DEFINE_boolean(
    "compare_tfmot", False, "Also run tfmot's best recipe (80% magnitude pruning, prune-"
    "preserving int8 QAT, TFLite converter) from --model with the same epochs, and show it in "
    "the report's plots and tables as a reference point.")
_SEED = flags.DEFINE_integer("seed", _DEFAULTS.seed,
                             "Seed of weights and data order; the same seed repeats a run.")
_OVERWRITE = _flags.shared_boolean(
    "overwrite", False, "Start over in an --output_dir that holds a run with other flags, "
    "model or data.", __name__)

_GOALS = (_MAX_ACCURACY_DROP, _TARGET_SIZE_KB, _TARGET_LATENCY_US)
_SEARCHED = (_WIDTH, _CHANNEL_FRACTION, _SPARSITY)
_COMMAND = ["tfopt-optimize"]


def _validate_flags(argv):
    """The run's `_recipe.Options` and formats; UsageError for anything wrong in the flags."""
    if len(argv) > 1:
        raise _app.UsageError(f"unexpected arguments {argv[1:]}; every input is a flag, "
                              "e.g. --model=model.keras.")
    missing = [f"--{holder.name}" for holder in (_MODEL, _DATA, _OUTPUT_DIR) if not holder.value]
    if missing:
        raise _app.UsageError(f"missing {' and '.join(missing)}: the tool optimizes --model "
                              "(a file or builtin:reference_cnn) on --data into --output_dir.")
    try:
        _strategy.validate_strategy(_STRATEGY.value)
    except ValueError as error:
        raise _app.UsageError(f"--strategy={_STRATEGY.value}: {error}") from error
    goals = [f"--{holder.name}" for holder in _GOALS if holder.value is not None]
    searched = [f"--{holder.name}" for holder in _SEARCHED if flags.FLAGS[holder.name].present]
    if goals and searched:
        raise _app.UsageError(f"{', '.join(searched)} with {', '.join(goals)}: the accuracy-aware "
                              "search picks --width, --channel_fraction and --sparsity itself; "
                              "leave them out, or leave out the search goals to use yours.")
    try:
        from tfopt.pipeline import _search  # pylint: disable=import-outside-toplevel
        _search.Goals(*(holder.value for holder in _GOALS))
    except ValueError as error:
        raise _app.UsageError(f"--{error}") from error
    try:
        options = _recipe.Options(
            recipe=_RECIPE.value, width=_WIDTH.value, channel_fraction=_CHANNEL_FRACTION.value,
            sparsity=_SPARSITY.value, criterion=_CRITERION.value, qat_scheme=_QAT_SCHEME.value,
            epochs_per_stage=_EPOCHS_PER_STAGE.value,
            min_steps_per_stage=_MIN_STEPS_PER_STAGE.value, batch_size=_BATCH_SIZE.value,
            temperature=_TEMPERATURE.value, seed=_SEED.value)
    except (TypeError, ValueError) as error:  # messages start with the option's name
        raise _app.UsageError(f"--{error}") from error
    formats = [name.strip() for name in _FORMATS.value]
    unknown = [name for name in formats if name not in FORMATS]
    if not formats or unknown or len(set(formats)) != len(formats):
        raise _app.UsageError(f"--formats={','.join(_FORMATS.value)!r}: give one or more of "
                              f"{', '.join(FORMATS)}, each once, separated by commas.")
    if _MODEL.value.startswith(_builtin.PREFIX) and \
            _MODEL.value[len(_builtin.PREFIX):] not in _builtin.NAMES:
        raise _app.UsageError(f"--model={_MODEL.value!r}: the built-in models are "
                              f"{', '.join(_builtin.PREFIX + name for name in _builtin.NAMES)}.")
    from tfopt.cli import _export_inputs  # pylint: disable=import-outside-toplevel
    _export_inputs.validate_model_name(_model_name())
    from tfopt.cli import _inputs  # pylint: disable=import-outside-toplevel
    _inputs.validate_writable_ancestor(_OUTPUT_DIR.value, f"--output_dir={_OUTPUT_DIR.value!r}")
    return options, formats


def _model_name():
    if _MODEL_NAME.value:
        return _MODEL_NAME.value
    if _MODEL.value.startswith(_builtin.PREFIX):
        return _MODEL.value[len(_builtin.PREFIX):]
    return os.path.splitext(os.path.basename(os.path.normpath(_MODEL.value)))[0]


@contextlib.contextmanager
def _progress_logging():
    """The pipeline's INFO lines (one per stage) on stderr; tfopt's other INFO lines hidden.

    --verbosity given on the command line, or TFOPT_VERBOSE=1, leaves absl's
    logging as the user set it.
    """
    if flags.FLAGS["verbosity"].present or quiet.verbose():
        yield
        return

    def keep(record):
        return record.levelno > std_logging.INFO or str(record.msg).startswith("tfopt.pipeline")

    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.INFO)
    logger = std_logging.getLogger("absl")
    logger.addFilter(keep)
    # TensorFlow's own logger (a line per all-reduce under multi_worker) is not absl's.
    tensorflow_logger = std_logging.getLogger("tensorflow")
    tensorflow_level = tensorflow_logger.level
    tensorflow_logger.setLevel(std_logging.WARNING)
    try:
        yield
    finally:
        tensorflow_logger.setLevel(tensorflow_level)
        logger.removeFilter(keep)
        logging.set_verbosity(verbosity)


def main(argv):
    options, formats = _validate_flags(argv)
    task = (_strategy.read_tf_config() if _STRATEGY.value == _strategy.MULTI_WORKER
            else _strategy.Task())
    # Workers but the chief train as quietly as they can: the chief speaks for the run.
    with _progress_logging() if task.chief else _app.absl_at_warning():
        # Before anything runs in TensorFlow: multi_worker configures its collectives then.
        strategy = _strategy.make(_STRATEGY.value)
        from tfopt.cli import _optimize_steps  # pylint: disable=import-outside-toplevel
        goals = {holder.name: holder.value for holder in _GOALS}
        search = any(value is not None for value in goals.values())
        data, validation, data_name = _optimize_steps.load_data(_DATA.value, search,
                                                                options.seed)
        model, data, validation = _optimize_steps.float_model(
            _MODEL.value, data, _strategy.run_dir(_OUTPUT_DIR.value, task), _OVERWRITE.value,
            options.seed, validation, search, strategy)
        teacher = _optimize_steps.load_teacher(_TEACHER.value, model, data)
        result = _optimize_steps.run_pipeline(
            model, data, _OUTPUT_DIR.value, options, _OVERWRITE.value, " ".join(_COMMAND),
            data_name, goals, teacher, _COMPARE_TFMOT.value, validation, strategy)
    if not task.chief:  # its copy of the run is for training; the chief's is the run
        return 0
    with _app.absl_at_warning():
        exports = _optimize_steps.export(result, formats, _model_name(), data)
    from tfopt.pipeline import _report  # pylint: disable=import-outside-toplevel
    print(_report.stage_table({"stages": result.stages}))
    for path in exports:
        print(f"exported {path}")
    print(f"report: {result.report}")
    if result.missed:
        missed = ", ".join(f"--{name}={flags.FLAGS[name].value:g}" for name in result.missed)
        raise _app.Failure(f"no candidate met {missed}; the best found is the run's result "
                           f"(stages, exports, {result.report})")
    return 0


def run(argv=None):
    """Runs tfopt-optimize on `argv` (default: sys.argv) and exits with its status."""
    arguments = sys.argv if argv is None else argv
    _COMMAND[1:] = [shlex.quote(str(argument)) for argument in arguments[1:]]
    _app.run(main, "tfopt-optimize", sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
