"""The headline: tfopt-optimize against tfmot's best recipe and the float model, one run.

Trains the reference CNN on Fashion-MNIST as the float model, then gives the
same float model to two arms with the same epoch budget:

- tfopt: `tfopt.pipeline.optimize` with its defaults (recipe "auto": distill,
  channels, unstructured, qat), whose int8 file is the last stage's;
- tfmot: tfmot's best recipe (`tfopt.pipeline._tfmot_reference.tfmot_recipe`:
  80% magnitude pruning, prune-preserving int8 QAT, the TFLite converter),
  given as many epochs as the tfopt run's stages actually trained.

The float model's own float32 TFLite file is the baseline, and its
post-training int8 file is shown for context (what int8 alone gives). Every
file is measured on the 10,000 test images with `export.verify_tflite`, and
all are timed together, single-thread batch 1 under LiteRT, interleaved round
by round. Writes benchmarks/results/headline.{json,md} (headline_quick.* with
--quick, which checks the code, not the numbers).

    python -m benchmarks.headline_benchmark [--quick] [--seed N]
"""

import os
import shutil
import subprocess
import tempfile
import time

import tfopt

import tensorflow as tf
import tf_keras as keras
from absl import app
from absl import flags

from benchmarks import _common
from benchmarks._common import compile_model
from benchmarks._common import quiet
from tfopt import datasets
from tfopt import export
from tfopt import pipeline
from tfopt.pipeline import _recipe
from tfopt.pipeline import _tfmot_reference

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "A few thousand examples and one float epoch: checks the "
                  "code, not the numbers. Writes headline_quick.{json,md}.")
flags.DEFINE_integer("float_epochs", 4, "Epochs of float-model training.")
flags.DEFINE_integer("float_batch_size", 128, "Batch size of float-model training (the arms "
                     "train at the pipeline's default batch size).")
flags.DEFINE_float("tfmot_sparsity", 0.8, "The sparsity of tfmot's recipe.")
flags.DEFINE_integer("representative_examples", 500, "Calibration examples of the float "
                     "model's post-training int8 file (context only).")
flags.DEFINE_integer("latency_runs", 2000, "Timed TFLite invocations per file, interleaved.")
flags.DEFINE_integer("seed", 0, "Seed of the float model, both arms and the data order.")
flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Fashion-MNIST idx files.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR, "Where headline.json and headline.md go.")
flags.DEFINE_string("work_dir", None, "Keep the arms' files (the tfopt run with its report, "
                    "the TFLite files) in this new directory; by default a temporary one, "
                    "removed at the end.")

QUICK = dict(train_examples=3000, test_examples=1000, float_epochs=1, latency_runs=200)
FLOAT, PTQ, TFMOT, TFOPT = "float", "float, int8 PTQ (context)", "tfmot recipe", "tfopt"


