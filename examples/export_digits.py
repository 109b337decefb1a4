"""Optimize a digits classifier, export it for TF Serving and LiteRT, and answer a request.

Trains a small CNN on scikit-learn's bundled digits (no download), prunes half
of its channels during a short fine-tune and shrinks it (the pruned channels
are removed for real), then runs the `tfopt-export` command-line tool on the
result, as a user would: a versioned SavedModel (serving_default and classify
signatures, warmup requests), an int8 TFLite file and the TF Serving configs,
all under `serving/models/`, the export root the deployment kit in `serving/`
mounts (`cd serving && docker compose up`). The export is version 1, replaced
on every run, labelled `stable`. Finally it loads version 1 the way TF Serving
does (TensorFlow's SavedModel loader, tag `serve`, by signature, no Keras) and
answers one PredictRequest built with tensorflow-serving-api.

Run: python examples/export_digits.py   (or `make demo`)
"""

import os
import subprocess
import sys
import tempfile

from tfopt import quiet  # imports no TensorFlow yet

quiet.silence_tensorflow()  # before TensorFlow loads; TFOPT_VERBOSE=1 shows its logs

import numpy as np
import tensorflow as tf
import tf_keras as keras
from absl import app
from absl import flags
from absl import logging
from tensorflow_serving.apis import predict_pb2

from tfopt import export
from tfopt import pruning
from tfopt.datasets import load_digits

EPOCHS = flags.DEFINE_integer("epochs", 10, "Epochs of the initial training.")
FINE_TUNE = flags.DEFINE_integer("fine_tune_epochs", 6, "Epochs of channel-pruning fine-tune.")
EXPORT_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "serving", "models")
MODEL_NAME = "digits"
BATCH = 32


def build_model():
    return keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
        keras.layers.BatchNormalization(),
        keras.layers.Conv2D(64, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(128, activation="relu"),
        keras.layers.Dense(10, name="logits"),
    ])


def compile_model(model):
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y))


def shrunk(model, x, y, epochs):
    """`model` with half its channels pruned during a fine-tune, then removed."""
    steps = epochs * int(np.ceil(len(x) / BATCH))
    frequency = 10
    # end_step a multiple of frequency, so the last pruning step reaches the final sparsity.
    schedule = pruning.PolynomialDecay(0.0, 0.5, begin_step=0,
                                       end_step=steps // 2 // frequency * frequency,
                                       frequency=frequency)
    pruned = compile_model(pruning.prune(model, schedule, structure="channels"))
    pruned.fit(x, y, batch_size=BATCH, epochs=epochs, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    return compile_model(pruning.shrink(pruned))


def tfopt_export_command():
    """The installed console script (pip install -e . or make demo), else the module.

    The console script keeps TensorFlow's start-up log lines out; `python -m`
    runs the same tool with them.
    """
    script = os.path.join(os.path.dirname(sys.executable), "tfopt-export")
    return [script] if os.path.exists(script) else [sys.executable, "-m", "tfopt.cli.export"]


def answer_one_request(version_dir, image, label):
    """Loads the version as TF Serving does and runs one PredictRequest through it."""
    request = predict_pb2.PredictRequest()
    request.model_spec.name = MODEL_NAME
    request.model_spec.signature_name = "serving_default"
    request.inputs["image"].CopyFrom(tf.make_tensor_proto(image[None]))
    with export.SavedModelBundle(version_dir) as bundle:
        outputs = bundle.run(request.model_spec.signature_name,
                             {key: tf.make_ndarray(tensor)
                              for key, tensor in request.inputs.items()})
    logits = outputs["logits"][0]
    print(f"\nPredictRequest to {version_dir} (signature serving_default, input 'image' "
          f"{list(image[None].shape)}): class {int(np.argmax(logits))}, label {int(label)}")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)
    keras.utils.set_random_seed(0)
    (x_train, y_train), (x_test, y_test) = load_digits()
    model = compile_model(build_model())
    model.fit(x_train, y_train, batch_size=BATCH, epochs=EPOCHS.value, verbose=0)
    small = shrunk(model, x_train, y_train, FINE_TUNE.value)
    print(f"float CNN: {model.count_params():,} parameters, accuracy "
          f"{accuracy(model, x_test, y_test):.3f}; channels pruned 50% and shrunk: "
          f"{small.count_params():,} parameters, accuracy {accuracy(small, x_test, y_test):.3f}")

    base_path = os.path.join(EXPORT_ROOT, MODEL_NAME)
    with tempfile.TemporaryDirectory() as directory:
        model_file = os.path.join(directory, "digits_shrunk.keras")
        small.save(model_file)
        command = tfopt_export_command() + [
            f"--model={model_file}", f"--base_path={base_path}", f"--model_name={MODEL_NAME}",
            "--version=1", "--overwrite", "--formats=saved_model,tflite_int8", "--classify",
            "--representative_data=digits", "--verify_data=digits", "--labels=stable"]
        print(f"\n$ tfopt-export {' '.join(command[len(tfopt_export_command()):])}",
              flush=True)
        subprocess.run(command, check=True)
    answer_one_request(os.path.join(base_path, "1"), x_test[0], y_test[0])


if __name__ == "__main__":
    app.run(main)
