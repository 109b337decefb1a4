"""tfopt for Keras 3 models (``import keras``).

The same techniques as tfopt's tf-keras path, for Keras 3 Sequential and
Functional models, under the same names: ``tfopt.keras3.pruning``,
``tfopt.keras3.quantization``, ``tfopt.keras3.distillation`` and
``tfopt.keras3.export``; ``tfopt.keras3.from_tf_keras`` converts a tf-keras
model. Importing them never sets ``TF_USE_LEGACY_KERAS`` and leaves
``tf.keras`` whatever it was.
"""

import importlib

__all__ = ["distillation", "export", "from_tf_keras", "pruning", "quantization"]


def __getattr__(name):
    if name == "from_tf_keras":
        return importlib.import_module("tfopt.keras3._migrate").from_tf_keras
    if name in __all__:
        return importlib.import_module(f"tfopt.keras3.{name}")
    raise AttributeError(f"module 'tfopt.keras3' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))
