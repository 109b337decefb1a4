"""Pieces shared by the benchmarks: data, the reference CNN, timing, reporting."""

import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time

import tfopt

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import keras as keras3
import tf_keras as keras
from absl import logging
from ai_edge_litert.interpreter import Interpreter

from tfopt import datasets

RESULTS_DIR = os.path.join(os.path.dirname(__file__), "results")


def load_fashion_mnist(data_dir, train_examples=None, test_examples=None):
    """Fashion-MNIST, optionally cut to the first examples (for --quick runs)."""
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(data_dir)
    return ((x_train[:train_examples], y_train[:train_examples]),
            (x_test[:test_examples], y_test[:test_examples]))


def reference_cnn(k=keras):
    """The benchmarks' Fashion-MNIST CNN, built with Keras module `k` (tf-keras or Keras 3)."""
    layers = k.layers
    return k.Sequential([
        k.Input((28, 28, 1)),
        layers.Conv2D(32, 3, activation="relu"), layers.MaxPool2D(),
        layers.Conv2D(64, 3, activation="relu"), layers.MaxPool2D(),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(10),
    ], name="fashion_cnn")


def keras_of(model):
    """The Keras module `model` belongs to: tf-keras, or Keras 3 (the Keras 3 benchmark)."""
    return keras3 if isinstance(model, keras3.Model) else keras


def compile_model(model, learning_rate=1e-3):
    """Adam and sparse cross entropy on logits, in the model's own Keras."""
    k = keras_of(model)
    model.compile(k.optimizers.Adam(learning_rate),
                  k.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def clone(model):
    copy = keras_of(model).models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def accuracy(model, x, y):
    logits = model.predict(x, batch_size=1024, verbose=0)
    return float(np.mean(np.argmax(logits, axis=1) == y))



@contextlib.contextmanager
def quiet():
    """Silences the INFO lines TensorFlow's converter and SavedModel writer log."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


def tflite_bytes(model):
    with quiet():
        return tf.lite.TFLiteConverter.from_keras_model(model).convert()


def tflite_latencies(models, runs, rounds=10, warmup=100):
    """Median single-thread batch-1 latency (ms) of each flatbuffer, runs interleaved."""
    interpreters = {}
    for name, content in models.items():
        interpreter = Interpreter(model_content=content, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        values = np.random.default_rng(0).random(detail["shape"], np.float32)
        if np.issubdtype(detail["dtype"], np.integer):  # int8/int16 input: any valid codes
            values = (values * 100).astype(detail["dtype"])
        interpreter.set_tensor(detail["index"], values)
        for _ in range(warmup):
            interpreter.invoke()
        interpreters[name] = interpreter
    times = {name: [] for name in models}
    for _ in range(rounds):
        for name, interpreter in interpreters.items():
            for _ in range(max(1, runs // rounds)):
                start = time.perf_counter()
                interpreter.invoke()
                times[name].append(time.perf_counter() - start)
    return {name: 1000.0 * float(np.median(t)) for name, t in times.items()}


def environment(flag_values, wall_seconds):
    versions = {"tensorflow": tf.__version__, "tf_keras": keras.__version__,
                "tfmot": tfmot.__version__, "tfopt": tfopt.__version__,
                "ai_edge_litert": importlib.metadata.version("ai-edge-litert"),
                "numpy": np.__version__, "python": sys.version.split()[0]}
    return {"versions": versions,
            "platform": platform.platform(), "processor": platform.processor(),
            "cpu_count": os.cpu_count(), "cpus_usable": len(os.sched_getaffinity(0)),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "flags": flag_values, "wall_seconds": round(wall_seconds, 1)}




def write_results(output_dir, stem, results, table):
    """Writes <stem>.json and <stem>.md to `output_dir` and prints the table."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, stem + ".json"), "w") as f:
        json.dump(results, f, indent=2)
    with open(os.path.join(output_dir, stem + ".md"), "w") as f:
        f.write(table)
    print(table)


def tfopt_commit():
    """The commit of the tfopt tree this run imports, with a note if tfopt/ differs from it."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(tfopt.__file__)))
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, check=True,
                                capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain", "tfopt"], cwd=root,
                                 check=True, capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + (" + uncommitted changes in tfopt/" if changed else "")
