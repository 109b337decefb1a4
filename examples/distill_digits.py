"""Distill a digits CNN into a student with a tenth of its weights, then export it.

Trains a teacher CNN on scikit-learn's bundled digits (no download), builds a
student at 25% width three ways (random weights trained on labels, random
weights distilled, teacher-started and distilled with a hint on the last
convolution), and writes the best student as an int8 TFLite file checked
against the Keras student.

Run: python examples/distill_digits.py   (or `make demo`)
"""

import os
import tempfile

from tfopt import quiet  # imports no TensorFlow yet

quiet.silence_tensorflow()  # before TensorFlow loads; TFOPT_VERBOSE=1 shows its logs

import numpy as np
import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from tfopt import distillation
from tfopt import export
from tfopt.datasets import load_digits

EPOCHS = flags.DEFINE_integer("epochs", 12, "Epochs of teacher training.")
STUDENT_EPOCHS = flags.DEFINE_integer("student_epochs", 4, "Epochs of every student.")
BATCH = 32


def build_teacher():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu", name="conv_a"),
        keras.layers.Conv2D(64, 3, activation="relu", name="conv_b"),
        keras.layers.MaxPooling2D(name="pool"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(128, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="logits"),
    ], name="teacher")


def compile_model(model):
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def distill(teacher, student, x, y, **kwargs):
    d = distillation.Distiller(teacher, student, temperature=2.0, alpha=0.5, **kwargs)
    d.compile(keras.optimizers.Adam(1e-3), metrics=["accuracy"])
    d.fit(x, y, batch_size=BATCH, epochs=STUDENT_EPOCHS.value, verbose=0)
    return d.student


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    teacher = compile_model(build_teacher())
    teacher.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS.value, verbose=0)

    random_start = distillation.make_student(teacher, width=0.25)
    students = {}
    scratch = compile_model(keras.models.clone_model(random_start))
    scratch.fit(x_train, y_train, batch_size=BATCH, epochs=STUDENT_EPOCHS.value, verbose=0)
    students["random start, labels only"] = scratch
    students["random start, distilled"] = distill(
        teacher, keras.models.clone_model(random_start), x_train, y_train)
    students["teacher start, distilled + hint"] = distill(
        teacher, distillation.make_student(teacher, width=0.25, weights="teacher"),
        x_train, y_train, hints=[("conv_b", "conv_b")])

    print(f"{'model':34} {'test acc':>8} {'params':>8}")
    print(f"{'teacher':34} {accuracy(teacher, x_test, y_test):8.3f} "
          f"{teacher.count_params():8,}")
    for label, student in students.items():
        print(f"{label:34} {accuracy(student, x_test, y_test):8.3f} "
              f"{student.count_params():8,}")

    best = students["teacher start, distilled + hint"]
    with tempfile.TemporaryDirectory() as tmp:
        path = export.tflite(best, os.path.join(tmp, "student_int8.tflite"), mode="int8",
                             representative_data=x_train[:200], verify=(x_test, y_test))
        report = export.verify_tflite(path, x_test, y_test, reference=best)
    print(f"\nint8 TFLite student: {report['bytes']:,} bytes, test accuracy "
          f"{report['accuracy']:.3f}, agrees with Keras on {report['agreement']:.1%}")


if __name__ == "__main__":
    app.run(main)
