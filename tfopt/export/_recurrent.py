"""Recurrent models (LSTM, GRU, SimpleRNN, Bidirectional): the conversion that works.

Converted like any Keras model, with a free batch dimension, an RNN fails in
the converter in every mode: "'tf.TensorListReserve' op requires element_shape
to be static". With the batch fixed, the converter turns an LSTM into TFLite's
fused UNIDIRECTIONAL_SEQUENCE_LSTM op (which has int8 kernels) and any other
RNN into a WHILE loop of builtin ops. So a recurrent model is converted from a
concrete function whose batch is fixed (to the model's own batch size, else 1),
and calibrated one batch of that size at a time. The file then takes that many
examples per call; `verify_tflite` runs examples one by one anyway.

Measured with TF 2.21: float32, dynamic and float16 work for LSTM, GRU and
SimpleRNN (and Bidirectional ones); int8 works for LSTM; int8 and int16x8 of a
WHILE loop (GRU, SimpleRNN, an RNN of custom cells) crash the converter with a
segmentation fault, and int16x8 has no LSTM kernel. `validate_mode` refuses
those before converting.
"""

import tensorflow as tf
import tf_keras as keras

_INTEGER_MODES = ("int8", "int16x8")


def recurrent_layers(model):
    """The RNN layers of `model` (inside Bidirectional and nested models too)."""
    return [layer for layer in model.submodules if isinstance(layer, keras.layers.RNN)]


def validate_mode(model, mode):
    """Raises ValueError, before converting, for a mode the converter cannot do."""
    if mode not in _INTEGER_MODES:
        return
    layers = recurrent_layers(model)
    if mode == "int16x8" and layers:
        names = [f"{layer.name!r} ({type(layer).__name__})" for layer in layers]
        raise ValueError(
            f"mode='int16x8' cannot convert the recurrent layers {', '.join(names)}: TFLite has "
            "no 16x8 kernel for LSTM, and the converter crashes quantizing other RNNs. Use "
            "mode='int8' (LSTM only), 'dynamic' or 'float16'.")
    looped = [layer for layer in layers if type(layer) is not keras.layers.LSTM]
    if looped:
        names = [f"{layer.name!r} ({type(layer).__name__})" for layer in looped]
        raise ValueError(
            f"mode={mode!r} cannot convert {', '.join(names)}: TFLite runs only LSTM as one "
            "fused int8 op; other recurrent layers become a loop that the TFLite converter "
            "crashes on (a segmentation fault in TF 2.21) when quantizing it. Use "
            "mode='dynamic' or 'float16' for this model, or replace the layer with an LSTM.")


def fixed_batch_converter(model):
    """``(converter, batch)``: a converter for `model` with its batch dimension fixed."""
    specs = [spec for spec in model.save_spec(dynamic_batch=False)[0]]
    batch = next((spec.shape[0] for spec in tf.nest.flatten(specs) if spec.shape[0]), 1)
    fixed = tf.nest.map_structure(
        lambda spec: tf.TensorSpec([batch, *spec.shape[1:]], spec.dtype, name=spec.name), specs)
    function = tf.function(lambda *inputs: model(*inputs, training=False))
    concrete = function.get_concrete_function(*fixed)
    return tf.lite.TFLiteConverter.from_concrete_functions([concrete], model), batch
