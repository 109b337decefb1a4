"""Quantization on Fashion-MNIST: tfopt against the plain tfmot + TFLiteConverter recipe.

From one trained float CNN, builds every deployment file both ways in one run:
float32, dynamic range, float16, post-training int8, quantization-aware int8
(one fine-tune epoch) and, tfopt only (tfmot has no such scheme), binary
weights. Each file runs through LiteRT: accuracy on the test set, bytes, gzip
bytes and single-thread batch-1 latency relative to float32. Writes
benchmarks/results/quantization.{json,md} (quantization_quick.* with --quick).

    python -m benchmarks.quantization_benchmark [--quick]
"""

import gzip
import os
import tempfile
import time


import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from benchmarks import _common
from tfopt import datasets
from tfopt import export
from tfopt import quantization

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "A few thousand examples, one epoch each: checks the code, "
                  "not the numbers. Writes quantization_quick.{json,md}.")
flags.DEFINE_integer("epochs", 4, "Epochs of float training.")
flags.DEFINE_integer("qat_epochs", 1, "Fine-tune epochs of int8 quantization-aware training.")
flags.DEFINE_integer("binary_epochs", 4, "Fine-tune epochs of binary-weight training.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("representative_examples", 500, "Calibration examples for post-training int8.")
flags.DEFINE_integer("latency_runs", 2000, "Timed invocations per file.")
flags.DEFINE_integer("seed", 0, "Seed of weights and batch order.")
flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Fashion-MNIST idx files.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR, "Where quantization.{json,md} go.")

QUICK = dict(train_examples=3000, test_examples=1000, epochs=1, qat_epochs=1, binary_epochs=1,
             latency_runs=200)
MODES = ("float32", "dynamic", "float16", "int8")


def fit(model, x, y, epochs, learning_rate=1e-3):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(x, y, batch_size=FLAGS.batch_size, epochs=epochs, verbose=0)
    return model


# The plain recipe: what a user writes from the TensorFlow and tfmot guides -----------

def plain_convert(model, mode, representative):
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode != "float32":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode == "int8":
        if representative is not None:
            converter.representative_dataset = lambda: (
                [representative[i:i + 1]] for i in range(len(representative)))
            # A QAT model (no representative data) must not ask for integer-only
            # ops: the converter would then demand calibration data.
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    with _common.quiet():
        return converter.convert()


def tfopt_convert(model, mode, representative, directory, name):
    path = os.path.join(directory, name + ".tflite")
    with _common.quiet():
        export.tflite(model, path, mode=mode, representative_data=representative)
    with open(path, "rb") as f:
        return f.read()


# Measuring -------------------------------------------------------------------------

def file_accuracy(content, x, y, directory, name):
    path = os.path.join(directory, name + ".measured.tflite")
    with open(path, "wb") as f:
        f.write(content)
    figures = export.verify_tflite(path, x, y, latency_runs=1)
    return figures["accuracy"]


def build_files(baseline, x_train, y_train, representative, directory):
    """{(recipe, row): (tflite bytes, keras accuracy source model)}."""
    files, models = {}, {}
    for mode in MODES:
        row = "post-training int8" if mode == "int8" else mode
        files[("tfopt", row)] = tfopt_convert(baseline, mode, representative, directory, mode)
        files[("plain", row)] = plain_convert(baseline, mode, representative)
        models[row] = baseline

    keras.utils.set_random_seed(FLAGS.seed)
    ours = fit(quantization.quantize(_common.clone(baseline), scheme="int8"),
               x_train, y_train, FLAGS.qat_epochs, learning_rate=1e-4)
    keras.utils.set_random_seed(FLAGS.seed)
    theirs = fit(tfmot.quantization.keras.quantize_model(_common.clone(baseline)),
                 x_train, y_train, FLAGS.qat_epochs, learning_rate=1e-4)
    files[("tfopt", "QAT int8")] = tfopt_convert(ours, "int8", None, directory, "qat")
    files[("plain", "QAT int8")] = plain_convert(theirs, "int8", None)
    models[("tfopt", "QAT int8")], models[("plain", "QAT int8")] = ours, theirs

    keras.utils.set_random_seed(FLAGS.seed)
    binary = fit(quantization.quantize(_common.clone(baseline), scheme="binary"),
                 x_train, y_train, FLAGS.binary_epochs)
    files[("tfopt", "binary weights")] = tfopt_convert(binary, "int8", None, directory, "binary")
    models[("tfopt", "binary weights")] = binary
    return files, models


def measure(files, models, baseline, x_test, y_test, directory):
    latency = _common.tflite_latencies(
        {f"{recipe}/{row}": content for (recipe, row), content in files.items()},
        FLAGS.latency_runs)
    rows = {}
    for (recipe, row), content in files.items():
        model = models.get((recipe, row), models.get(row, baseline))
        rows[f"{recipe}/{row}"] = {
            "recipe": recipe, "row": row,
            "keras_accuracy": _common.accuracy(model, x_test, y_test),
            "tflite_accuracy": file_accuracy(content, x_test, y_test, directory,
                                             f"{recipe}-{row}".replace(" ", "_")),
            "bytes": len(content), "gzip_bytes": len(gzip.compress(content, 9)),
            "latency_ms": latency[f"{recipe}/{row}"]}
    for figures in rows.values():
        reference = rows[f"{figures['recipe']}/float32"]
        figures["size_vs_float32"] = figures["bytes"] / reference["bytes"]
        figures["speedup_vs_float32"] = reference["latency_ms"] / figures["latency_ms"]
    rows["tfopt/binary weights"]["packed_weight_bytes"] = quantization.packed_weight_bytes(
        models[("tfopt", "binary weights")])
    return rows


