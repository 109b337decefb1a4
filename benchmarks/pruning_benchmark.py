"""Pruning on Fashion-MNIST: tfopt against tfmot and plain Keras, in one run.

From one trained float CNN, fine-tunes side by side (same weights, same batches):
plain Keras, tfopt and tfmot unstructured 80% magnitude pruning, and tfopt 50%
channel pruning followed by `shrink`. Reports accuracy, training step time,
sparsity, compressed file sizes, FLOPs and single-thread TFLite latency, and
writes benchmarks/results/pruning.{json,md} (pruning_quick.* with --quick).

    python -m benchmarks.pruning_benchmark [--quick] [--epochs N]
"""

import gzip
import time


import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from benchmarks import _common
from benchmarks import _timers
from benchmarks._common import accuracy
from benchmarks._common import clone
from benchmarks._common import compile_model
from benchmarks._common import quiet
from benchmarks._common import tflite_bytes
from benchmarks._common import tflite_latencies
from tfopt import datasets
from tfopt import measure
from tfopt import pruning

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "A few thousand examples and one epoch: checks the code, "
                  "not the numbers. Writes pruning_quick.{json,md}.")
flags.DEFINE_integer("epochs", 4, "Epochs of baseline training.")
flags.DEFINE_integer("finetune_epochs", 2, "Epochs of fine-tuning in every arm.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_integer("warmup_batches", 10, "Batches skipped at the start of each fit "
                     "before step times count.")
flags.DEFINE_integer("rotate_every", 100, "Batches each arm trains before the next takes "
                     "its turn.")
flags.DEFINE_integer("latency_runs", 2000, "Timed TFLite invocations per model.")
flags.DEFINE_integer("seed", 0, "Seed of weights and batch order.")
flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Fashion-MNIST idx files.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR,
                    "Where pruning.json and pruning.md go.")

QUICK = dict(train_examples=2560, test_examples=1000, epochs=1, finetune_epochs=1,
             warmup_batches=5, latency_runs=200)


# Data and model ---------------------------------------------------------------

def load_data(quick):
    if quick:
        return _common.load_fashion_mnist(FLAGS.data_dir, QUICK["train_examples"],
                                          QUICK["test_examples"])
    return _common.load_fashion_mnist(FLAGS.data_dir)


def epoch_order(n, epoch):
    """The same shuffled order for every arm in a given epoch."""
    return np.random.default_rng([FLAGS.seed, epoch]).permutation(n)


# Timing -------------------------------------------------------------------------

StepTimer = _timers.step_timer(keras.callbacks.Callback)
HookTimer = _timers.hook_timer(keras.callbacks.Callback)


# Arms -------------------------------------------------------------------------------

class Arm:
    """One model fine-tuned from the baseline, with its callbacks and timers."""

    def __init__(self, name, model, pruning_callback=None, finish=None):
        self.name, self.model = name, compile_model(model)
        self.finish = finish or (lambda model: model)  # to the plain model to measure
        self.timer = StepTimer(FLAGS.warmup_batches)
        # Every arm gets the same callback stack; plain Keras wraps a no-op callback.
        self.hooks = HookTimer(pruning_callback or keras.callbacks.Callback())
        self.pruned = pruning_callback is not None
        self.seconds = 0.0

    def fit_chunk(self, x, y):
        start = time.perf_counter()
        self.model.fit(x, y, batch_size=FLAGS.batch_size, shuffle=False, epochs=1, verbose=0,
                       callbacks=[self.timer, self.hooks])
        self.seconds += time.perf_counter() - start


def train_together(arms, x, y, epochs):
    """Trains the arms in turns of `--rotate_every` batches, the same batches for all.

    The order of the arms rotates every turn, so bursts of load from other
    processes hit every arm alike.
    """
    chunk = FLAGS.rotate_every * FLAGS.batch_size
    turn = 0
    for epoch in range(epochs):
        order = epoch_order(len(x), epoch)
        x_epoch, y_epoch = x[order], y[order]
        for begin in range(0, len(x), chunk):
            shift = turn % len(arms)
            for arm in arms[shift:] + arms[:shift]:
                arm.fit_chunk(x_epoch[begin:begin + chunk], y_epoch[begin:begin + chunk])
            turn += 1
        logging.info("epoch %d done: %s", epoch + 1,
                     ", ".join(f"{arm.name} {arm.seconds:.1f} s" for arm in arms))


