"""SavedModel export on Fashion-MNIST: the server-side gain of shrinking, measured in TensorFlow.

Trains the reference CNN as the float model, then derives tfopt's two smaller
models from it: channel pruning (50%) followed by `shrink`, and a
`make_student(weights="teacher")` student trained by a `Distiller`. Each is
exported with `export.saved_model` and measured the way TF Serving runs it:
loaded by tag ``serve`` through TensorFlow's SavedModel loader in a fresh
graph and session, and called through its ``serving_default`` signature.
Reports size on disk, load time, signature latency at batch 1 and 32, test
accuracy of the served outputs, FLOPs, and where a batch-32 call spends its
time layer by layer, each against the float model; writes
benchmarks/results/export.{json,md} (export_quick.* with --quick).

    python -m benchmarks.export_benchmark [--quick] [--threads N]
"""

import os
import tempfile
import time


import numpy as np
import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from benchmarks import _common
from benchmarks import _export_report
from benchmarks import _serving_timing
from benchmarks._common import clone
from benchmarks._common import compile_model
from benchmarks._common import quiet
from tfopt import datasets
from tfopt import distillation
from tfopt import export
from tfopt import pruning
from tfopt.export import _warmup

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "A few thousand examples, one epoch, few timings: checks "
                  "the code, not the numbers. Writes export_quick.{json,md}.")
flags.DEFINE_integer("epochs", 4, "Epochs of float (baseline and teacher) training.",
                     lower_bound=1)
flags.DEFINE_integer("finetune_epochs", 2, "Epochs of channel-pruning fine-tuning.",
                     lower_bound=1)
flags.DEFINE_integer("student_epochs", 4, "Epochs of distillation.", lower_bound=1)
flags.DEFINE_integer("batch_size", 128, "Training batch size.", lower_bound=1)
flags.DEFINE_float("channel_sparsity", 0.5, "Fraction of channels channel pruning removes, "
                   "in (0, 1).")
flags.DEFINE_float("width", 0.3, "make_student width: the fraction of hidden units kept, "
                   "in (0, 1).")
flags.DEFINE_float("temperature", 2.0, "Distiller temperature, > 0.")
flags.DEFINE_float("alpha", 0.5, "Distiller hard-label weight.", lower_bound=0.0,
                   upper_bound=1.0)
flags.DEFINE_integer("warmup_examples", 64, "Test images each export gets as TF Serving "
                     "warmup requests (and verifies against the Keras model).", lower_bound=1)
flags.DEFINE_integer("load_runs", 10, "Timed loads of each SavedModel, interleaved.",
                     lower_bound=1)
flags.DEFINE_integer("latency_rounds", 20, "Rounds of signature calls; the models take "
                     "turns within each round.", lower_bound=1)
flags.DEFINE_integer("latency_runs", 1000, "Timed signature calls per model and batch size "
                     "(at least one per round).", lower_bound=1)
flags.DEFINE_integer("trace_runs", 50, "Traced batch-32 runs per model for the time per "
                     "layer.", lower_bound=1)
flags.DEFINE_integer("threads", 1, "Intra-op threads of every session (TF Serving's "
                     "--tensorflow_intra_op_parallelism; 0 lets TensorFlow use all CPUs).",
                     lower_bound=0)
