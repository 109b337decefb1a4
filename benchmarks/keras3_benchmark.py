"""tfopt on Keras 3 models: Fashion-MNIST, against Keras' own int8 and tfopt's tf-keras path.

The reference CNN is built with Keras 3 and trained as the float model; the
same architecture built with tf-keras takes its weights, so both Kerases start
from one float model. From it, in one run: Keras 3 core ``model.quantize("int8")``
(Keras accuracy, variable bytes, whether it converts to TFLite); tfopt int8 QAT
and tfopt channels 50% + ``shrink``, each on Keras 3 (``tfopt.keras3``) and on
tf-keras (``tfopt.quantization`` / ``tfopt.pruning``) on the same batches; and a
plain Keras 3 fine-tune for the training step time. Every TFLite file runs
through LiteRT on the test set and all are timed single-thread, batch 1, in one
interleaved pass. Writes benchmarks/results/keras3.{json,md}
(keras3_quick.* with --quick).

    python -m benchmarks.keras3_benchmark [--quick]
"""

import os
import tempfile
import time
import warnings

import keras
import numpy as np
import tf_keras
from absl import app
from absl import flags
from absl import logging

from benchmarks import _common
from benchmarks import _keras3_arms as arms_lib
from benchmarks import _keras3_report as report
from benchmarks import _timers
from tfopt import datasets
from tfopt import export
from tfopt import pruning
from tfopt import quantization
from tfopt.keras3 import pruning as pruning3
from tfopt.keras3 import quantization as quantization3

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "A few thousand examples, one epoch each: checks the code, "
                  "not the numbers. Writes keras3_quick.{json,md}.")
flags.DEFINE_integer("epochs", 4, "Epochs of float training.")
flags.DEFINE_integer("qat_epochs", 1, "Fine-tune epochs of int8 quantization-aware training.")
flags.DEFINE_float("qat_learning_rate", 1e-4, "Adam learning rate of the QAT fine-tune.")
flags.DEFINE_integer("prune_epochs", 2, "Fine-tune epochs of channel pruning (and of the "
                     "plain Keras 3 fine-tune it is timed against).")
flags.DEFINE_float("channel_sparsity", 0.5, "Share of channels the schedule removes.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("warmup_batches", 10, "Batches skipped at the start of each fit before "
                     "step times count.")
flags.DEFINE_integer("rotate_every", 100, "Batches each arm trains before the next takes its "
                     "turn.")
flags.DEFINE_integer("latency_runs", 2000, "Timed TFLite invocations per file.")
flags.DEFINE_integer("seed", 0, "Seed of weights and batch order.")
flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Fashion-MNIST idx files.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR, "Where keras3.{json,md} go.")

QUICK = dict(train_examples=2560, test_examples=1000, epochs=1, qat_epochs=1, prune_epochs=1,
             warmup_batches=5, latency_runs=200)
FLAG_NAMES = ("quick", "epochs", "qat_epochs", "qat_learning_rate", "prune_epochs",
              "channel_sparsity", "batch_size", "warmup_batches", "rotate_every",
              "latency_runs", "seed", "data_dir")