def schedule_steps(n_train, epochs):
    """(end_step, frequency): reach the target at ~70% of fine-tuning, on a pruning step."""
    steps = epochs * -(-n_train // FLAGS.batch_size)
    frequency = min(100, max(1, steps // 5))
    return max(frequency, frequency * round(0.7 * steps / frequency)), frequency


def make_arms(baseline, n_train):
    end_step, frequency = schedule_steps(n_train, FLAGS.finetune_epochs)
    decay = dict(begin_step=0, end_step=end_step, frequency=frequency)
    tfopt_80 = pruning.prune(clone(baseline), pruning.PolynomialDecay(0.0, 0.8, **decay),
                             criterion="magnitude")
    tfmot_80 = tfmot.sparsity.keras.prune_low_magnitude(
        clone(baseline), pruning_schedule=tfmot.sparsity.keras.PolynomialDecay(0.0, 0.8, **decay))
    channels = pruning.prune(clone(baseline), pruning.PolynomialDecay(0.0, 0.5, **decay),
                             structure="channels")
    return [Arm("keras fine-tune", clone(baseline)),
            Arm("tfopt 80%", tfopt_80, pruning.UpdatePruningStep(), pruning.strip),
            Arm("tfmot 80%", tfmot_80, tfmot.sparsity.keras.UpdatePruningStep(),
                tfmot.sparsity.keras.strip_pruning),
            Arm("tfopt channels 50%", channels, pruning.UpdatePruningStep(), pruning.shrink)
            ], decay


# Size and latency --------------------------------------------------------------

def gzip_sizes(model, tflite):
    with quiet():
        keras_bytes, keras_gzip_bytes = measure.keras_file_size(model)
    return {"keras_bytes": keras_bytes, "keras_gzip_bytes": keras_gzip_bytes,
            "tflite_bytes": len(tflite), "tflite_gzip_bytes": len(gzip.compress(tflite, 9))}


# Reporting -------------------------------------------------------------------------

def markdown(r):
    env, flag_values = r["environment"], r["flags"]
    title = "Pruning benchmark: Fashion-MNIST CNN" + (
        " (--quick: checks the code, numbers meaningless)" if r["quick"] else "")
    lines = [f"# {title}", "",
             f"{env['date']}; TF {env['versions']['tensorflow']}, tfmot "
             f"{env['versions']['tfmot']}, tfopt {env['versions']['tfopt']}; "
             f"{env['cpus_usable']} CPUs; {r['train_examples']:,} training examples. Baseline: "
             f"{flag_values['epochs']} epochs. Every arm fine-tunes the baseline's weights for "
             f"{flag_values['finetune_epochs']} epochs on the same batches.", ""]
    lines += _unstructured_table(r) + [""] + _channels_table(r) + ["", "## Targets", ""]
    lines += [f"- {t['name']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})"
              for t in r["targets"]]
    lines += ["", f"Step times: median over all batches after the first "
              f"{flag_values['warmup_batches']} of each fit. The arms take turns of "
              f"{flag_values['rotate_every']} batches in rotating order; \"vs Keras\" is the "
              "median over turns of the arm's step time / plain Keras' in the same turn. "
              "Callback: mean time per step in the pruning callback's batch hooks (part of "
              "the step time).", "",
              "Reproduce: `make benchmark-pruning` or `python -m benchmarks.pruning_benchmark`."]
    return "\n".join(lines) + "\n"


def _unstructured_table(r):
    lines = ["## Unstructured 80% magnitude pruning", "",
             "| model | test acc | ms/step | vs Keras fine-tune | callback ms/step | sparsity "
             "| .keras gzip KB | .tflite gzip KB |", "|---|---|---|---|---|---|---|---|"]
    for name, row in [("float baseline", r["baseline"])] + list(r["unstructured"].items()):
        hooks = row.get("callback_ms_per_step")
        lines.append(
            f"| {name} | {row['accuracy']:.2%} | {row['ms_per_step']:.2f} | "
            f"{_ratio(row.get('step_time_vs_keras'))} | "
            f"{'-' if hooks is None else format(hooks['total'], '.2f')} | "
            f"{row['sparsity']:.1%} | {row['keras_gzip_bytes'] / 1024:.0f} | "
            f"{row['tflite_gzip_bytes'] / 1024:.0f} |")
    return lines


def _ratio(value):
    return "-" if value is None else f"{value:.2f}x"


def _channels_table(r):
    b, c = r["baseline"], r["channels"]
    row = "| {} | {} | {} | {} | {} | {} |"
    return ["## Channels 50% + shrink (TFLite float32, 1 thread, batch 1)", "",
            row.format("model", "test acc", "parameters", "MFLOPs", "TFLite ms", "train ms/step"),
            "|---|---|---|---|---|---|"] + [
            row.format(name, f"{m['accuracy']:.2%}", f"{m['parameters']:,}",
                       f"{m['flops'] / 1e6:.2f}", f"{m['tflite_ms']:.4f}",
                       f"{m['ms_per_step']:.2f}")
            for name, m in (("float baseline", b), ("tfopt channels 50%, shrunk", c))] + [
            row.format("baseline / shrunk", "", f"{c['parameter_reduction']:.2f}x",
                       f"{c['flops_reduction']:.2f}x", f"{c['speedup']:.2f}x speedup", ""),
            "", f"Speedup / FLOPs reduction: **{c['speedup_per_flops_reduction']:.2f}**. "
            f"Training the channel-pruned model: {_ratio(c['step_time_vs_keras'])} the Keras "
            "fine-tune step time."]


def targets(r):
    u = r["unstructured"]
    ours, theirs = u["tfopt 80%"]["step_time_vs_keras"], u["tfmot 80%"]["step_time_vs_keras"]
    gap = 100 * (u["tfmot 80%"]["accuracy"] - u["tfopt 80%"]["accuracy"])
    ratio = r["channels"]["speedup_per_flops_reduction"]
    return [
        {"name": "tfopt step-time overhead no worse than tfmot's",
         "measured": f"tfopt {ours:.2f}x vs tfmot {theirs:.2f}x", "met": ours <= theirs},
        {"name": "tfopt 80% accuracy within 0.5 points of tfmot's",
         "measured": f"tfopt {u['tfopt 80%']['accuracy']:.2%} vs tfmot "
                     f"{u['tfmot 80%']['accuracy']:.2%}", "met": gap <= 0.5},
        {"name": "shrink speedup >= 0.8 of FLOPs reduction",
         "measured": f"{ratio:.2f}", "met": ratio >= 0.8},
    ]


# Main ---------------------------------------------------------------------------------

def measure_baseline(arm, x_test, y_test):
    model = arm.model
    return {"accuracy": accuracy(model, x_test, y_test), "ms_per_step": arm.timer.ms_per_step(),
            "sparsity": pruning.sparsity_report(model).sparsity,
            "parameters": model.count_params(), "flops": pruning.count_flops(model),
            **gzip_sizes(model, tflite_bytes(model))}


def measure_unstructured(arm, reference, x_test, y_test):
    stripped = arm.finish(arm.model)
    report = pruning.sparsity_report(stripped)
    return {"accuracy": accuracy(stripped, x_test, y_test),
            "ms_per_step": arm.timer.ms_per_step(),
            "step_time_vs_keras": _timers.paired_ratio(arm.timer, reference.timer),
            "callback_ms_per_step": arm.hooks.ms_per_step() if arm.pruned else None,
            "sparsity": report.sparsity, "sparsity_report": report.as_dict(),
            **gzip_sizes(stripped, tflite_bytes(stripped))}


def measure_channels(arm, reference, baseline_model, b, x_test, y_test):
    """Shrunk model against the baseline `b`; adds the baseline's TFLite latency to `b`."""
    shrunk = arm.finish(arm.model)
    shrunk_tflite = tflite_bytes(shrunk)
    latency = tflite_latencies({"baseline": tflite_bytes(baseline_model),
                                "shrunk": shrunk_tflite}, FLAGS.latency_runs)
    b["tflite_ms"] = latency["baseline"]
    c = {"accuracy": accuracy(shrunk, x_test, y_test), "ms_per_step": arm.timer.ms_per_step(),
         "step_time_vs_keras": _timers.paired_ratio(arm.timer, reference.timer),
         "callback_ms_per_step": arm.hooks.ms_per_step(),
         "parameters": shrunk.count_params(), "flops": pruning.count_flops(shrunk),
         "tflite_ms": latency["shrunk"],
         "units": {layer.name: layer.output_shape[-1] for layer in shrunk.layers},
         **gzip_sizes(shrunk, shrunk_tflite)}
    c["parameter_reduction"] = b["parameters"] / c["parameters"]
    c["flops_reduction"] = b["flops"] / c["flops"]
    c["speedup"] = b["tflite_ms"] / c["tflite_ms"]
    c["speedup_per_flops_reduction"] = c["speedup"] / c["flops_reduction"]
    return c


def main(argv):
    del argv
    start = time.perf_counter()
    if FLAGS.quick:
        for name in ("epochs", "finetune_epochs", "warmup_batches", "latency_runs"):
            if not FLAGS[name].present:
                FLAGS[name].value = QUICK[name]
    keras.utils.set_random_seed(FLAGS.seed)
    (x_train, y_train), (x_test, y_test) = load_data(FLAGS.quick)

    baseline = Arm("float baseline", _common.reference_cnn())
    train_together([baseline], x_train, y_train, FLAGS.epochs)
    arms, decay = make_arms(baseline.model, len(x_train))
    train_together(arms, x_train, y_train, FLAGS.finetune_epochs)

    b = measure_baseline(baseline, x_test, y_test)
    results = {"quick": FLAGS.quick, "schedule": decay, "baseline": b,
               "unstructured": {arm.name: measure_unstructured(arm, arms[0], x_test, y_test)
                                for arm in arms[:3]},
               "channels": measure_channels(arms[3], arms[0], baseline.model, b, x_test, y_test)}
    flag_values = {name: FLAGS[name].value for name in (
        "quick", "epochs", "finetune_epochs", "batch_size", "warmup_batches", "rotate_every",
        "latency_runs",
        "seed", "data_dir")}
    results.update(
        flags=flag_values, train_examples=len(x_train), test_examples=len(x_test),
        arm_order=f"turns of {FLAGS.rotate_every} batches; turn t trains the arms rotated "
                  "left by t: " + ", ".join(a.name for a in arms))
    results["targets"] = targets(results)
    results["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    stem = "pruning_quick" if results["quick"] else "pruning"
    _common.write_results(FLAGS.output_dir, stem, results, markdown(results))


if __name__ == "__main__":
    app.run(main)
