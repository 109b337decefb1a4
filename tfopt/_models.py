"""Checks shared by every tfopt entry point that takes a Keras model."""

import tf_keras as keras


def validate_tf_keras_model(model, action):
    """Raises ValueError unless `model` is a tf_keras (Keras 2) Model.

    A Keras 3 model (``import keras`` or ``tf.keras`` without
    TF_USE_LEGACY_KERAS=1) gets a hint saying how to build a Keras 2 one.
    """
    if isinstance(model, keras.Model):
        return
    kind = type(model).__module__ + "." + type(model).__name__
    hint = (" It looks like a Keras 3 object: tfopt uses Keras 2; build models with "
            "`import tf_keras as keras`." if type(model).__module__.startswith("keras.")
            else "")
    raise ValueError(f"{action} needs a tf_keras Model, got {kind}.{hint}")