def schedule_steps(n_train, epochs):
    """(end_step, frequency): reach the target at ~70% of fine-tuning, on a pruning step."""
    steps = epochs * -(-n_train // FLAGS.batch_size)
    frequency = min(100, max(1, steps // 5))
    return max(frequency, frequency * round(0.7 * steps / frequency)), frequency


# Models -------------------------------------------------------------------------------

def float_models(x_train, y_train):
    """(Keras 3 float model, tf-keras model with the same weights)."""
    keras.utils.set_random_seed(FLAGS.seed)
    float3 = arms_lib.train_float(_common.reference_cnn(keras), x_train, y_train,
                                  FLAGS.epochs, FLAGS.batch_size, FLAGS.seed)
    tf_keras.utils.set_random_seed(FLAGS.seed)
    float2 = _common.reference_cnn()
    float2.set_weights(float3.get_weights())
    _common.compile_model(float2)
    return float3, float2


def make_arms(float3, float2, n_train):
    end_step, frequency = schedule_steps(n_train, FLAGS.prune_epochs)
    decay = dict(begin_step=0, end_step=end_step, frequency=frequency)
    target = FLAGS.channel_sparsity
    warmup, qat_rate = FLAGS.warmup_batches, FLAGS.qat_learning_rate
    keras.utils.set_random_seed(FLAGS.seed)
    tf_keras.utils.set_random_seed(FLAGS.seed)
    arms = [
        arms_lib.Arm("keras3 fine-tune", _common.clone(float3), FLAGS.prune_epochs,
                     warmup, callback=keras.callbacks.Callback()),
        arms_lib.Arm("keras3 channels", pruning3.prune(
            _common.clone(float3), pruning3.PolynomialDecay(0.0, target, **decay),
            structure="channels"), FLAGS.prune_epochs, warmup,
            callback=pruning3.UpdatePruningStep()),
        arms_lib.Arm("keras3 int8 QAT", quantization3.quantize(
            _common.clone(float3), "int8"), FLAGS.qat_epochs, warmup, qat_rate),
        arms_lib.Arm("tf-keras channels", pruning.prune(
            _common.clone(float2), pruning.PolynomialDecay(0.0, target, **decay),
            structure="channels"), FLAGS.prune_epochs, warmup,
            callback=pruning.UpdatePruningStep()),
        arms_lib.Arm("tf-keras int8 QAT", quantization.quantize(
            _common.clone(float2), scheme="int8"), FLAGS.qat_epochs, warmup, qat_rate),
    ]
    return {arm.name: arm for arm in arms}, decay


# Files ----------------------------------------------------------------------------------

def tfopt_file(model, mode, directory, name):
    path = os.path.join(directory, name + ".tflite")
    with _common.quiet():
        export.tflite(model, path, mode=mode)
    with open(path, "rb") as f:
        return path, f.read()


def file_figures(path, model, x_test, y_test):
    figures = export.verify_tflite(path, x_test, y_test, reference=model, latency_runs=0)
    return {key: figures[key] for key in ("accuracy", "agreement", "max_abs_diff", "bytes",
                                          "gzip_bytes")}


def core_int8(float3, x_test, y_test, directory):
    """Keras 3's own post-training int8 (Dense layers only): accuracy, size, conversion."""
    core = _common.clone(float3)
    with warnings.catch_warnings():  # one "no `quantize` method" warning per other layer
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        core.quantize("int8")
    routes = arms_lib.try_conversions(core, directory)
    try:
        with _common.quiet():
            export.tflite(core, os.path.join(directory, "core_tfopt.tflite"), mode="float32")
        refused = None
    except ValueError as error:
        refused = arms_lib.first_line(error)
    quantized = sorted({layer.name for layer in core.layers
                        if getattr(layer, "quantization_mode", None) == "int8"})
    return core, {
        "keras_accuracy": _common.accuracy(core, x_test, y_test),
        "variable_bytes": arms_lib.variable_bytes(core),
        "keras_file_bytes": arms_lib.keras_file_bytes(core),
        "quantized_layers": quantized,
        "conversions": {name: {k: v for k, v in route.items() if k != "content"}
                        for name, route in routes.items()},
        "tfopt_export_refusal": refused,
    }, {name: route["content"] for name, route in routes.items() if route["ok"]}


def build_and_measure(float3, float2, arms, x_test, y_test, directory):
    """{row: figures} for every model, their files timed in one interleaved pass."""
    models = {
        "keras3 float": (float3, "float32"),
        "tf-keras float": (float2, "float32"),
        "keras3 int8 QAT": (arms["keras3 int8 QAT"].model, "int8"),
        "tf-keras int8 QAT": (arms["tf-keras int8 QAT"].model, "int8"),
        "keras3 channels + shrink": (pruning3.shrink(arms["keras3 channels"].model), "float32"),
        "tf-keras channels + shrink": (pruning.shrink(arms["tf-keras channels"].model),
                                       "float32"),
    }
    rows, files = {}, {}
    for name, (model, mode) in models.items():
        path, files[name] = tfopt_file(model, mode, directory, name.replace(" ", "_"))
        rows[name] = {"mode": mode, "keras_accuracy": _common.accuracy(model, x_test, y_test),
                      **file_figures(path, model, x_test, y_test)}
        if mode == "int8":
            contents = export.inspect_tflite(path)
            rows[name].update(
                ops=contents["ops"], tensor_dtypes=contents["tensor_dtypes"],
                fully_int8=contents["fully_int8"],
                input_output_dtypes=[d for _, d in contents["inputs"] + contents["outputs"]])
        if name.endswith("float") or "shrink" in name:
            count = pruning3.count_flops if arms_lib.is_keras3(model) else pruning.count_flops
            rows[name].update(flops=count(model), parameters=model.count_params())
    core, rows["keras3 core int8"], core_files = core_int8(float3, x_test, y_test, directory)
    for route, content in core_files.items():  # only if Keras' int8 model converted
        files[f"keras3 core int8 via {route}"] = content
        path = os.path.join(directory, "core_int8_measured.tflite")
        with open(path, "wb") as f:
            f.write(content)
        rows["keras3 core int8"]["conversions"][route].update(
            file_figures(path, core, x_test, y_test))
    latency = _common.tflite_latencies(files, FLAGS.latency_runs)
    for name, ms in latency.items():
        if name in rows:
            rows[name]["latency_ms"] = ms
        else:
            route = name.split(" via ", 1)[1]
            rows["keras3 core int8"]["conversions"][route]["latency_ms"] = ms
    rows["keras3 float"]["variable_bytes"] = arms_lib.variable_bytes(float3)
    rows["keras3 float"]["keras_file_bytes"] = arms_lib.keras_file_bytes(float3)
    return rows


def ratios(rows):
    for kind in ("keras3", "tf-keras"):
        base = rows[f"{kind} float"]
        qat, shrunk = rows[f"{kind} int8 QAT"], rows[f"{kind} channels + shrink"]
        for row in (qat, shrunk):
            row["speedup_vs_float"] = base["latency_ms"] / row["latency_ms"]
            row["size_vs_float"] = row["bytes"] / base["bytes"]
        shrunk["flops_reduction"] = base["flops"] / shrunk["flops"]
        shrunk["parameter_reduction"] = base["parameters"] / shrunk["parameters"]
        shrunk["speedup_per_flops_reduction"] = (shrunk["speedup_vs_float"]
                                                 / shrunk["flops_reduction"])


def step_times(arms):
    reference = arms["keras3 fine-tune"].timer
    return {name: {"ms_per_step": arm.timer.ms_per_step(),
                   "vs_keras3_fine_tune": _timers.paired_ratio(arm.timer, reference),
                   "callback_ms_per_step": arm.hooks.ms_per_step()["total"] if arm.hooks else None,
                   "epochs": arm.epochs, "seconds": arm.seconds}
            for name, arm in arms.items()}


def main(argv):
    del argv
    start = time.perf_counter()
    logging.set_verbosity(logging.WARNING)
    if FLAGS.quick:
        for name in ("epochs", "qat_epochs", "prune_epochs", "warmup_batches", "latency_runs"):
            if not FLAGS[name].present:
                FLAGS[name].value = QUICK[name]
    limits = (QUICK["train_examples"], QUICK["test_examples"]) if FLAGS.quick else (None, None)
    (x_train, y_train), (x_test, y_test) = _common.load_fashion_mnist(FLAGS.data_dir, *limits)
    float3, float2 = float_models(x_train, y_train)
    print(f"float model trained: {time.perf_counter() - start:.0f} s", flush=True)
    arms, decay = make_arms(float3, float2, len(x_train))
    arms_lib.train_together(list(arms.values()), x_train, y_train, FLAGS.batch_size,
                            FLAGS.rotate_every, FLAGS.seed,
                            log=lambda line: print(line, flush=True))
    with tempfile.TemporaryDirectory() as directory:
        rows = build_and_measure(float3, float2, arms, x_test, y_test, directory)
    ratios(rows)
    flag_values = {name: FLAGS[name].value for name in FLAG_NAMES}
    results = {"quick": FLAGS.quick, "flags": flag_values, "schedule": decay, "rows": rows,
               "step_times": step_times(arms), "train_examples": len(x_train),
               "test_examples": len(x_test), "keras_version": keras.__version__,
               "tfopt_commit": _common.tfopt_commit()}
    results["targets"] = report.targets(results)
    results["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    results["environment"]["versions"]["keras"] = keras.__version__
    stem = "keras3_quick" if FLAGS.quick else "keras3"
    _common.write_results(FLAGS.output_dir, stem, results, report.markdown(results))


if __name__ == "__main__":
    app.run(main)
