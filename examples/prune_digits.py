"""Prune a digits classifier to 80% three ways, then strip and shrink it.

Trains a small CNN on scikit-learn's bundled digits (no download), prunes a
copy with each structure during a short fine-tune, and prints accuracy,
parameters and gzip size before and after.

Run: python examples/prune_digits.py   (or `make demo`)
"""

from tfopt import quiet  # imports no TensorFlow yet

quiet.silence_tensorflow()  # before TensorFlow loads; TFOPT_VERBOSE=1 shows its logs

import numpy as np
import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from tfopt import measure
from tfopt import pruning
from tfopt.datasets import load_digits

EPOCHS = flags.DEFINE_integer("epochs", 12, "Epochs of the initial training.")
FINE_TUNE = flags.DEFINE_integer("fine_tune_epochs", 8, "Epochs of pruning fine-tune.")
BATCH = 32


def build_model():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])


def compile_model(model):
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def prune_and_fine_tune(model, structure, x, y, epochs):
    steps = epochs * int(np.ceil(len(x) / BATCH))
    if isinstance(structure, tuple):  # N:M fixes the sparsity at 1 - n/m: prune once.
        schedule = pruning.OneShot(1 - structure[0] / structure[1], step=0)
    else:
        schedule = pruning.PolynomialDecay(0.0, 0.8, begin_step=0, end_step=steps // 2,
                                           frequency=10)
    pruned = compile_model(pruning.prune(model, schedule, structure=structure))
    pruned.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    return pruned


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = compile_model(build_model())
    model.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS.value, verbose=0)

    rows = [("float (unpruned)", accuracy(model, x_test, y_test), model.count_params(),
             measure.gzipped_size(model), 0.0)]
    for label, structure in [("unstructured 80%", "unstructured"),
                             ("channels 80% + shrink", "channels"),
                             ("2:4 (N:M, 50%)", (2, 4))]:
        pruned = prune_and_fine_tune(model, structure, x_train, y_train, FINE_TUNE.value)
        final = pruning.shrink(pruned) if structure == "channels" else pruning.strip(pruned)
        report = pruning.sparsity_report(final)
        rows.append((label, accuracy(final, x_test, y_test), final.count_params(),
                     measure.gzipped_size(final), report.sparsity))
        if structure == "unstructured":
            print(pruning.sparsity_report(pruned), end="\n\n")

    base_params, base_gzip = rows[0][2], rows[0][3]
    print(f"{'model':<24}{'accuracy':>9}{'params':>10}{'zeros':>8}{'gzip bytes':>12}  vs float")
    for label, acc, params, gz, sparsity in rows:
        print(f"{label:<24}{acc:>9.3f}{params:>10,}{sparsity:>8.0%}{gz:>12,}"
              f"  params x{params / base_params:.2f}, gzip x{gz / base_gzip:.2f}")


if __name__ == "__main__":
    app.run(main)