def float_files(model, x_train, x_test, y_test, directory):
    """{arm: figures} of the float model's float32 file and its post-training int8 file."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    ptq = tf.lite.TFLiteConverter.from_keras_model(model)
    ptq.optimizations = [tf.lite.Optimize.DEFAULT]
    calibration = x_train[:FLAGS.representative_examples]
    ptq.representative_dataset = lambda: ([calibration[i:i + 1]] for i in
                                          range(len(calibration)))
    rows = {}
    for arm, name, conversion in ((FLOAT, "float32.tflite", converter),
                                  (PTQ, "int8_ptq.tflite", ptq)):
        begin = time.perf_counter()
        path = os.path.join(directory, name)
        with quiet():
            content = conversion.convert()
        with open(path, "wb") as stream:
            stream.write(content)
        rows[arm] = row(path, export.verify_tflite(path, x_test, y_test, latency_runs=0),
                        epochs=0, seconds=time.perf_counter() - begin)
    return rows


def row(path, figures, epochs, seconds):
    return {"tflite_path": path, "tflite_bytes": figures["bytes"],
            "tflite_gzip_bytes": figures["gzip_bytes"],
            "tflite_accuracy": float(figures["accuracy"]), "epochs": epochs,
            "wall_seconds": round(seconds, 1)}


def run_tfopt(model, data, directory):
    """The pipeline with its defaults; its last stage's file and figures, and every stage's."""
    begin = time.perf_counter()
    result = pipeline.optimize(model, data, os.path.join(directory, "tfopt"), seed=FLAGS.seed,
                               data_name=_data_name(data), command=_command())
    seconds = time.perf_counter() - begin
    last = result.stages[-1]
    path = os.path.join(result.output_dir, "stages", last["stage"], "model.tflite")
    return {"tflite_path": path, "tflite_bytes": last["tflite_bytes"],
            "tflite_gzip_bytes": last["tflite_gzip_bytes"],
            "tflite_accuracy": last["tflite_accuracy"],
            "epochs": sum(stage["epochs"] for stage in result.stages),
            "wall_seconds": round(seconds, 1), "report": result.report,
            "recipe": [stage["name"] for stage in result.stages[1:]],
            "stages": [{key: stage[key] for key in (
                "stage", "parameters", "mflops", "tflite_bytes", "tflite_gzip_bytes",
                "keras_accuracy", "tflite_accuracy", "agreement", "latency_ms", "epochs",
                "wall_seconds")} for stage in result.stages]}


def run_tfmot(model, data, epochs, directory):
    reference = _tfmot_reference.tfmot_recipe(
        model, *data, epochs, os.path.join(directory, "tfmot"),
        batch_size=_recipe.Options().batch_size, sparsity=FLAGS.tfmot_sparsity, seed=FLAGS.seed)
    return {key: reference[key] for key in (
        "tflite_path", "tflite_bytes", "tflite_gzip_bytes", "tflite_accuracy", "keras_accuracy",
        "sparsity", "epochs", "pruning_epochs", "qat_epochs", "wall_seconds")}


def add_latencies(rows):
    """Every file timed in the same rounds, so load from other processes hits all alike."""
    contents = {}
    for arm, figures in rows.items():
        with open(figures["tflite_path"], "rb") as stream:
            contents[arm] = stream.read()
    for arm, ms in _common.tflite_latencies(contents, FLAGS.latency_runs).items():
        rows[arm]["latency_us"] = 1000 * ms
    base = rows[FLOAT]
    for figures in rows.values():
        figures["x_smaller_gzip"] = base["tflite_gzip_bytes"] / figures["tflite_gzip_bytes"]
        figures["x_faster"] = base["latency_us"] / figures["latency_us"]
        figures["points_vs_float"] = 100 * (figures["tflite_accuracy"] - base["tflite_accuracy"])


def targets(rows):
    ours, theirs, base = rows[TFOPT], rows[TFMOT], rows[FLOAT]
    return [
        {"name": "tfopt at least 30x smaller (gzip) than the float TFLite file",
         "measured": f"{ours['x_smaller_gzip']:.1f}x ({_kb(ours)} vs {_kb(base)} KB)",
         "met": ours["x_smaller_gzip"] >= 30},
        {"name": "tfopt at least 5x faster than the float TFLite file",
         "measured": f"{ours['x_faster']:.2f}x ({ours['latency_us']:.0f} vs "
                     f"{base['latency_us']:.0f} us)", "met": ours["x_faster"] >= 5},
        {"name": "tfopt's TFLite accuracy no lower than tfmot's",
         "measured": f"tfopt {ours['tflite_accuracy']:.2%} vs tfmot "
                     f"{theirs['tflite_accuracy']:.2%}",
         "met": ours["tflite_accuracy"] >= theirs["tflite_accuracy"]},
        {"name": "tfopt's TFLite accuracy within 0.3 points of the float model's",
         "measured": f"{ours['points_vs_float']:+.2f} points ({ours['tflite_accuracy']:.2%} vs "
                     f"{base['tflite_accuracy']:.2%})",
         # Accuracies are counts of examples: -0.3 computed as a difference may be -0.30...04.
         "met": ours["points_vs_float"] >= -0.3 - 1e-9},
        {"name": "tfopt strictly smaller (gzip) than tfmot's file",
         "measured": f"{_kb(ours)} vs {_kb(theirs)} KB "
                     f"({theirs['tflite_gzip_bytes'] / ours['tflite_gzip_bytes']:.2f}x)",
         "met": ours["tflite_gzip_bytes"] < theirs["tflite_gzip_bytes"]},
        {"name": "tfopt strictly faster than tfmot's file",
         "measured": f"{ours['latency_us']:.0f} vs {theirs['latency_us']:.0f} us "
                     f"({theirs['latency_us'] / ours['latency_us']:.2f}x)",
         "met": ours["latency_us"] < theirs["latency_us"]},
    ]


def _kb(figures):
    return f"{figures['tflite_gzip_bytes'] / 1024:.1f}"


def markdown(r):
    env, f, rows = r["environment"], r["flags"], r["rows"]
    quick = " (--quick: numbers meaningless)" if r["quick"] else ""
    lines = [f"# Headline benchmark: Fashion-MNIST{quick}", "",
             f"{env['date']}; tfopt {env['versions']['tfopt']} (commit {env['commit']}), TF "
             f"{env['versions']['tensorflow']}, tfmot {env['versions']['tfmot']}, ai-edge-litert "
             f"{env['versions']['ai_edge_litert']}; {env['cpus_usable']} CPUs; one run, seed "
             f"{f['seed']}. Float model: the reference CNN, {f['float_epochs']} epochs (batch "
             f"{f['float_batch_size']}), {r['float_parameters']:,} parameters, Keras test "
             f"accuracy {r['float_keras_accuracy']:.2%}. Both arms start from it and train "
             f"{rows[TFOPT]['epochs']} epochs at batch {r['arm_batch_size']}: tfopt = "
             f"`pipeline.optimize` with its defaults (recipe {', '.join(rows[TFOPT]['recipe'])}); "
             f"tfmot = {f['tfmot_sparsity']:.0%} magnitude pruning "
             f"({rows[TFMOT]['pruning_epochs']} epochs), prune-preserving int8 QAT "
             f"({rows[TFMOT]['qat_epochs']} epochs), TFLiteConverter. Accuracy: each TFLite "
             f"file on the {r['test_examples']:,} test images; latency: single-thread LiteRT, "
             f"batch 1, median of {f['latency_runs']} invocations per file, files interleaved "
             "round by round.", "",
             "| arm | gzip KB | x smaller (gzip) | latency us | x faster | TFLite acc "
             "| vs float | epochs | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for arm, row_ in rows.items():
        lines.append(f"| {arm} | {_kb(row_)} | {row_['x_smaller_gzip']:.1f}x | "
                     f"{row_['latency_us']:.0f} | {row_['x_faster']:.2f}x | "
                     f"{row_['tflite_accuracy']:.2%} | {row_['points_vs_float']:+.2f} pts | "
                     f"{row_['epochs']} | {row_['wall_seconds']:.0f} |")
    lines += ["", "Wall time: the float rows convert and measure; the arms train, convert and "
              "measure (tfopt measures each of its stages on the test set as it goes). tfmot's "
              f"file holds {rows[TFMOT]['sparsity']:.1%} zeros in its convolution and dense "
              "weights.", "", "tfopt's stages (the pipeline's own figures; their latencies "
              "are timed one file at a time, not interleaved):", "",
              "| stage | parameters | MFLOPs | TFLite gzip KB | TFLite acc | agreement "
              "| latency us | epochs | wall s |", "|---|---|---|---|---|---|---|---|---|"]
    for s in rows[TFOPT]["stages"]:
        lines.append(f"| {s['stage']} | {s['parameters']:,} | {s['mflops']:.2f} | {_kb(s)} | "
                     f"{s['tflite_accuracy']:.2%} | {s['agreement']:.2%} | "
                     f"{1000 * s['latency_ms']:.0f} | {s['epochs']} | {s['wall_seconds']:.0f} |")
    lines += ["", "## Targets", ""]
    lines += [f"- {t['name']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})"
              for t in r["targets"]]
    lines += ["", "Reproduce: `make benchmark-headline` or "
              f"`python -m benchmarks.headline_benchmark{' --quick' if r['quick'] else ''}`."]
    return "\n".join(lines) + "\n"


def _data_name(data):
    (x_train, _), (x_test, _) = data
    return f"Fashion-MNIST: {len(x_train)} training and {len(x_test)} test examples"


def _command():
    return "python -m benchmarks.headline_benchmark" + (" --quick" if FLAGS.quick else "")


def _tfopt_commit():
    """The commit of the tfopt tree this run imports, '+ changes' if tfopt/ differs from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(tfopt.__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "tfopt"], cwd=root,
                                 check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes in tfopt/" if changed else "")


