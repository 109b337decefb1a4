"""Every Keras 3 QAT layer type: converts to a fully-int8 TFLite file and round-trips.

Three small models hold every layer type `quantize` claims between them (one
conversion each keeps the suite fast); `CLAIMED` must list every Quant* twin,
so a new layer class cannot skip this test.
"""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tfopt import export
from tfopt.keras3 import quantization
from tfopt.keras3 import _clone
from tfopt.keras3.quantization import _activations
from tfopt.keras3.quantization import _plan
from tests.keras3.conftest import assert_keras3_config_round_trip
from tests.keras3.conftest import assert_keras3_file_round_trip

L = keras.layers


def _image_model():
    i = keras.Input((8, 8, 3))
    scaled = L.Rescaling(0.5, offset=-0.25)(i)
    a = L.Activation("relu")(L.BatchNormalization()(L.Conv2D(4, 3, padding="same")(scaled)))
    b = L.SeparableConv2D(4, 3, padding="same")(i)
    c = L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(i))
    c = L.Conv2D(4, 1, activation="relu")(c)
    c = L.BatchNormalization()(c)  # after a ReLU: not foldable, an int8 multiply and add
    x = L.Add()([a, b])
    x = L.Subtract()([x, c])
    pooled = L.Add()([L.GlobalAveragePooling2D()(x), L.GlobalMaxPooling2D()(x)])
    gate = L.Dense(4, activation="sigmoid")(pooled)
    x = L.Multiply()([x, L.Reshape((1, 1, 4))(gate)])  # squeeze-excite
    x = L.Average()([x, a])
    x = L.Concatenate()([x, c])
    x = L.AveragePooling2D(2)(x)
    x = L.Conv2DTranspose(4, 3, strides=2, padding="same")(x)
    x = L.UpSampling2D()(L.MaxPooling2D(4)(x))
    x = L.Cropping2D(1)(L.ZeroPadding2D(1)(L.Dropout(0.2)(x)))
    return keras.Model(i, L.Dense(4)(L.Flatten()(x)))


def _sequence_model():
    return keras.Sequential([
        keras.Input((12, 3)),
        L.ZeroPadding1D(2),
        L.Conv1D(4, 3),
        L.DepthwiseConv1D(3, padding="same"),
        L.SeparableConv1D(4, 3, padding="same", activation="relu"),
        L.Conv1DTranspose(4, 3, padding="same"),
        L.Cropping1D(1),
        L.AveragePooling1D(2),
        L.EinsumDense("abc,cd->abd", (6, 5), bias_axes="d"),
        L.MaxPooling1D(3),  # two steps for the recurrent layers
        # Unrolled: no loop, int8 steps, each tensor with a range.
        L.GRU(4, unroll=True, return_sequences=True),
        L.LSTM(4, unroll=True),
        L.Dense(4),
    ])


def _attention_model():
    i = keras.Input((5, 8))
    x = L.Add()([i, L.MultiHeadAttention(2, 4)(i, i)])
    x = L.LayerNormalization()(x)
    x = L.Dense(5)(L.GlobalAveragePooling1D()(x))
    x = L.BatchNormalization()(x)  # folded into the Dense
    x = L.ReLU()(x)
    # A nested model; tanh is a TFLite op of its own, with a range before it.
    block = keras.Sequential([keras.Input((5,)), L.Dense(8, activation="tanh")], name="block")
    return keras.Model(i, L.Softmax()(L.Dense(4)(block(x))))


MODELS = {"image": _image_model, "sequence": _sequence_model, "attention": _attention_model}

CLAIMED = {
    "image": {"Conv2D", "SeparableConv2D", "DepthwiseConv2D", "BatchNormalization", "Add",
              "Subtract", "Multiply", "Average", "Concatenate", "AveragePooling2D",
              "GlobalAveragePooling2D", "Conv2DTranspose", "Activation", "Dense", "Rescaling"},
    "sequence": {"Conv1D", "DepthwiseConv1D", "SeparableConv1D", "Conv1DTranspose",
                 "AveragePooling1D", "EinsumDense", "GRU", "LSTM", "Dense"},
    "attention": {"MultiHeadAttention", "Add", "LayerNormalization", "GlobalAveragePooling1D",
                  "Dense", "BatchNormalization", "ReLU", "Softmax"},
}


