"""Distillation on Fashion-MNIST: tfopt against a plain distiller and the scratch student.

Trains the reference CNN as teacher, then, at the same epoch budget and with
the same batches, a student with under 10% of its parameters in five ways:

- scratch: random weights, cross entropy on the labels;
- keras.io distiller: random weights, the plain distiller of the keras.io
  example (alpha 0.1, T 3);
- tfopt Distiller: random weights, `tfopt.distillation.Distiller`;
- tfopt teacher start, labels only: `make_student(weights="teacher")` trained
  on cross entropy (an ablation: what the start alone gives);
- tfopt recipe: `make_student(weights="teacher")` + `Distiller`.

Every arm repeats for several student seeds; the table gives the mean test
accuracy, its range, and the wall time per epoch (arms take turns epoch by
epoch, so load changes hit all of them). Writes
benchmarks/results/distillation.{json,md} (distillation_quick.* with --quick).

    python -m benchmarks.distillation_benchmark [--quick] [--epochs N] [--seeds N]
"""

import time


import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import app
from absl import flags

from benchmarks import _common
from benchmarks._common import accuracy
from benchmarks._common import compile_model
from tfopt import datasets
from tfopt import distillation

FLAGS = flags.FLAGS
flags.DEFINE_bool("quick", False, "A few thousand examples and one epoch: checks the code, "
                  "not the numbers. Writes distillation_quick.{json,md}.")
flags.DEFINE_integer("teacher_epochs", 8, "Epochs of teacher training.")
flags.DEFINE_integer("epochs", 4, "The epoch budget of every student.")
flags.DEFINE_integer("seeds", 3, "Student initializations (and batch orders) per arm.")
flags.DEFINE_integer("batch_size", 128, "Training batch size.")
flags.DEFINE_float("width", 0.3, "make_student width: the fraction of hidden units kept.")
flags.DEFINE_float("temperature", 2.0, "Temperature of the tfopt arms.")
flags.DEFINE_float("alpha", 0.5, "Hard-label weight of the tfopt arms.")
flags.DEFINE_integer("seed", 0, "Seed of the teacher.")
flags.DEFINE_string("data_dir", datasets.FASHION_MNIST_DIR, "Fashion-MNIST idx files.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR,
                    "Where distillation.json and distillation.md go.")

QUICK = dict(train_examples=3000, test_examples=1000, teacher_epochs=1, epochs=1, seeds=1)


class PlainDistiller(keras.Model):
    """The distiller of https://keras.io/examples/vision/knowledge_distillation/.

    Loss ``alpha * CE(y, student) + (1 - alpha) * T**2 *
    KLDivergence(softmax(teacher / T), softmax(student / T))``, written as
    that example writes it: Keras' KLDivergence on probabilities.
    """

    def __init__(self, teacher, student, alpha=0.1, temperature=3.0):
        super().__init__()
        self.teacher, self.student = teacher, student
        self.alpha, self.temperature = alpha, temperature
        self.hard = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        self.soft = keras.losses.KLDivergence()

    def train_step(self, data):
        x, y = data
        teacher_logits = self.teacher(x, training=False)
        with tf.GradientTape() as tape:
            student_logits = self.student(x, training=True)
            soft = self.soft(tf.nn.softmax(teacher_logits / self.temperature, axis=1),
                             tf.nn.softmax(student_logits / self.temperature, axis=1))
            loss = (self.alpha * self.hard(y, student_logits)
                    + (1 - self.alpha) * soft * self.temperature ** 2)
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        return {"loss": loss}

    def call(self, x):
        return self.student(x)


ARMS = (
    # name, student start, how it trains
    ("scratch", "random", "labels"),
    ("keras.io distiller", "random", "plain"),
    ("tfopt Distiller", "random", "tfopt"),
    ("tfopt teacher start, labels only", "teacher", "labels"),
    ("tfopt recipe", "teacher", "tfopt"),
)


