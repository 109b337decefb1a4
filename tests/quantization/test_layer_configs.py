"""Layers tfmot has no QuantizeConfig for: quantized, converted to full int8, saved and loaded."""

import re

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from tf_keras.src.applications.convnext import LayerScale

from tfopt import export
from tfopt import quantization
from tfopt.quantization import _layer_configs
from tests.conftest import assert_config_round_trip, max_abs_diff
from tests.export.conftest import tensor_dtypes

L = keras.layers
QuantizeWrapper = tfmot.quantization.keras.QuantizeWrapperV2


def _images(block, shape=(8, 8, 3)):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape)
    x = L.Conv2D(4, 3, activation="relu", name="conv")(inputs)
    x = block(x)
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


def _squeeze_excite():
    def block(x):
        gate = L.Conv2D(4, 1, activation="sigmoid", name="gate")(L.GlobalAveragePooling2D(
            keepdims=True, name="squeeze")(x))
        return L.Multiply(name="target")([x, gate])
    return _images(block)


def _hard_swish():
    # MobileNetV3's hard-swish: recorded tf.* ops around a ReLU6.
    def block(x):
        gate = L.ReLU(6.0, name="relu6")(x + 3.0) * (1.0 / 6.0)
        return L.Multiply(name="target")([x, gate])
    return _images(block)


def _residual_tf_add():
    # ConvNeXt's block: LayerNormalization, LayerScale, and a recorded tf add.
    def block(x):
        y = L.LayerNormalization(epsilon=1e-6, name="norm")(x)
        y = LayerScale(1e-1, 4, name="target")(L.Dense(4, name="pointwise")(y))
        return x + y
    return _images(block)


def _sequence(block, shape=(16, 4), dtype="float32"):
    keras.utils.set_random_seed(0)
    inputs = keras.Input(shape, dtype=dtype)
    x = block(inputs)
    if x.shape.rank == 3:
        x = L.GlobalAveragePooling1D(name="pool")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


def _conv1d():
    return _sequence(lambda x: L.MaxPooling1D(2, name="pool1d")(
        L.Conv1D(6, 3, activation="relu", name="target")(x)))


def _attention():
    def block(x):
        x = L.Dense(8, name="projection")(x)
        attended = L.MultiHeadAttention(2, 4, name="target")(x, x)
        return L.LayerNormalization(name="norm")(L.Add(name="residual")([x, attended]))
    return _sequence(block)


def _embedding_lstm():
    return _sequence(lambda x: L.LSTM(6, name="lstm")(L.Embedding(20, 4, name="target")(x)),
                     shape=(16,), dtype="int32")


MODELS = {"multiply": _squeeze_excite, "tf_ops": _hard_swish, "layer_scale": _residual_tf_add,
          "conv1d": _conv1d, "attention": _attention, "embedding_lstm": _embedding_lstm}
# The config each model's "target" layer gets.
CONFIGS = {"multiply": "Default8BitOutputQuantizeConfig", "tf_ops": "Default8BitOutputQuantizeConfig",
           "layer_scale": "Default8BitOutputQuantizeConfig", "conv1d": "LayerQuantizeConfig",
           "attention": "MultiHeadAttentionQuantizeConfig",
           "embedding_lstm": "Default8BitOutputQuantizeConfig"}
CALIBRATED = {"multiply": [], "tf_ops": [], "layer_scale": ["norm"], "conv1d": [],
              "attention": ["norm", "target"], "embedding_lstm": ["lstm"]}


def _data(model, n=32):
    rng = np.random.default_rng(0)
    shape = (n,) + tuple(model.input.shape[1:])
    if model.input.dtype.is_integer:
        return rng.integers(0, 20, shape).astype("int32")
    return rng.uniform(-1, 1, shape).astype("float32")


def _quantize(model, **kwargs):
    # ConvNeXt's LayerScale is not registered with Keras; tfmot rebuilds the
    # model from its config, so its class must be in scope.
    with keras.utils.custom_object_scope({"LayerScale": LayerScale}):
        return quantization.quantize(model, **kwargs)


def _wrapped(model):
    return {layer.layer.name: layer for layer in model.layers if isinstance(layer, QuantizeWrapper)}


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_quantize_wraps_the_layer_tfmot_cannot_and_starts_close_to_float(kind):
    model = MODELS[kind]()
    x = _data(model)
    q = _quantize(model, representative_data=x)

    assert type(_wrapped(q)["target"].quantize_config).__name__ == CONFIGS[kind]
    assert _layer_configs.needs_calibration(q) == CALIBRATED[kind]
    reference = model.predict(x, verbose=0)
    assert max_abs_diff(q.predict(x, verbose=0), reference) < 0.1 * np.abs(reference).max()


@pytest.mark.parametrize("kind", ["multiply", "tf_ops", "layer_scale", "conv1d", "attention"])
def test_int8_export_with_representative_data_is_integer_only(kind, tmp_path):
    model = MODELS[kind]()
    x = _data(model)
    q = _quantize(model, representative_data=x)
    path = export.tflite(q, tmp_path / "m.tflite", mode="int8", representative_data=x)
    assert not [d for d in tensor_dtypes(path)[2] if d.kind == "f"]
    figures = export.verify_tflite(path, x, reference=q, latency_runs=0)
    assert figures["max_abs_diff"] < 0.1 * np.abs(q.predict(x, verbose=0)).max()


def test_recorded_tf_ops_become_keras_layers_with_the_same_names():
    q = quantization.quantize(_hard_swish(), representative_data=_data(_hard_swish()))
    # Keras numbers recorded ops per process (tf.math.multiply_1, ...): match the prefix.
    wrapped = {re.sub(r"_\d+$", "", name): layer for name, layer in _wrapped(q).items()}
    assert type(wrapped["tf.__operators__.add"].layer) is L.Rescaling
    assert wrapped["tf.__operators__.add"].layer.offset == 3.0
    assert type(wrapped["tf.math.multiply"].layer) is L.Rescaling


