"""Teachers other than the float model: a Keras file, a Keras SavedModel, or any SavedModel.

A TF-Hub-style SavedModel (written by ``tf.saved_model.save``, e.g. a model
exported from another framework or downloaded from a model hub) holds no
Keras model, only restored functions. `SavedModelTeacher` wraps one into a
Keras layer so that it can teach through `distillation.Distiller` like any
Keras model: it calls the object's ``__call__`` (the reusable-SavedModel
convention) or, without one, its ``serving_default`` signature with a single
output, and never trains it.
"""

import os

import tensorflow as tf
import tf_keras as keras

from tfopt import quantization

_SAVED_MODEL_FILE = "saved_model.pb"
_KERAS_METADATA = "keras_metadata.pb"
_SIGNATURE = "serving_default"


@keras.utils.register_keras_serializable(package="tfopt")
class SavedModelTeacher(keras.layers.Layer):
    """A SavedModel without a Keras model, as a frozen Keras layer.

    Args:
      path: the SavedModel directory.
      **kwargs: Keras layer arguments such as `name`.

    Raises:
      ValueError: the SavedModel has neither ``__call__`` nor a
        ``serving_default`` signature of one input and one output.
    """

    def __init__(self, path, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.path = os.fspath(path)
        self._restored = tf.saved_model.load(self.path)
        self._function, self._output_key = _callable_of(self._restored, self.path)
        # Listed so that the teacher's weights are part of the layer's (run fingerprints,
        # checkpoints); a restored object does not list them itself.
        self._restored_variables = [
            value for value in tf.train.TrackableView(self._restored).descendants()
            if isinstance(value, tf.Variable)]

    def call(self, inputs):
        outputs = self._function(inputs)
        return outputs[self._output_key] if self._output_key else outputs

    def get_config(self):
        return {**super().get_config(), "path": self.path}


def _callable_of(restored, path):
    """(function, output key or None) of a restored SavedModel."""
    if getattr(getattr(restored, "__call__", None), "concrete_functions", None):
        return restored.__call__, None
    signature = getattr(restored, "signatures", {}).get(_SIGNATURE)
    if signature is None:
        raise ValueError(f"the SavedModel {path!r} has neither a __call__ function nor a "
                         f"{_SIGNATURE!r} signature, so it cannot teach. Save it with a "
                         "tf.function __call__ or a serving signature.")
    inputs = signature.structured_input_signature[1]
    outputs = signature.structured_outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"the SavedModel {path!r}'s {_SIGNATURE!r} signature takes "
                         f"{sorted(inputs)} and gives {sorted(outputs)}; a teacher needs one "
                         "input and one output (logits).")
    input_key, output_key = next(iter(inputs)), next(iter(outputs))
    return (lambda x: signature(**{input_key: x})), output_key


def load_teacher(path, input_shape):
    """The teacher at `path` as a tf_keras model taking examples of `input_shape`.

    Args:
      path: a .keras or .h5 file, a tf_keras SavedModel directory, or a
        SavedModel written by ``tf.saved_model.save`` (wrapped in
        `SavedModelTeacher`).
      input_shape: one example's shape (the float model's input without the
        batch axis).

    Raises:
      ValueError: `path` is not a model file or SavedModel, or cannot be loaded.
    """
    path = os.fspath(path)
    if os.path.isfile(path):
        return quantization.load_model(path, compile=False)
    if not os.path.isfile(os.path.join(path, _SAVED_MODEL_FILE)):
        raise ValueError(f"{path!r} is neither a model file (.keras, .h5) nor a SavedModel "
                         f"directory (no {_SAVED_MODEL_FILE}).")
    if os.path.isfile(os.path.join(path, _KERAS_METADATA)):
        return keras.models.load_model(path, compile=False)
    inputs = keras.Input(tuple(input_shape))
    return keras.Model(inputs, SavedModelTeacher(path, name="saved_model_teacher")(inputs),
                       name="teacher")
