"""tfopt: make trained Keras models small and fast enough to ship.

Prune, quantize and distill inside ordinary ``model.fit`` training, then export
SavedModels for TensorFlow Serving and TFLite files for edge devices.

``import tfopt`` selects Keras 2 and imports nothing heavy: the subpackages
(``tfopt.pruning``, ...) load TensorFlow when they are first used, so
`tfopt.quiet` can run before TensorFlow does.
"""

import importlib
import os

# tfmot and tfopt work with Keras 2 (tf-keras). TensorFlow 2.21 picks Keras 3 for
# `tf.keras` unless this is set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

__all__ = ["distillation", "export", "pipeline", "pruning", "quantization", "serving"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"tfopt.{name}")
    raise AttributeError(f"module 'tfopt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
