"""A Keras 3 digits CNN, channel-pruned, shrunk, int8-trained, exported and verified.

The whole journey on a Keras 3 model (``import keras``) with tfopt's Keras 3
API (`tfopt.keras3`; `tfopt.export` takes Keras 3 models as they are): trains
a small CNN on scikit-learn's bundled digits (no download), prunes half of its
channels during a short fine-tune (`tfopt.keras3.pruning.prune` with
``structure="channels"``) and removes them for real (`pruning.shrink`,
checked against `pruning.strip`), trains the small model quantization-aware
for int8 (`tfopt.keras3.quantization.quantize`), converts it to a fully-int8
TFLite file without representative data (int8 input and output, builtin ops
only: checked), and exports the small float model as version 1 of a TF
Serving model, loaded the way TF Serving loads it and compared with Keras.
Prints one table; a failed check raises, so the run exits non-zero. Files go
to a temporary directory, removed at the end.

Run: python examples/keras3_digits.py   (or `make demo`)
"""

import logging as python_logging
import os
import tempfile

from tfopt import quiet  # imports no TensorFlow yet

quiet.silence_tensorflow()  # before TensorFlow loads; TFOPT_VERBOSE=1 shows its logs

import keras
import numpy as np
from absl import app
from absl import flags
from absl import logging

from tfopt import export
from tfopt import measure
from tfopt.datasets import load_digits
from tfopt.keras3 import pruning
from tfopt.keras3 import quantization

EPOCHS = flags.DEFINE_integer("epochs", 10, "Epochs of float training.")
PRUNE_EPOCHS = flags.DEFINE_integer("prune_epochs", 6, "Epochs of channel-pruning fine-tune.")
QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 3, "Epochs of int8 quantization-aware training.")
BATCH = 32
SPARSITY = 0.5
# Each TFLite file must pick its Keras model's class this often (export.tflite's default
# agreement_threshold).
MIN_AGREEMENT = 0.98


def build_model():
    # Convolutions without activation, then BatchNormalization and ReLU: shrink cuts
    # channels through the BatchNormalization, and int8 QAT folds it into the kernel.
    return keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(32, 3, padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.Conv2D(64, 3),
        keras.layers.BatchNormalization(),
        keras.layers.ReLU(),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10, name="logits"),
    ])


def fit(model, x, y, epochs, learning_rate, callbacks=()):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0, callbacks=list(callbacks))
    return model


def check(ok, what):
    if not ok:
        raise RuntimeError(f"Verification failed: {what}")


def predict(model, x):
    # One eager call: model.predict would trace a function per model and batch size.
    return keras.ops.convert_to_numpy(model(x, training=False))


def accuracy(model, x, y):
    return float(np.mean(np.argmax(predict(model, x), axis=1) == y))


