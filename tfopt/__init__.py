"""tfopt: make trained Keras models small and fast enough to ship.

Prune, quantize and distill inside ordinary ``model.fit`` training, then export
SavedModels for TensorFlow Serving and TFLite files for edge devices.
"""

import os

# tfmot and tfopt work with Keras 2 (tf-keras). TensorFlow 2.21 picks Keras 3 for
# `tf.keras` unless this is set before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"

from tfopt import distillation  # noqa: E402
from tfopt import export  # noqa: E402
from tfopt import pruning  # noqa: E402
from tfopt import quantization  # noqa: E402

__all__ = ["distillation", "export", "pruning", "quantization"]