def test_the_coverage_models_claim_every_quant_layer():
    covered = set().union(*CLAIMED.values())
    assert covered == (set(_plan.WEIGHTED_CLASSES) | set(_activations.OUTPUT_CLASSES)
                       | set(_plan.OTHER_CLASSES))


@pytest.fixture(scope="module", params=sorted(MODELS))
def converted(request, tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = MODELS[request.param]()
    rng = np.random.default_rng(0)
    for layer in model.layers:  # statistics a fold must get right
        if isinstance(layer, L.BatchNormalization):
            units = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.3, units).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 2.0, units).astype("float32"))
    x = rng.normal(size=(64, *model.inputs[0].shape[1:])).astype("float32")
    quantized = quantization.quantize(model, "int8", representative_data=x)
    path = export.tflite(quantized, str(tmp_path_factory.mktemp("qat") / "m.tflite"),
                         mode="int8")
    return request.param, model, quantized, x, path


def test_each_layer_type_converts_to_a_fully_int8_file(converted):
    name, model, quantized, x, path = converted
    layers = list(_clone.all_layers(quantized))  # nested models entered
    twins = {_keras_base(layer) for layer in layers if type(layer).__module__.startswith(
        "tfopt.keras3.quantization")}
    folded = [layer.name for layer in layers
              if isinstance(layer, _activations.FoldedBatchNormalization)]
    assert not [layer.name for layer in layers if type(layer).__module__.startswith(
        "keras.") and type(layer).__name__ not in _activations.PASS_THROUGH | {
        "Functional", "Sequential"}]
    assert CLAIMED[name] - {"BatchNormalization"} <= twins
    assert folded or name == "sequence"
    interpreter = Interpreter(model_path=path)
    dtypes = {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()}
    assert dtypes <= {"int8", "int32"}, dtypes
    assert [d["dtype"] for d in interpreter.get_input_details()] == [np.int8]
    assert [d["dtype"] for d in interpreter.get_output_details()] == [np.int8]
    ops = {op["op_name"] for op in interpreter._get_ops_details()}
    assert not any(op.startswith("Flex") or op == "CUSTOM" for op in ops), ops
    figures = export.verify_tflite(path, x, None, reference=quantized, latency_runs=0)
    assert figures["agreement"] >= 0.95, figures
    # The calibrated QAT model starts near the float model it came from.
    assert np.mean(np.argmax(quantized.predict(x, verbose=0), -1) ==
                   np.argmax(model.predict(x, verbose=0), -1)) >= 0.9


def _keras_base(layer):
    """The Keras class a tfopt layer quantizes (QuantDense -> "Dense")."""
    return next(c.__name__ for c in type(layer).__mro__ if c.__module__.startswith("keras."))


def test_every_layer_and_the_model_round_trip_through_keras(converted, tmp_path):
    _, _, quantized, x, _ = converted
    for layer in quantized.layers:
        if layer.__module__.startswith("tfopt."):
            assert_keras3_config_round_trip(layer)
    assert_keras3_file_round_trip(quantized, x[:8], str(tmp_path / "q.keras"))


@pytest.mark.parametrize("quantizer", [
    quantization.Int8(), quantization.Int8(per_channel=False), quantization.Binary(),
    quantization.Ternary(threshold=0.5), quantization.FixedPoint(4, per_channel=False)],
    ids=repr)
def test_quantizers_round_trip_and_resolve_by_name(quantizer):
    assert assert_keras3_config_round_trip(quantizer) == quantizer
    assert quantization.get(keras.saving.serialize_keras_object(quantizer)) == quantizer
    assert quantization.get("ste_sign") == quantization.Binary()
    with pytest.raises(ValueError, match="Unknown quantizer 'sign'.*binary"):
        quantization.get("sign")
