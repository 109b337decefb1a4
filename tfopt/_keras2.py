"""Imports tfmot without switching the user's ``tf.keras`` to Keras 2.

tfopt's tf-keras path needs tfmot, and importing tfmot sets the environment
variable ``TF_USE_LEGACY_KERAS=1`` and then reads ``tf.keras``. TensorFlow
binds ``tf.keras`` on its first use, so that import would bind it to tf_keras
for the rest of the process (and the variable would reach every child
process), although tfopt itself never uses ``tf.keras``: it imports tf_keras
by name. So before tfmot is imported, ``tf.keras`` is bound as the user's own
setting says (Keras 3 unless they set the variable), and the variable is
restored afterwards. Every tfopt module that imports tfmot imports this module
first.
"""

import os

_VARIABLE = "TF_USE_LEGACY_KERAS"


def _import_tfmot():
    before = os.environ.get(_VARIABLE)
    import tensorflow as tf
    tf.keras.layers  # noqa: B018  (binds tf.keras now, as the user's environment says)
    try:
        import tensorflow_model_optimization  # noqa: F401
    finally:
        if before is None:
            os.environ.pop(_VARIABLE, None)
        else:
            os.environ[_VARIABLE] = before


_import_tfmot()