# Reporting -------------------------------------------------------------------------

def markdown(r):
    env = r["environment"]
    lines = [f"# Quantization benchmark: Fashion-MNIST CNN{' (--quick: numbers meaningless)' if r['quick'] else ''}",
             "", f"{env['date']}; TF {env['versions']['tensorflow']}, tfmot "
             f"{env['versions']['tfmot']}, tfopt {env['versions']['tfopt']}, ai-edge-litert "
             f"{env['versions']['ai_edge_litert']}; {env['cpus_usable']} CPUs. Float model: "
             f"{r['flags']['epochs']} epochs, test accuracy {r['float_accuracy']:.2%}. QAT: "
             f"{r['flags']['qat_epochs']} fine-tune epoch(s); binary: "
             f"{r['flags']['binary_epochs']}. Latency: LiteRT, 1 thread, batch 1, median.", "",
             "| row | recipe | Keras acc | TFLite acc | bytes | gzip bytes | size vs float32 "
             "| latency ms | speedup vs float32 |", "|---|---|---|---|---|---|---|---|---|"]
    for key, f in r["rows"].items():
        lines.append(
            f"| {f['row']} | {f['recipe']} | {f['keras_accuracy']:.2%} | "
            f"{f['tflite_accuracy']:.2%} | {f['bytes']:,} | {f['gzip_bytes']:,} | "
            f"{f['size_vs_float32']:.3f}x | {f['latency_ms']:.4f} | "
            f"{f['speedup_vs_float32']:.2f}x |")
    binary = r["rows"]["tfopt/binary weights"]
    lines += ["", f"Binary weights bit-packed (1 bit per quantized weight + float32 scales, "
              f"first/last layers int8): {binary['packed_weight_bytes']:,} bytes, against the "
              f"int8 file's {binary['bytes']:,} bytes (TFLite stores the binary levels as int8).",
              "", "## Targets", ""]
    lines += [f"- {t['name']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})"
              for t in r["targets"]]
    lines += ["", "Reproduce: `make benchmark-quantization` or "
              "`python -m benchmarks.quantization_benchmark`."]
    return "\n".join(lines) + "\n"


def targets(r):
    rows, float_accuracy = r["rows"], r["float_accuracy"]
    qat, ptq = rows["tfopt/QAT int8"], rows["tfopt/post-training int8"]
    binary = rows["tfopt/binary weights"]
    return [
        {"name": "QAT int8 file accuracy within 0.5 points of float",
         "measured": f"{qat['tflite_accuracy']:.2%} vs {float_accuracy:.2%}",
         "met": 100 * (float_accuracy - qat["tflite_accuracy"]) <= 0.5},
        {"name": "int8 file at most 0.27x the float32 file",
         "measured": f"PTQ {ptq['size_vs_float32']:.3f}x, QAT {qat['size_vs_float32']:.3f}x",
         "met": max(ptq["size_vs_float32"], qat["size_vs_float32"]) <= 0.27},
        {"name": "int8 at least 1.8x faster than float32 (1 thread)",
         "measured": f"PTQ {ptq['speedup_vs_float32']:.2f}x, QAT {qat['speedup_vs_float32']:.2f}x",
         "met": min(ptq["speedup_vs_float32"], qat["speedup_vs_float32"]) >= 1.8},
        {"name": "binary-weight model within 5 points of float",
         "measured": f"{binary['tflite_accuracy']:.2%} vs {float_accuracy:.2%}",
         "met": 100 * (float_accuracy - binary["tflite_accuracy"]) <= 5.0},
    ]


def main(argv):
    del argv
    start = time.perf_counter()
    logging.set_verbosity(logging.WARNING)
    if FLAGS.quick:
        for name in ("epochs", "qat_epochs", "binary_epochs", "latency_runs"):
            if not FLAGS[name].present:
                FLAGS[name].value = QUICK[name]
    limits = (QUICK["train_examples"], QUICK["test_examples"]) if FLAGS.quick else (None, None)
    (x_train, y_train), (x_test, y_test) = _common.load_fashion_mnist(FLAGS.data_dir, *limits)
    keras.utils.set_random_seed(FLAGS.seed)
    baseline = fit(_common.reference_cnn(), x_train, y_train, FLAGS.epochs)
    representative = x_train[:FLAGS.representative_examples]
    with tempfile.TemporaryDirectory() as directory:
        files, models = build_files(baseline, x_train, y_train, representative, directory)
        rows = measure(files, models, baseline, x_test, y_test, directory)
    flag_values = {name: FLAGS[name].value for name in (
        "quick", "epochs", "qat_epochs", "binary_epochs", "batch_size",
        "representative_examples", "latency_runs", "seed", "data_dir")}
    results = {"quick": FLAGS.quick, "flags": flag_values, "rows": rows,
               "float_accuracy": _common.accuracy(baseline, x_test, y_test),
               "train_examples": len(x_train), "test_examples": len(x_test)}
    results["targets"] = targets(results)
    results["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    stem = "quantization_quick" if FLAGS.quick else "quantization"
    _common.write_results(FLAGS.output_dir, stem, results, markdown(results))


if __name__ == "__main__":
    app.run(main)
