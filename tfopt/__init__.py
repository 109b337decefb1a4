"""tfopt: make trained Keras models small and fast enough to ship.

Prune, quantize and distill inside ordinary ``model.fit`` training, then export
SavedModels for TensorFlow Serving and TFLite files for edge devices.

``import tfopt`` imports nothing heavy and changes nothing: the subpackages
load TensorFlow when they are first used, so `tfopt.quiet` can run before
TensorFlow does. ``tfopt.pruning``, ``tfopt.quantization``,
``tfopt.distillation`` and ``tfopt.pipeline`` work on tf-keras (Keras 2)
models; ``tfopt.keras3`` on Keras 3 models. None of them sets
``TF_USE_LEGACY_KERAS`` or changes what ``tf.keras`` is.
"""

import importlib

__version__ = "0.1.0"

__all__ = ["distillation", "export", "keras3", "pipeline", "pruning", "quantization", "serving"]


def __getattr__(name):
    if name in __all__:
        return importlib.import_module(f"tfopt.{name}")
    raise AttributeError(f"module 'tfopt' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