def trainer(teacher, student, loss):
    if loss == "labels":
        return compile_model(student)
    if loss == "plain":
        model = PlainDistiller(teacher, student)
    else:
        model = distillation.Distiller(teacher, student, temperature=FLAGS.temperature,
                                       alpha=FLAGS.alpha)
    model.compile(keras.optimizers.Adam(), metrics=["accuracy"])
    return model


def train_students(teacher, data):
    """{arm: {"curves": [[acc per epoch] per seed], "epoch_seconds": [...]}}."""
    (x_train, y_train), (x_test, y_test) = data
    results = {name: {"curves": [], "epoch_seconds": []} for name, _, _ in ARMS}
    for seed in range(FLAGS.seeds):
        keras.utils.set_random_seed(1000 + seed)
        random_start = distillation.make_student(teacher, FLAGS.width)
        teacher_start = distillation.make_student(teacher, FLAGS.width, weights="teacher")
        models = {}
        for name, start, loss in ARMS:
            student = keras.models.clone_model(random_start)
            student.set_weights((random_start if start == "random" else teacher_start)
                                .get_weights())
            models[name] = (student, trainer(teacher, student, loss))
            results[name]["curves"].append([])
        for epoch in range(FLAGS.epochs):
            order = np.random.default_rng([seed, epoch]).permutation(len(x_train))
            for name, _, _ in ARMS:  # in turns, so load changes hit every arm alike
                student, model = models[name]
                begin = time.perf_counter()
                model.fit(x_train[order], y_train[order], batch_size=FLAGS.batch_size,
                          epochs=1, shuffle=False, verbose=0)
                results[name]["epoch_seconds"].append(time.perf_counter() - begin)
                results[name]["curves"][-1].append(accuracy(student, x_test, y_test))
    return results, random_start.count_params()


def summarize(results, teacher_accuracy):
    scratch = np.mean([curve[-1] for curve in results["scratch"]["curves"]])
    scratch_seconds = np.median(results["scratch"]["epoch_seconds"])
    rows = {}
    for name, start, loss in ARMS:
        final = [curve[-1] for curve in results[name]["curves"]]
        seconds = float(np.median(results[name]["epoch_seconds"]))
        rows[name] = {
            "start": start, "loss": loss, **results[name],
            "accuracy": float(np.mean(final)), "accuracy_min": min(final),
            "accuracy_max": max(final),
            "points_vs_scratch": 100 * float(np.mean(final) - scratch),
            "fraction_of_teacher": float(np.mean(final)) / teacher_accuracy,
            "accuracy_by_epoch": np.mean(results[name]["curves"], axis=0).tolist(),
            "seconds_per_epoch": seconds, "time_vs_scratch": seconds / scratch_seconds}
    return rows


def targets(r):
    recipe = r["rows"]["tfopt recipe"]
    return [
        {"name": "student has at most 10% of the teacher's parameters",
         "measured": f"{r['student_parameters']:,} of {r['teacher_parameters']:,} "
                     f"({r['parameter_fraction']:.1%})",
         "met": r["parameter_fraction"] <= 0.10},
        {"name": "tfopt-distilled student at least 1 point above the scratch student",
         "measured": f"{recipe['points_vs_scratch']:+.2f} points",
         "met": recipe["points_vs_scratch"] >= 1.0},
        {"name": "tfopt-distilled student at least 97% of the teacher's accuracy",
         "measured": f"{recipe['fraction_of_teacher']:.1%}",
         "met": recipe["fraction_of_teacher"] >= 0.97},
    ]


