"""Measurements shared by examples, reports and benchmarks."""

import gzip
import os
import sys
import tempfile
import time

import numpy as np
import tf_keras as keras


def keras_file_size(model):
    """Bytes of the model saved as a `.keras` file, raw and gzip-compressed.

    The model is saved without optimizer state (an uncompiled copy), so the
    figures are what ships. Zeros compress, so this is where unstructured
    sparsity shows up in storage and download size, as in tfmot's guides.

    Args:
      model: a Sequential or Functional model, tf_keras or Keras 3.

    Returns:
      ``(raw_bytes, gzip_bytes)``, gzip at level 9.

    Example:
      >>> raw, compressed = keras_file_size(tfopt.pruning.strip(pruned))
    """
    copy = _uncompiled_copy(model)
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        copy.save(path)
        with open(path, "rb") as f:
            content = f.read()
    return len(content), len(gzip.compress(content, 9))


def _uncompiled_copy(model):
    """The model with its weights and without its compile state (so no optimizer)."""
    keras3 = sys.modules.get("keras")  # no Keras 3 model exists before keras is imported
    if keras3 is not None and isinstance(model, keras3.Model):
        # Keras 3's clone_model keeps the compile state, and the file would carry the
        # optimizer's variables; a model rebuilt from its config has none.
        copy = type(model).from_config(model.get_config())
    else:
        copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


def gzipped_size(model):
    """gzip-compressed bytes of the model's `.keras` file (see `keras_file_size`)."""
    return keras_file_size(model)[1]


def file_size(path):
    """Bytes of a file, raw and gzip-compressed (level 9), e.g. of a `.tflite` file.

    Args:
      path: the file.

    Returns:
      ``(raw_bytes, gzip_bytes)``.

    Example:
      >>> raw, compressed = file_size("model.tflite")
    """
    with open(path, "rb") as f:
        content = f.read()
    return len(content), len(gzip.compress(content, 9))


def tflite_latency(interpreter, runs=100, warmup=10):
    """Median milliseconds of one `invoke()` of a LiteRT interpreter.

    The interpreter's inputs must already be set; what it computes on is up to
    the caller (batch size, threads). The median resists the scheduler's
    outliers on shared machines better than the mean.

    Args:
      interpreter: an `ai_edge_litert.interpreter.Interpreter` with tensors
        allocated and inputs set.
      runs: timed invocations. Defaults to 100.
      warmup: untimed invocations first (caches, XNNPACK's packing). Defaults to 10.

    Returns:
      The median latency in milliseconds, a float.

    Example:
      >>> interpreter = Interpreter("model.tflite", num_threads=1)
      >>> interpreter.allocate_tensors()
      >>> interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x[:1])
      >>> tflite_latency(interpreter, runs=200)
    """
    if runs < 1:
        raise ValueError(f"runs must be at least 1, got {runs!r}.")
    for _ in range(warmup):
        interpreter.invoke()
    times = np.empty(runs)
    for index in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        times[index] = time.perf_counter() - start
    return 1000.0 * float(np.median(times))