def prune_and_shrink(model, x, y, epochs):
    """`model` with half its channels pruned during a fine-tune, then removed; checked."""
    steps = epochs * int(np.ceil(len(x) / BATCH))
    frequency = max(1, min(10, steps // 4))
    # end_step a multiple of frequency, so the last pruning step reaches the final sparsity.
    end_step = max(frequency, steps // 2 // frequency * frequency)
    schedule = pruning.PolynomialDecay(0.0, SPARSITY, begin_step=0, end_step=end_step,
                                       frequency=frequency)
    pruned = fit(pruning.prune(model, schedule, structure="channels"), x, y, epochs, 1e-3,
                 callbacks=[pruning.UpdatePruningStep()])
    small = pruning.shrink(pruned)
    difference = np.max(np.abs(predict(small, x) - predict(pruning.strip(pruned), x)))
    check(difference < 1e-4, f"shrink's outputs differ from strip's by {difference:.3g}")
    # Every hidden layer keeps half its channels; the output layer stays whole.
    expected = {name: width if name == "logits" else round(width * (1 - SPARSITY))
                for name, width in widths(model).items()}
    check(widths(small) == expected, f"shrunk widths {widths(small)}, expected {expected}")
    return small


def widths(model):
    """{layer name: filters or units} of the model's Conv2D and Dense layers."""
    return {layer.name: getattr(layer, "filters", None) or layer.units for layer in model.layers
            if isinstance(layer, (keras.layers.Conv2D, keras.layers.Dense))}


def check_fully_int8(path):
    """int8 input and output, int8/int32 tensors only, builtin ops only (no Flex, no custom)."""
    contents = export.inspect_tflite(path)
    check(contents["fully_int8"], f"{path} is not fully int8 with builtin ops: {contents}")


def keras_row(stage, model, flops, x_test, y_test):
    """The Keras model itself: its `.keras` file (without optimizer state) and accuracy."""
    size, _ = measure.keras_file_size(model)
    return (stage, "Keras .keras", model.count_params(), flops, size,
            accuracy(model, x_test, y_test), None, None)


def tflite_row(stage, model, flops, mode, directory, x_test, y_test):
    """`model` converted in `mode`, run by LiteRT and compared with `model`."""
    # mode="int8" without representative_data: a QAT model's ranges were learned.
    path = export.tflite(model, os.path.join(directory, f"{mode}.tflite"), mode=mode)
    if mode == "int8":
        check_fully_int8(path)
    f = export.verify_tflite(path, x_test, y_test, reference=model)
    check(f["agreement"] >= MIN_AGREEMENT,
          f"the {mode} file picks the Keras model's class on {f['agreement']:.2%} of the test set")
    return (stage, f"TFLite {mode}", model.count_params(), flops, f["bytes"], f["accuracy"],
            f["agreement"], f["latency_ms"])


def saved_model_row(stage, model, flops, directory, x_test, y_test):
    """`model` as version 1 of a TF Serving model, loaded as TF Serving loads it and checked."""
    base_path = os.path.join(directory, "models", "digits")
    version_dir = export.saved_model(model, base_path, warmup_inputs=x_test[:8])
    check(version_dir == os.path.join(base_path, "1"),
          f"SavedModel written to {version_dir}, not version 1 of {base_path}")
    with export.SavedModelBundle(version_dir) as bundle:  # TF Serving's loader, tag "serve"
        check("serving_default" in bundle.signatures,
              f"signatures {sorted(bundle.signatures)} lack serving_default")
        outputs = bundle.run("serving_default", {"image": x_test[:16]})
    difference = np.max(np.abs(outputs["logits"] - predict(model, x_test[:16])))
    check(difference < 1e-4, f"the SavedModel's logits differ from Keras' by {difference:.3g}")
    f = export.verify_saved_model(version_dir, x_test, reference=model, labels=y_test)
    check(f["agreement"] == 1.0, f"the SavedModel agrees with Keras on {f['agreement']:.2%}")
    size = sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(version_dir) for name in names)
    return (stage, "SavedModel", model.count_params(), flops, size, f["accuracy"],
            f["agreement"], None)


def print_table(rows):
    print(f"\n{'stage':<17}{'format':<16}{'parameters':>11}{'MFLOPs':>8}{'bytes':>10}"
          f"{'accuracy':>10}{'agreement':>11}{'latency ms':>12}")
    for stage, kind, params, flops, size, acc, agreement, latency in rows:
        print(f"{stage:<17}{kind:<16}{params:>11,}{flops / 1e6:>8.3f}{size:>10,}{acc:>10.2%}"
              f"{'-' if agreement is None else f'{agreement:.2%}':>11}"
              f"{'-' if latency is None else f'{latency:.4f}':>12}")
    print("\nagreement: share of the test set where a file picks its Keras model's class.\n"
          "latency: LiteRT, one thread, one example (median).\n"
          "Checked: shrink's outputs equal strip's; the int8 file has int8 input and output and "
          "builtin ops only;\nthe SavedModel (version 1, tag serve, serving_default) answers as "
          "the Keras model does.")


def main(argv):
    del argv
    if keras.backend.backend() != "tensorflow":  # before training: the exports need it
        raise SystemExit(f"This example exports through TensorFlow, but Keras runs on "
                         f"{keras.backend.backend()!r}: unset KERAS_BACKEND or set it to "
                         "'tensorflow'.")
    logging.set_verbosity(logging.WARNING)
    # verify_tflite and verify_saved_model predict with each model they check, and Keras
    # warns once several models have traced their predict steps; nothing to act on here.
    python_logging.getLogger("tensorflow").setLevel(python_logging.ERROR)
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = fit(build_model(), x_train, y_train, EPOCHS.value, 1e-3)
    small = prune_and_shrink(model, x_train, y_train, PRUNE_EPOCHS.value)
    qat = fit(quantization.quantize(small, "int8"), x_train, y_train, QAT_EPOCHS.value, 1e-4)

    test = (x_test, y_test)
    # The QAT model is the shrunk one with BatchNormalization folded into the convolutions.
    big, few, qat_flops = (pruning.count_flops(m) for m in (model, small, qat))
    with tempfile.TemporaryDirectory() as directory:
        rows = [keras_row("float", model, big, *test),
                tflite_row("float", model, big, "float32", directory, *test),
                keras_row("pruned + shrunk", small, few, *test),
                tflite_row("pruned + shrunk", small, few, "float32", directory, *test),
                saved_model_row("pruned + shrunk", small, few, directory, *test),
                keras_row("int8 QAT", qat, qat_flops, *test),
                tflite_row("int8 QAT", qat, qat_flops, "int8", directory, *test)]
    print_table(rows)


if __name__ == "__main__":
    app.run(main)
