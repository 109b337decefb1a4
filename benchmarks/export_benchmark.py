"""SavedModel export on Fashion-MNIST: the server-side gain of shrinking, measured in TensorFlow.

Trains the reference CNN as the float model, then derives tfopt's two smaller
models from it: 50% channel pruning followed by `shrink`, and a
`make_student(weights="teacher")` student trained by a `Distiller`. Each is
exported with `export.saved_model` and measured the way TF Serving runs it:
loaded by tag ``serve`` through TensorFlow's SavedModel loader in a fresh
graph and session, and called through its ``serving_default`` signature.
Reports size on disk, load time, signature latency at batch 1 and 32, test
accuracy and FLOPs, each against the float model, and writes
benchmarks/results/export.{json,md} (export_quick.* with --quick).

    python -m benchmarks.export_benchmark [--quick] [--threads N]
"""

import os
import tempfile
import time

import tfopt  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from benchmarks import _common
from benchmarks._common import accuracy
from benchmarks._common import clone
from benchmarks._common import compile_model
from benchmarks._common import quiet
from tfopt import datasets
from tfopt import distillation
from tfopt import measure
from tfopt import pruning
from tfopt.export import _layout
from tfopt.export._saved_model import saved_model
from tfopt.export._saved_model_bundle import SavedModelBundle
from tfopt.export._verify_saved_model import verify_saved_model

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "A few thousand examples, one epoch, few timings: checks "
                  "the code, not the numbers. Writes export_quick.{json,md}.")
