"""Measurements shared by examples, reports and benchmarks."""

import gzip
import os
import tempfile


def gzipped_size(model):
    """Bytes of the model's weights file (HDF5) after gzip at the default level.

    Zeros compress, so this is where unstructured sparsity shows up in storage
    and download size, as in tfmot's guides.

    Args:
      model: a tf_keras model.

    Returns:
      The gzip-compressed size in bytes.

    Example:
      >>> gzipped_size(tfopt.pruning.strip(pruned)) < gzipped_size(model)
      True
    """
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "weights.h5")
        model.save_weights(path)
        with open(path, "rb") as f:
            return len(gzip.compress(f.read()))