def test_integer_inputs_get_no_input_quantizer_and_lstm_stays_unwrapped():
    q = quantization.quantize(_embedding_lstm())
    assert not any(type(layer).__name__ == "QuantizeLayer" for layer in q.layers)
    assert type(q.get_layer("lstm")) is L.LSTM


def test_attention_config_round_trips():
    assert_config_round_trip(_layer_configs.MultiHeadAttentionQuantizeConfig())


@pytest.mark.parametrize("kind", ["multiply", "conv1d", "embedding_lstm", "attention"])
def test_keras_file_round_trip(kind, tmp_path):
    model = MODELS[kind]()
    x = _data(model, 8)
    q = quantization.quantize(model, representative_data=x)
    q.save(tmp_path / "q.keras")
    loaded = quantization.load_model(tmp_path / "q.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), q.predict(x, verbose=0), atol=1e-6)
    assert (type(_wrapped(loaded)["target"].quantize_config).__name__ == CONFIGS[kind])


def test_separable_conv2d_goes_through_tfmots_transform(tmp_path):
    # Xception's blocks: tfmot splits SeparableConv2D into DepthwiseConv2D + Conv2D.
    model = _images(lambda x: L.ReLU(name="relu")(L.SeparableConv2D(
        4, 3, padding="same", name="target")(x)))
    x = _data(model)
    q = quantization.quantize(model, representative_data=x)
    kinds = {type(layer.layer) for layer in _wrapped(q).values()}
    assert {L.DepthwiseConv2D, L.Conv2D} <= kinds and L.SeparableConv2D not in kinds
    path = export.tflite(q, tmp_path / "m.tflite", mode="int8")
    assert not [d for d in tensor_dtypes(path)[2] if d.kind == "f"]


def test_separable_conv1d_is_refused_with_the_reason():
    model = _sequence(lambda x: L.SeparableConv1D(4, 3, name="target")(x))
    with pytest.raises(ValueError, match="'target' \\(SeparableConv1D\\): tfmot's SeparableConv1D "
                                         "transform inserts Lambda layers"):
        quantization.quantize(model)


def _dense_transition():
    # DenseNet: a transition block's AveragePooling2D feeds the next block's Concatenate.
    def block(x):
        x = L.Conv2D(8, 1, name="transition")(L.ReLU()(L.BatchNormalization(name="bn_a")(x)))
        pool = L.AveragePooling2D(2, name="target")(x)
        grown = L.Conv2D(4, 3, padding="same", name="grow")(L.ReLU()(
            L.BatchNormalization(name="bn_b")(pool)))
        return L.ReLU()(L.BatchNormalization(name="bn_c")(L.Concatenate()([pool, grown])))
    return _images(block, shape=(10, 10, 3))


def test_average_pool_feeding_a_concatenate_keeps_one_scale_and_converts(tmp_path):
    model = _dense_transition()
    x = _data(model)
    q = quantization.quantize(model, representative_data=x)
    config = _wrapped(q)["target"].quantize_config
    assert type(config).__name__ == "NoOpQuantizeConfig"
    path = export.tflite(q, tmp_path / "m.tflite", mode="int8", representative_data=x)
    assert not [d for d in tensor_dtypes(path)[2] if d.kind == "f"]
    figures = export.verify_tflite(path, x, reference=q, latency_runs=0)
    assert figures["max_abs_diff"] < 0.1 * np.abs(q.predict(x, verbose=0)).max()


def _inline_swish():
    # EfficientNet's squeeze-excite: convolutions with swish and sigmoid inside them.
    def block(x):
        gate = L.GlobalAveragePooling2D(keepdims=True, name="squeeze")(x)
        gate = L.Conv2D(2, 1, activation="swish", name="target")(gate)
        gate = L.Conv2D(4, 1, activation="sigmoid", name="expand")(gate)
        return L.Multiply(name="excite")([x, gate])
    return _images(block)


def _activation(layer):
    # tfmot replaces a wrapped layer's activation by its QuantizeAwareActivation.
    activation = layer.get_config()["activation"]
    return activation["config"]["activation"] if isinstance(activation, dict) else activation


def test_inline_swish_moves_to_its_own_layer_and_converts(tmp_path):
    model = _inline_swish()
    x = _data(model)
    q = quantization.quantize(model, representative_data=x)
    wrapped = _wrapped(q)
    assert _activation(wrapped["target"].layer) == "linear"
    assert _activation(wrapped["target_activation"].layer) == "swish"
    assert "expand_activation" not in wrapped  # sigmoid stays inline, as tfmot has it
    reference = model.predict(x, verbose=0)  # the split layer kept its weights
    assert max_abs_diff(q.predict(x, verbose=0), reference) < 0.1 * np.abs(reference).max()
    path = export.tflite(q, tmp_path / "m.tflite", mode="int8", representative_data=x)
    assert not [d for d in tensor_dtypes(path)[2] if d.kind == "f"]
    figures = export.verify_tflite(path, x, reference=q, latency_runs=0)
    assert figures["max_abs_diff"] < 0.1 * np.abs(q.predict(x, verbose=0)).max()


def test_int8_export_without_data_names_the_layers_that_need_it(tmp_path):
    model = _attention()
    q = quantization.quantize(model, representative_data=_data(model))
    with pytest.raises(ValueError, match=r"needs representative_data for this quantization-aware "
                                         r"model: the tensors inside its layers \['norm', "
                                         r"'target'\]"):
        export.tflite(q, tmp_path / "m.tflite", mode="int8")
    assert not (tmp_path / "m.tflite").exists()