def markdown(r):
    env, f = r["environment"], r["flags"]
    lines = [f"# Distillation benchmark: Fashion-MNIST{' (--quick: numbers meaningless)' if r['quick'] else ''}",
             "", f"{env['date']}; TF {env['versions']['tensorflow']}, tfopt "
             f"{env['versions']['tfopt']}; {env['cpus_usable']} CPUs. Teacher: the reference "
             f"CNN, {f['teacher_epochs']} epochs, {r['teacher_parameters']:,} parameters, test "
             f"accuracy {r['teacher_accuracy']:.2%}. Student: make_student(width={f['width']}), "
             f"{r['student_parameters']:,} parameters ({r['parameter_fraction']:.1%}). Every "
             f"student trains {f['epochs']} epochs (batch {f['batch_size']}, Adam 1e-3, the "
             f"same batches); mean of {f['seeds']} seeds. tfopt arms: T {f['temperature']:g}, "
             f"alpha {f['alpha']:g}; keras.io distiller: T 3, alpha 0.1.", "",
             "| student | start | test acc | min-max | vs scratch | of teacher | s/epoch "
             "| time vs scratch |", "|---|---|---|---|---|---|---|---|"]
    for name, row in r["rows"].items():
        lines.append(
            f"| {name} | {row['start']} | {row['accuracy']:.2%} | "
            f"{row['accuracy_min']:.2%}-{row['accuracy_max']:.2%} | "
            f"{row['points_vs_scratch']:+.2f} pts | {row['fraction_of_teacher']:.1%} | "
            f"{row['seconds_per_epoch']:.1f} | {row['time_vs_scratch']:.2f}x |")
    epochs = range(1, f["epochs"] + 1)
    lines += ["", "Mean test accuracy after each epoch:", "",
              "| student | " + " | ".join(f"epoch {e}" for e in epochs) + " |",
              "|---|" + "---|" * len(epochs)]
    for name, row in r["rows"].items():
        lines.append(f"| {name} | " + " | ".join(f"{a:.2%}" for a in row["accuracy_by_epoch"])
                     + " |")
    lines += ["", "## Targets", ""]
    lines += [f"- {t['name']}: {t['measured']} ({'met' if t['met'] else 'NOT met'})"
              for t in r["targets"]]
    lines += ["", "Reproduce: `make benchmark-distillation` or "
              "`python -m benchmarks.distillation_benchmark`."]
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    start = time.perf_counter()
    if FLAGS.quick:
        for name in ("teacher_epochs", "epochs", "seeds"):
            if not FLAGS[name].present:
                FLAGS[name].value = QUICK[name]
    keras.utils.set_random_seed(FLAGS.seed)
    if FLAGS.quick:
        data = _common.load_fashion_mnist(FLAGS.data_dir, QUICK["train_examples"],
                                          QUICK["test_examples"])
    else:
        data = _common.load_fashion_mnist(FLAGS.data_dir)
    (x_train, y_train), (x_test, y_test) = data

    teacher = compile_model(_common.reference_cnn())
    begin = time.perf_counter()
    teacher.fit(x_train, y_train, batch_size=FLAGS.batch_size, epochs=FLAGS.teacher_epochs,
                verbose=0)
    teacher_seconds = (time.perf_counter() - begin) / FLAGS.teacher_epochs
    teacher_accuracy = accuracy(teacher, x_test, y_test)

    results, student_parameters = train_students(teacher, data)
    flag_values = {name: FLAGS[name].value for name in (
        "quick", "teacher_epochs", "epochs", "seeds", "batch_size", "width", "temperature",
        "alpha", "seed", "data_dir")}
    r = {"quick": FLAGS.quick, "flags": flag_values, "train_examples": len(x_train),
         "test_examples": len(x_test), "teacher_accuracy": teacher_accuracy,
         "teacher_seconds_per_epoch": teacher_seconds,
         "teacher_parameters": teacher.count_params(), "student_parameters": student_parameters,
         "parameter_fraction": student_parameters / teacher.count_params(),
         "rows": summarize(results, teacher_accuracy)}
    r["targets"] = targets(r)
    r["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    stem = "distillation_quick" if FLAGS.quick else "distillation"
    _common.write_results(FLAGS.output_dir, stem, r, markdown(r))


if __name__ == "__main__":
    app.run(main)