def main(argv):
    del argv
    start = time.perf_counter()
    commit = _tfopt_commit()  # before training: main may move on while the run goes
    if FLAGS.quick:
        for name in ("float_epochs", "latency_runs"):
            if not FLAGS[name].present:
                FLAGS[name].value = QUICK[name]
    if FLAGS.work_dir and os.path.exists(FLAGS.work_dir) and os.listdir(FLAGS.work_dir):
        raise app.UsageError(f"--work_dir={FLAGS.work_dir} is not empty: a tfopt run there "
                             "would continue instead of starting; give a new directory.")
    directory = FLAGS.work_dir or tempfile.mkdtemp(prefix="headline-")
    os.makedirs(directory, exist_ok=True)
    keras.utils.set_random_seed(FLAGS.seed)
    limits = (QUICK["train_examples"], QUICK["test_examples"]) if FLAGS.quick else ()
    data = _common.load_fashion_mnist(FLAGS.data_dir, *limits)
    (x_train, y_train), (x_test, y_test) = data

    model = compile_model(_common.reference_cnn())
    begin = time.perf_counter()
    model.fit(x_train, y_train, batch_size=FLAGS.float_batch_size, epochs=FLAGS.float_epochs,
              verbose=0)
    float_seconds = time.perf_counter() - begin

    rows = float_files(model, x_train, x_test, y_test, directory)
    tfopt_row = run_tfopt(model, data, directory)
    rows[TFMOT] = run_tfmot(model, data, tfopt_row["epochs"], directory)
    rows[TFOPT] = tfopt_row
    add_latencies(rows)

    flag_values = {name: FLAGS[name].value for name in (
        "quick", "float_epochs", "float_batch_size", "tfmot_sparsity", "representative_examples",
        "latency_runs", "seed", "data_dir")}
    r = {"quick": FLAGS.quick, "flags": flag_values, "train_examples": len(x_train),
         "test_examples": len(x_test), "float_parameters": model.count_params(),
         "float_keras_accuracy": _common.accuracy(model, x_test, y_test),
         "float_train_seconds": round(float_seconds, 1),
         "arm_batch_size": _recipe.Options().batch_size, "rows": rows}
    r["targets"] = targets(rows)
    # Paths of this machine stay out of the results; the files stay with --work_dir.
    for figures in rows.values():
        figures.pop("tflite_path")
    rows[TFOPT].pop("report")
    if not FLAGS.work_dir:
        shutil.rmtree(directory, ignore_errors=True)
    r["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    r["environment"]["commit"] = commit
    stem = "headline_quick" if FLAGS.quick else "headline"
    _common.write_results(FLAGS.output_dir, stem, r, markdown(r))


if __name__ == "__main__":
    app.run(main)
