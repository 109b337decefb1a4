"""Quantize a digits classifier four ways and check every TFLite file against Keras.

Trains a small CNN on scikit-learn's bundled digits (no download), then builds
a float32 file, a post-training int8 file, a quantization-aware int8 file and a
binary-weight file, runs each through LiteRT and prints accuracy, agreement
with the Keras model, size and single-thread latency.

Run: python examples/quantize_digits.py   (or `make demo`)
"""

import os
import tempfile

from tfopt import quiet  # imports no TensorFlow yet

quiet.silence_tensorflow()  # before TensorFlow loads; TFOPT_VERBOSE=1 shows its logs

import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from tfopt import export
from tfopt import quantization
from tfopt.datasets import load_digits

EPOCHS = flags.DEFINE_integer("epochs", 12, "Epochs of float training.")
QAT_EPOCHS = flags.DEFINE_integer("qat_epochs", 3, "Epochs of quantization-aware training.")
BATCH = 32


def build_model():
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10),
    ])


def fit(model, x, y, epochs, learning_rate):
    model.compile(keras.optimizers.Adam(learning_rate),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0)
    return model


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = fit(build_model(), x_train, y_train, EPOCHS.value, 1e-3)
    calibration = x_train[:256]
    qat = fit(quantization.quantize(model, "int8", representative_data=calibration),
              x_train, y_train, QAT_EPOCHS.value, 1e-4)
    binary = fit(quantization.quantize(model, "binary", representative_data=calibration),
                 x_train, y_train, QAT_EPOCHS.value, 1e-3)

    rows = [("float32", model, dict(mode="float32")),
            ("int8, post-training", model, dict(mode="int8", representative_data=calibration)),
            ("int8, quantization-aware", qat, dict(mode="int8")),
            ("binary weights (int8 file)", binary, dict(mode="int8"))]
    print(f"{'file':<28}{'accuracy':>9}{'agrees':>8}{'bytes':>9}{'gzip':>8}{'latency ms':>12}")
    with tempfile.TemporaryDirectory() as directory:
        for label, source, options in rows:
            path = os.path.join(directory, "model.tflite")
            export.tflite(source, path, verify=(x_test, y_test), **options)
            f = export.verify_tflite(path, x_test, y_test, reference=source)
            print(f"{label:<28}{f['accuracy']:>9.3f}{f['agreement']:>8.3f}{f['bytes']:>9,}"
                  f"{f['gzip_bytes']:>8,}{f['latency_ms']:>12.4f}")
    print(f"\nbinary weights bit-packed: {quantization.packed_weight_bytes(binary):,} bytes "
          "(1 bit per binarized weight + per-channel scales; first and last layers int8)")


if __name__ == "__main__":
    app.run(main)
