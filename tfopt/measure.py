"""Measurements shared by examples, reports and benchmarks."""

import gzip
import os
import tempfile

import tf_keras as keras


def keras_file_size(model):
    """Bytes of the model saved as a `.keras` file, raw and gzip-compressed.

    The model is saved without optimizer state (an uncompiled copy), so the
    figures are what ships. Zeros compress, so this is where unstructured
    sparsity shows up in storage and download size, as in tfmot's guides.

    Args:
      model: a Sequential or Functional tf_keras model.

    Returns:
      ``(raw_bytes, gzip_bytes)``, gzip at level 9.

    Example:
      >>> raw, compressed = keras_file_size(tfopt.pruning.strip(pruned))
    """
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        copy.save(path)
        with open(path, "rb") as f:
            content = f.read()
    return len(content), len(gzip.compress(content, 9))


def gzipped_size(model):
    """gzip-compressed bytes of the model's `.keras` file (see `keras_file_size`)."""
    return keras_file_size(model)[1]
