"""load_model: `.keras` files of quantization-aware models, loaded.

Plain ``keras.models.load_model`` cannot load a tfmot QAT model: tfmot's
layers and configs (QuantizeWrapperV2, Default8BitQuantizeConfig, ...) are not
registered with Keras, so they load only inside
``tfmot.quantization.keras.quantize_scope()``. With tf-keras 2.21 even that
fails for `.keras` files, which build every layer from its config before
loading its variables:

- tfmot's QuantizeLayer does not mark itself built, is built a second time,
  and ends with 5 variables where the file has 3;
- tfmot's QuantizeWrapperV2 lists the wrapped layer's weights before building
  that layer, so it expects 6 variables where the file has 8;
- a MultiHeadAttention rebuilt from its config has its projections but not
  their kernels, which appear on its first call only.

`load_model` opens tfmot's scope and loads both layers through subclasses
that fix their `build`. The subclasses keep tfmot's class names: `.keras`
files store weights under the snake-cased class name.
"""

import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import quantize_layer
from tensorflow_model_optimization.python.core.quantization.keras import quantize_wrapper


class QuantizeLayer(quantize_layer.QuantizeLayer):
    """tfmot's QuantizeLayer, marked built by `build`."""

    def build(self, input_shape):
        super().build(input_shape)
        self.built = True


class QuantizeWrapperV2(quantize_wrapper.QuantizeWrapperV2):
    """tfmot's QuantizeWrapperV2, building the wrapped layer before listing its weights."""

    def build(self, input_shape):
        if isinstance(self.layer, keras.layers.MultiHeadAttention):
            _build_attention(self.layer)
        elif not self.layer.built:
            self.layer.build(input_shape)
            self.layer.built = True
        super().build(input_shape)


def _build_attention(layer):
    """Calls a MultiHeadAttention once on zeros of its recorded shapes, creating its kernels."""
    shapes = (layer._query_shape, layer._value_shape, layer._key_shape)
    projection = getattr(layer, "_query_dense", None)
    if projection is None or projection.built or None in shapes:
        return
    query, value, key = (tf.zeros([1] + [d or 1 for d in tf.TensorShape(s).as_list()[1:]])
                         for s in shapes)
    layer(query, value, key=key)


def load_model(path, custom_objects=None, compile=True):
    """Loads a `.keras` file saved from a `quantize` model (or tfmot's quantize_model).

    Use it instead of ``keras.models.load_model``, which cannot load tfmot's
    quantization layers (see this module's notes).

    Args:
      path: the `.keras` file.
      custom_objects: extra ``{name: class}`` your model needs. Defaults to None.
      compile: whether to restore the optimizer and loss. Defaults to True.

    Returns:
      The loaded Keras model.

    Example:
      >>> q.save("qat.keras")
      >>> q = load_model("qat.keras")
    """
    fixed = {"QuantizeLayer": QuantizeLayer, "QuantizeWrapperV2": QuantizeWrapperV2}
    with tfmot.quantization.keras.quantize_scope(), keras.utils.custom_object_scope(
            fixed, dict(custom_objects or {})):
        return keras.models.load_model(path, compile=compile)