flags.DEFINE_integer("epochs", 4, "Epochs of float (baseline and teacher) training.")
flags.DEFINE_integer("finetune_epochs", 2, "Epochs of channel-pruning fine-tuning.")
flags.DEFINE_integer("student_epochs", 4, "Epochs of distillation.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_float("channel_sparsity", 0.5, "Fraction of channels channel pruning removes.")
flags.DEFINE_float("width", 0.3, "make_student width: the fraction of hidden units kept.")
flags.DEFINE_float("temperature", 2.0, "Distiller temperature.")
flags.DEFINE_float("alpha", 0.5, "Distiller hard-label weight.")
flags.DEFINE_integer("warmup_examples", 64, "Test images each export gets as TF Serving "
                     "warmup requests (and verifies against the Keras model).")
flags.DEFINE_integer("load_runs", 10, "Timed loads of each SavedModel, interleaved.")
flags.DEFINE_integer("latency_rounds", 20, "Rounds of signature calls; the models take "
                     "turns within each round.")
flags.DEFINE_integer("latency_runs", 1000, "Timed signature calls per model and batch size.")
flags.DEFINE_integer("trace_runs", 50, "Traced batch-32 runs per model for the time per "
                     "layer.")
flags.DEFINE_integer("threads", 1, "Intra-op threads of every session (TF Serving's "
                     "--tensorflow_intra_op_parallelism; 0 lets TensorFlow use all CPUs).")
flags.DEFINE_integer("seed", 0, "Seed of weights and batch order.")
flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Fashion-MNIST idx files.")
flags.DEFINE_string("export_dir", None, "Export root to write the SavedModels to and keep; "
                    "by default a temporary directory, removed at the end.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR, "Where export.json and export.md go.")

QUICK = dict(train_examples=2560, test_examples=1000, epochs=1, finetune_epochs=1,
             student_epochs=1, load_runs=3, latency_rounds=4, latency_runs=80,
             trace_runs=5)
BATCH_SIZES = (1, 32)
MODELS = ("float", "shrunk", "distilled")


# Models ----------------------------------------------------------------------------

def fit(model, x, y, epochs, callbacks=()):
    order = np.random.default_rng(FLAGS.seed)
    for _ in range(epochs):  # the same batch order for every model, epoch by epoch
        index = order.permutation(len(x))
        model.fit(x[index], y[index], batch_size=FLAGS.batch_size, epochs=1, shuffle=False,
                  verbose=0, callbacks=list(callbacks))
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

def directory_size(version_dir):
    """Bytes and gzip bytes (file by file) of the SavedModel, and of its warmup file."""
    sizes = {"bytes": 0, "gzip_bytes": 0, "warmup_bytes": 0}
    warmup = os.path.join(version_dir, _layout.WARMUP_FILE)
    for parent, _, names in os.walk(version_dir):
        for name in names:
            path = os.path.join(parent, name)
            raw, compressed = measure.file_size(path)
            if path == warmup:  # request data, not model: counted apart
                sizes["warmup_bytes"] = raw
            else:
                sizes["bytes"] += raw
                sizes["gzip_bytes"] += compressed
    return sizes


def load(version_dir):
    """The version loaded as TF Serving loads it, in a session with `--threads` threads."""
    # One inter-op thread: the graph is a chain, and a second pool would only
    # compete for the CPUs the intra-op threads use.
    config = tf.compat.v1.ConfigProto(intra_op_parallelism_threads=FLAGS.threads,
                                      inter_op_parallelism_threads=1)
    return SavedModelBundle(version_dir, session_config=config)


def load_times(version_dirs):
    """Median ms of a load (fresh graph and session, tag serve) of each model.

    One untimed load each first (TensorFlow's one-time op registration), then
    `--load_runs` loads, the models taking turns in rotating order.
    """
    for path in version_dirs.values():
        load(path).close()
    times = {name: [] for name in version_dirs}
    names = list(version_dirs)
    for run in range(FLAGS.load_runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            start = time.perf_counter()
            bundle = load(version_dirs[name])
            times[name].append(time.perf_counter() - start)
            bundle.close()
    return {name: 1000.0 * float(np.median(t)) for name, t in times.items()}


def signature_latencies(bundles, x):
    """{batch: {"ms": {model: median ms}, "rounds": {model: [round medians]}}}.

    Each call is one run of `serving_default` on real test images. After a
    warm-up, the models take turns in rotating order within every round, so
    load from other processes hits all of them alike.
    """
    names = list(bundles)
    per_round = max(1, FLAGS.latency_runs // FLAGS.latency_rounds)
    results = {}
    for batch in BATCH_SIZES:
        inputs = x[:batch]
        for bundle in bundles.values():
            for _ in range(max(10, per_round // 5)):
                bundle.run("serving_default", inputs)
        rounds = {name: [] for name in names}
        for turn in range(FLAGS.latency_rounds):
            for name in names[turn % len(names):] + names[:turn % len(names)]:
                times = []
                for _ in range(per_round):
                    start = time.perf_counter()
                    bundles[name].run("serving_default", inputs)
                    times.append(time.perf_counter() - start)
                rounds[name].append(1000.0 * float(np.median(times)))
        results[batch] = {"ms": {n: float(np.median(r)) for n, r in rounds.items()},
                          "rounds": rounds}
    return results


def layer_times(bundle, layer_names, inputs, runs):
    """Median ms per Keras layer of one `serving_default` run, from TensorFlow's trace.

    Each graph node is charged to the first part of its name that is one of
    `layer_names` (the model's layers, in order) (``.../fashion_cnn/conv2d/Relu`` to ``conv2d``); "other" holds the
    rest (argument and variable reads), "session" the call time no op
    accounts for (Python, feeding, the function call). Tracing slows ops a
    little; the figures show where the time goes, the latencies above are
    untraced.
    """
    signature = bundle.signature("serving_default")
    feeds = {signature.inputs[key].name: inputs for key in signature.inputs}
    fetches = [info.name for info in signature.outputs.values()]
    options = tf.compat.v1.RunOptions(trace_level=tf.compat.v1.RunOptions.FULL_TRACE)
    per_run = []
    for _ in range(runs):
        metadata = tf.compat.v1.RunMetadata()
        start = time.perf_counter()
        # The bundle has no public hook for RunOptions; its session runs the
        # same feeds and fetches as SavedModelBundle.run.
        bundle._session.run(fetches, feeds, options=options, run_metadata=metadata)
        total = 1000.0 * (time.perf_counter() - start)
        times = {}
        for device in metadata.step_stats.dev_stats:
            for node in device.node_stats:
                layer = next((part for part in node.node_name.split("/")
                              if part in layer_names), "other")
                times[layer] = times.get(layer, 0.0) + node.all_end_rel_micros / 1000.0
        times["session"] = max(0.0, total - sum(times.values()))
        per_run.append(times)
    found = {key for times in per_run for key in times}
    keys = [key for key in [*layer_names, "other", "session"] if key in found]
    return {key: float(np.median([times.get(key, 0.0) for times in per_run])) for key in keys}


def measure_models(models, export_root, x_test, y_test):
    rows, version_dirs = {}, {}
    for name in MODELS:
        model = keras_model(models[name])
        with quiet():
            version_dirs[name] = saved_model(models[name], os.path.join(export_root, name),
                                             warmup_inputs=x_test[:FLAGS.warmup_examples])
            served = verify_saved_model(version_dirs[name], x_test, reference=model,
                                        labels=y_test)
        rows[name] = {"parameters": model.count_params(), "flops": pruning.count_flops(model),
                      "accuracy": served["reference_accuracy"],
                      "served_accuracy": served["accuracy"],
                      "agreement": served["agreement"], "max_abs_diff": served["max_abs_diff"],
                      "version_dir": os.path.relpath(version_dirs[name], export_root),
                      **directory_size(version_dirs[name])}
    with quiet():
        load_ms = load_times(version_dirs)
        bundles = {name: load(path) for name, path in version_dirs.items()}
    try:
        latency = signature_latencies(bundles, x_test)
        for name in MODELS:
            layers = [layer.name for layer in keras_model(models[name]).layers]
            rows[name]["batch32_layer_ms"] = layer_times(
                bundles[name], layers, x_test[:32], FLAGS.trace_runs)
    finally:
        for bundle in bundles.values():
            bundle.close()
    for name in MODELS:
        rows[name]["load_ms"] = load_ms[name]
        for batch in BATCH_SIZES:
            rows[name][f"batch{batch}_ms"] = latency[batch]["ms"][name]
            rows[name][f"batch{batch}_round_ms"] = latency[batch]["rounds"][name]
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


def targets(rows):
    shrunk = rows["shrunk"]
    ratio = shrunk["batch32_speedup_per_flops_reduction"]
    return [{"name": "shrunk model's batch-32 signature speedup >= 0.8 x its FLOPs reduction",
             "measured": f"{shrunk['batch32_speedup']:.2f}x speedup / "
                         f"{shrunk['flops_reduction']:.2f}x FLOPs reduction = {ratio:.2f}",
             "met": ratio >= 0.8}]


# Reporting -------------------------------------------------------------------------------

LABELS = {"float": "float CNN", "shrunk": "tfopt channels {:.0%} + shrink",
          "distilled": "tfopt make_student({:g}) + Distiller"}


def label(name, flag_values):
    return LABELS[name].format(flag_values["channel_sparsity"] if name == "shrunk"
                               else flag_values["width"])


def markdown(r):
    env, f, rows = r["environment"], r["flags"], r["rows"]
    threads = "all CPUs" if f["threads"] == 0 else f"{f['threads']} intra-op thread" + (
        "s" if f["threads"] > 1 else "")
    lines = [f"# Export benchmark: Fashion-MNIST SavedModels under TensorFlow"
             f"{' (--quick: checks the code, numbers meaningless)' if r['quick'] else ''}", "",
             f"{env['date']}; TF {env['versions']['tensorflow']}, tfopt "
             f"{env['versions']['tfopt']}; {env['cpus_usable']} CPUs; "
             f"{r['train_examples']:,} training and {r['test_examples']:,} test examples. "
             f"Float CNN: {f['epochs']} epochs. Shrunk: channel pruning fine-tuned "
             f"{f['finetune_epochs']} epochs, then `shrink`. Distilled: "
             f"`make_student(weights=\"teacher\")`, {f['student_epochs']} epochs of `Distiller` "
             f"(T {f['temperature']:g}, alpha {f['alpha']:g}). Each exported with "
             f"`export.saved_model` ({f['warmup_examples']} warmup examples), loaded by tag "
             f"`serve` in a fresh graph and session ({threads}), called through "
             "`serving_default`.", "",
             "| model | test acc (served) | parameters | MFLOPs | SavedModel KB | gzip KB "
             "| load ms | batch 1 ms | batch 32 ms |", "|---|---|---|---|---|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(
            f"| {label(name, f)} | {row['served_accuracy']:.2%} | {row['parameters']:,} | "
            f"{row['flops'] / 1e6:.2f} | {row['bytes'] / 1024:.0f} | "
            f"{row['gzip_bytes'] / 1024:.0f} | {row['load_ms']:.1f} | "
            f"{row['batch1_ms']:.3f} | {row['batch32_ms']:.3f} |")
    lines += ["", "Against the float CNN (higher is better):", "",
              "| model | accuracy points | parameters | FLOPs | size | gzip size | load "
              "| batch 1 | batch 32 | batch-32 speedup / FLOPs reduction |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for name, row in list(rows.items())[1:]:
        points = 100 * (row["served_accuracy"] - rows["float"]["served_accuracy"])
        lines.append(
            f"| {label(name, f)} | {points:+.2f} | {row['parameter_reduction']:.2f}x | "
            f"{row['flops_reduction']:.2f}x | {row['size_reduction']:.2f}x | "
            f"{row['gzip_size_reduction']:.2f}x | {row['load_speedup']:.2f}x | "
            f"{row['batch1_speedup']:.2f}x | {row['batch32_speedup']:.2f}x | "
            f"{row['batch32_speedup_per_flops_reduction']:.2f} |")
    lines += [""] + _layer_table(r) + ["", "## Targets", ""]
    lines += [f"- {t['name']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})"
              for t in r["targets"]]
    lines += ["", "Sizes: `saved_model.pb` and `variables/` (gzip: file by file, level 9); the "
              "warmup file in `assets.extra/` is request data and counted apart in the JSON. "
              f"Load: median of {f['load_runs']} loads per model after one untimed load, the "
              "models taking turns. Latency: the median over "
              f"{f['latency_rounds']} rounds of each round's median call time "
              f"({f['latency_runs']} calls per model and batch size in all, on test images, "
              "after a warm-up); in each round the models take turns in rotating order. "
              "Speedups are paired: the median over rounds of the float model's time / the "
              "model's in the same round. Test accuracy is computed from the SavedModel's "
              "outputs; `max_abs_diff` in the JSON compares them with the Keras model's.", "",
              "Reproduce: `make benchmark-export` or `python -m benchmarks.export_benchmark` "
              "(`--quick` checks the code in about a minute; `--threads=0` times with all CPUs, "
              "as TF Serving does by default)."]
    return "\n".join(lines) + "\n"


def _layer_table(r):
    """Time per layer of a traced batch-32 call: where a FLOPs cut does and does not pay."""
    rows, f = r["rows"], r["flags"]
    layers = list(dict.fromkeys(key for row in rows.values() for key in row["batch32_layer_ms"]))
    lines = [f"Where a batch-32 call spends its time (median of {f['trace_runs']} traced runs, "
             "ms; \"session\" is the call time no op accounts for):", "",
             "| layer | " + " | ".join(label(name, f) for name in rows)
             + " | float / shrunk |", "|---|" + "---|" * (len(rows) + 1)]
    for layer in layers:
        ms = [row["batch32_layer_ms"].get(layer, 0.0) for row in rows.values()]
        ratio = (f"{ms[0] / ms[1]:.2f}x" if ms[1] > 0 else "-")
        lines.append(f"| {layer} | " + " | ".join(f"{t:.3f}" for t in ms) + f" | {ratio} |")
    return lines


# Main ------------------------------------------------------------------------------------

def main(argv):
    del argv
    start = time.perf_counter()
    if FLAGS.quick:
        for name in ("epochs", "finetune_epochs", "student_epochs", "load_runs",
                     "latency_rounds", "latency_runs", "trace_runs"):
            if not FLAGS[name].present:
                FLAGS[name].value = QUICK[name]
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
         "targets": targets(rows)}
    r["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    stem = "export_quick" if FLAGS.quick else "export"
    _common.write_results(FLAGS.output_dir, stem, r, markdown(r))


if __name__ == "__main__":
    app.run(main)