flags.DEFINE_integer("seed", 0, "Seed of weights and batch order.")
flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Fashion-MNIST idx files.")
flags.DEFINE_string("export_dir", None, "Export root to write the SavedModels to and keep; "
                    "by default a temporary directory, removed at the end.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR, "Where export.json and export.md go.")
# Checked when the flags are parsed, so a bad value stops the run before training.
flags.register_validator("channel_sparsity", lambda v: 0 < v < 1,
                         "--channel_sparsity must be in (0, 1), e.g. 0.5.")
flags.register_validator("width", lambda v: 0 < v < 1,
                         "--width must be in (0, 1): the student is narrower, e.g. 0.3.")
flags.register_validator("temperature", lambda v: v > 0,
                         "--temperature must be > 0, e.g. 2.")


@flags.validator("warmup_examples")
def _validate_warmup_examples(value):
    try:
        _warmup.validate_count(value, "--warmup_examples")
    except ValueError as error:
        raise flags.ValidationError(str(error)) from None
    return True


@flags.multi_flags_validator(["export_dir", "output_dir"])
def _validate_directories(values):
    for name, path in values.items():
        if path is None:
            continue
        if os.path.exists(path) and not os.path.isdir(path):
            raise flags.ValidationError(f"--{name}={path} is a file; give a directory (it is "
                                        "created if missing).")
    return True


def make_directories():
    """Creates --output_dir and --export_dir now, so an unwritable one fails before training."""
    for name in ("output_dir", "export_dir"):
        if FLAGS[name].value is not None:
            try:
                os.makedirs(FLAGS[name].value, exist_ok=True)
            except OSError as error:
                raise app.UsageError(f"--{name}={FLAGS[name].value}: {error.strerror}; give a "
                                     "directory you can write to.") from None


QUICK = dict(train_examples=2560, test_examples=1000, epochs=1, finetune_epochs=1,
             student_epochs=1, load_runs=3, latency_rounds=4, latency_runs=80,
             trace_runs=5)
BATCH_SIZES = (1, 32)
MODELS = ("float", "shrunk", "distilled")


# Models ----------------------------------------------------------------------------

def fit(model, x, y, epochs, callbacks=()):
    model.fit(x, y, batch_size=FLAGS.batch_size, epochs=epochs, verbose=0,
              callbacks=list(callbacks))
    return model


def train_models(x, y):
    """{"float": the reference CNN, "shrunk": its channel-pruned, shrunk copy,
    "distilled": a Distiller whose student learned from it}, and the pruning schedule."""
    baseline = fit(compile_model(_common.reference_cnn()), x, y, FLAGS.epochs)

    steps = FLAGS.finetune_epochs * -(-len(x) // FLAGS.batch_size)
    # Reach the target sparsity at ~70% of fine-tuning, on a pruning step, as the
    # pruning benchmark does, so the last steps recover accuracy.
    frequency = min(100, max(1, steps // 5))
    schedule = dict(begin_step=0, frequency=frequency,
                    end_step=max(frequency, frequency * round(0.7 * steps / frequency)))
    pruned = compile_model(pruning.prune(
        clone(baseline), pruning.PolynomialDecay(0.0, FLAGS.channel_sparsity, **schedule),
        structure="channels"))
    fit(pruned, x, y, FLAGS.finetune_epochs, [pruning.UpdatePruningStep()])

    student = distillation.make_student(baseline, FLAGS.width, weights="teacher")
    distiller = distillation.Distiller(baseline, student, temperature=FLAGS.temperature,
                                       alpha=FLAGS.alpha)
    distiller.compile(keras.optimizers.Adam(), metrics=["accuracy"])
    fit(distiller, x, y, FLAGS.student_epochs)
    # The Distiller itself goes to export, which exports its student.
    return {"float": baseline, "shrunk": pruning.shrink(pruned), "distilled": distiller}, schedule


def keras_model(model):
    return model.student if isinstance(model, distillation.Distiller) else model


# Measurements -------------------------------------------------------------------------

def layer_flops(model):
    """{layer: FLOPs per example} of a chain of layers (the CNNs here), from `count_flops`
    of the model cut after each layer."""
    flops, before = {}, 0
    for layer in model.layers:
        upto = pruning.count_flops(keras.Model(model.inputs, layer.output))
        flops[layer.name], before = upto - before, upto
    return flops


def measure_models(models, export_root, x_test, y_test):
    """Exports each model under `export_root` and measures it: {model: figures}."""
    rows, version_dirs = {}, {}
    for name in MODELS:
        model = keras_model(models[name])
        with quiet():
            version_dirs[name] = export.saved_model(
                models[name], os.path.join(export_root, name),
                warmup_inputs=x_test[:FLAGS.warmup_examples])
            # Accuracy from the served outputs, and how far they are from Keras'.
            served = export.verify_saved_model(version_dirs[name], x_test, reference=model,
                                               labels=y_test)
        rows[name] = {"parameters": model.count_params(), "flops": pruning.count_flops(model),
                      "layer_flops": layer_flops(model),
                      "accuracy": served["reference_accuracy"],
                      "served_accuracy": served["accuracy"],
                      "agreement": served["agreement"], "max_abs_diff": served["max_abs_diff"],
                      "version_dir": os.path.relpath(version_dirs[name], export_root),
                      **_serving_timing.directory_size(version_dirs[name])}
    with quiet():
        load_ms = _serving_timing.load_times(version_dirs, FLAGS.load_runs, FLAGS.threads)
        bundles = {name: _serving_timing.load(path, FLAGS.threads)
                   for name, path in version_dirs.items()}
    try:
        for batch in BATCH_SIZES:
            rounds = _serving_timing.signature_latencies(
                bundles, x_test[:batch], FLAGS.latency_rounds, FLAGS.latency_runs)
            for name in MODELS:
                rows[name][f"batch{batch}_ms"] = float(np.median(rounds[name]))
                rows[name][f"batch{batch}_round_ms"] = rounds[name]
        for name in MODELS:
            rows[name]["load_ms"] = load_ms[name]
            rows[name]["batch32_layer_ms"] = _serving_timing.layer_times(
                bundles[name], [layer.name for layer in keras_model(models[name]).layers],
                x_test[:32], FLAGS.trace_runs)
    finally:
        for bundle in bundles.values():
            bundle.close()
    return rows


def add_ratios(rows):
    """Each model against the float one: reductions and speedups (> 1 is better).

    Latency speedups are paired: the median over rounds of the float model's
    round median / this model's in the same round.
    """
    base = rows["float"]
    for row in rows.values():
        row["size_reduction"] = base["bytes"] / row["bytes"]
        row["gzip_size_reduction"] = base["gzip_bytes"] / row["gzip_bytes"]
        row["parameter_reduction"] = base["parameters"] / row["parameters"]
        row["flops_reduction"] = base["flops"] / row["flops"]
        row["load_speedup"] = base["load_ms"] / row["load_ms"]
        for batch in BATCH_SIZES:
            key = f"batch{batch}_round_ms"
            row[f"batch{batch}_speedup"] = float(np.median(
                np.divide(base[key], row[key])))
        row["batch32_speedup_per_flops_reduction"] = (
            row["batch32_speedup"] / row["flops_reduction"])
        # The traced ops alone, without the per-call session time: the speedup a
        # caller with no per-call overhead at all would see.
        row["batch32_op_ms"] = sum(ms for layer, ms in row["batch32_layer_ms"].items()
                                   if layer != "session")
    for row in rows.values():
        row["batch32_op_speedup"] = base["batch32_op_ms"] / row["batch32_op_ms"]
        row["batch32_op_speedup_per_flops_reduction"] = (
            row["batch32_op_speedup"] / row["flops_reduction"])


def targets(rows):
    shrunk = rows["shrunk"]
    ratio = shrunk["batch32_speedup_per_flops_reduction"]
    return [{"name": "shrunk model's batch-32 signature speedup >= 0.8 x its FLOPs reduction",
             "measured": f"{shrunk['batch32_speedup']:.2f}x speedup / "
                         f"{shrunk['flops_reduction']:.2f}x FLOPs reduction = {ratio:.2f}",
             "met": ratio >= 0.8}]


# Main ------------------------------------------------------------------------------------

def main(argv):
    del argv
    start = time.perf_counter()
    if FLAGS.quick:
        for name in ("epochs", "finetune_epochs", "student_epochs", "load_runs",
                     "latency_rounds", "latency_runs", "trace_runs"):
            if not FLAGS[name].present:
                FLAGS[name].value = QUICK[name]
    make_directories()
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.quick:
        data = _common.load_fashion_mnist(FLAGS.data_dir, QUICK["train_examples"],
                                          QUICK["test_examples"])
    else:
        data = _common.load_fashion_mnist(FLAGS.data_dir)
    (x_train, y_train), (x_test, y_test) = data

    models, schedule = train_models(x_train, y_train)
    logging.info("trained in %.0f s", time.perf_counter() - start)
    if FLAGS.export_dir:
        rows = measure_models(models, FLAGS.export_dir, x_test, y_test)
    else:
        with tempfile.TemporaryDirectory() as export_root:
            rows = measure_models(models, export_root, x_test, y_test)
    add_ratios(rows)

    flag_values = {name: FLAGS[name].value for name in (
        "quick", "epochs", "finetune_epochs", "student_epochs", "batch_size",
        "channel_sparsity", "width", "temperature", "alpha", "warmup_examples", "load_runs",
        "latency_rounds", "latency_runs", "trace_runs", "threads", "seed", "data_dir")}
    r = {"quick": FLAGS.quick, "flags": flag_values, "train_examples": len(x_train),
         "test_examples": len(x_test), "schedule": schedule, "rows": rows,
         # TensorFlow's CPU kernels: oneDNN unless TF_ENABLE_ONEDNN_OPTS=0 (then Eigen).
         "tf_enable_onednn_opts": os.environ.get("TF_ENABLE_ONEDNN_OPTS", "unset (oneDNN on)"),
         "targets": targets(rows)}
    r["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    stem = "export_quick" if FLAGS.quick else "export"
    _common.write_results(FLAGS.output_dir, stem, r, _export_report.markdown(r))


if __name__ == "__main__":
    app.run(main)
