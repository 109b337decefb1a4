"""quantize(): model shapes, schemes, layer handling and the errors it explains."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfopt import export
from tfopt import quantization
from tests.conftest import compile_model, max_abs_diff, small_cnn, subclassed_model

L = keras.layers
QuantizeWrapper = tfmot.quantization.keras.QuantizeWrapperV2


def _functional(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    a = L.Conv2D(6, 3, activation="relu", name="branch_a")(inputs)
    b = L.Conv2D(6, 3, activation="relu", name="branch_b")(inputs)
    h = L.Flatten(name="flatten")(L.Concatenate(name="concat")([a, b]))
    return keras.Model(inputs, L.Dense(10, name="logits")(L.Dense(16, activation="relu",
                                                                  name="hidden")(h)))


def _nested(seed=0):
    keras.utils.set_random_seed(seed)
    features = keras.Sequential([keras.Input((8, 8, 1)),
                                 L.Conv2D(8, 3, activation="relu", name="inner_conv"),
                                 L.Flatten(name="inner_flatten")], name="features")
    inputs = keras.Input((8, 8, 1))
    return keras.Model(inputs, L.Dense(10, name="head")(features(inputs)), name="outer")


MODELS = {"sequential": small_cnn, "functional": _functional, "nested": _nested}
WEIGHTED = {"sequential": {"conv_a", "conv_b", "hidden", "logits"},
            "functional": {"branch_a", "branch_b", "hidden", "logits"},
            "nested": {"inner_conv", "head"}}


def _wrapped(model):
    return {layer.layer.name: layer for layer in model.layers if isinstance(layer, QuantizeWrapper)}


def _fit(model, x, y, steps=3, batch_size=32):
    compile_model(model)
    return model.fit(x[:steps * batch_size], y[:steps * batch_size], batch_size=batch_size,
                     epochs=1, verbose=0)


@pytest.mark.parametrize("kind", sorted(MODELS))
def test_int8_qat_starts_close_to_float_and_trains(kind, digits):
    x, y = digits
    model = MODELS[kind]()
    before = [w.copy() for w in model.get_weights()]
    q = quantization.quantize(model, representative_data=x[:256])
    assert WEIGHTED[kind] <= set(_wrapped(q))
    reference = model.predict(x[:256], verbose=0)
    assert max_abs_diff(q.predict(x[:256], verbose=0), reference) < 0.05 * np.abs(reference).max()
    history = _fit(q, x, y)
    assert np.isfinite(history.history["loss"][0])
    for a, b in zip(before, model.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_without_representative_data_tfmot_starting_ranges_apply(digits):
    x, _ = digits
    q = quantization.quantize(small_cnn())
    # tfmot's input range starts at [0, 0]: every input is quantized to zero.
    outputs = q.predict(x[:8], verbose=0)
    np.testing.assert_allclose(outputs, np.repeat(outputs[:1], 8, axis=0), atol=1e-6)


def test_nested_model_is_inlined_with_layer_names_and_weights(digits):
    x, _ = digits
    model = _nested()
    q = quantization.quantize(model, representative_data=x[:64])
    assert not any(isinstance(layer, keras.Model) for layer in q.layers)
    inner = model.get_layer("features").get_layer("inner_conv")
    np.testing.assert_array_equal(_wrapped(q)["inner_conv"].layer.bias.numpy(),
                                  inner.bias.numpy())


def _preprocessed(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)), L.Rescaling(16.0, offset=-1.0, name="rescale"),
        L.Normalization(mean=7.0, variance=20.0, name="norm"),
        L.Conv2D(8, 3, activation="relu", name="conv"),
        L.BatchNormalization(name="lone_bn"),  # after a ReLU: nothing can absorb it
        L.Conv2D(8, 3, name="linear_conv"), L.BatchNormalization(name="folded_bn"), L.ReLU(),
        L.Flatten(), L.Dense(10, name="logits")])


def test_affine_layers_quantize_and_convert_to_full_int8(digits, tmp_path):
    x, _ = digits
    model = _preprocessed()
    rng = np.random.default_rng(0)
    for name in ("lone_bn", "folded_bn"):  # statistics as after training
        model.get_layer(name).set_weights([rng.uniform(0.5, 2.0, 8), rng.normal(0, 0.5, 8),
                                           rng.normal(0, 0.5, 8), rng.uniform(0.5, 2.0, 8)])
    q = quantization.quantize(model, representative_data=x[:256])
    wrapped = _wrapped(q)
    for name in ("rescale", "norm", "lone_bn"):
        assert isinstance(wrapped[name].layer, L.Rescaling)
        assert isinstance(wrapped[f"{name}_offset"].layer, L.Rescaling)
    assert isinstance(wrapped["folded_bn"].layer, L.BatchNormalization)
    reference = model.predict(x[:256], verbose=0)
    assert max_abs_diff(q.predict(x[:256], verbose=0), reference) < 0.05 * np.abs(reference).max()
    # export refuses an int8 file with any float tensor left.
    export.tflite(q, str(tmp_path / "pre.tflite"), mode="int8")


def _attention_model():
    class Scale(L.Layer):
        def build(self, input_shape):
            self.w = self.add_weight(name="w", shape=(input_shape[-1],), initializer="ones")

        def call(self, x):
            return x * self.w

    inputs = keras.Input((4, 8))
    h = L.MultiHeadAttention(2, 4, name="mha")(inputs, inputs)
    h = Scale(name="scale")(h)
    return keras.Model(inputs, L.Dense(3, name="out")(L.Flatten(name="flat")(h)))


def test_unquantizable_layers_are_reported_together():
    inputs = keras.Input((4, 8))
    h = L.Lambda(lambda x: 2.0 * x, name="double")(L.GRU(3, name="gru")(inputs))
    with pytest.raises(ValueError) as error:
        quantization.quantize(keras.Model(inputs, h))
    message = str(error.value)
    assert "cannot quantize 2 layer(s)" in message
    assert "'double' (Lambda): a Lambda layer runs Python code" in message
    assert "'gru' (GRU): TFLite has no fused int8 GRU kernel" in message
    assert "layers=" in message and "quantize_configs=" in message


def test_a_second_positional_input_is_passed_on_by_name():
    # MultiHeadAttention()(q, v): the clone passes v as value=v, which the wrapper forwards.
    q = quantization.quantize(_attention_model(), layers=lambda layer: layer.name != "scale")
    assert "mha" in _wrapped(q)


def test_the_remedies_of_the_error_work():
    model = _attention_model()
    left_float = quantization.quantize(model, layers=lambda l: l.name not in ("mha", "scale"))
    assert set(_wrapped(left_float)) == {"flat", "out"}
    configured = quantization.quantize(
        model, layers=lambda l: l.name != "mha",
        quantize_configs={"scale": quantization.LayerQuantizeConfig(["w"], quantize_output=True)})
    assert {"scale", "flat", "out"} <= set(_wrapped(configured))
    assert isinstance(_weight_quantizer(_wrapped(configured)["scale"]), quantization.FixedPoint)


def test_unsupported_activation_is_reported():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="elu", name="d")])
    with pytest.raises(ValueError, match="'d' \\(Dense\\): activation 'elu' cannot be quantized"):
        quantization.quantize(model)


def _weight_quantizer(wrapper):
    (_, quantizer, _), = wrapper._weight_vars
    return quantizer


@pytest.mark.parametrize("int8_layers,int8_expected", [
    ("first_last", {"conv_a", "logits"}),
    (None, set()),
    (["hidden"], {"hidden"}),
])
def test_low_bit_schemes_keep_the_chosen_layers_int8(int8_layers, int8_expected):
    q = quantization.quantize(small_cnn(), "binary", int8_layers=int8_layers)
    for name, wrapper in _wrapped(q).items():
        if name in {"conv_a", "conv_b", "hidden", "logits"}:
            binary = isinstance(_weight_quantizer(wrapper), quantization.Binary)
            assert binary == (name not in int8_expected), name


@pytest.mark.parametrize("scheme,quantizer", [
    ("ternary", quantization.Ternary()),
    (quantization.FixedPoint(4), quantization.FixedPoint(4)),
    (quantization.Binary(clip=2.0), quantization.Binary(clip=2.0)),
])
def test_scheme_sets_the_weight_quantizer(scheme, quantizer):
    q = quantization.quantize(small_cnn(), scheme)
    assert _weight_quantizer(_wrapped(q)["conv_b"]) == quantizer


def test_conv_followed_by_relu_layer_keeps_its_weight_quantizer():
    model = keras.Sequential([keras.Input((6, 6, 1)), L.Conv2D(4, 3, name="conv"),
                              L.ReLU(name="relu"), L.Flatten(), L.Dense(2, name="out")])
    # tfmot's own transform leaves this convolution with no weight quantization.
    assert not tfmot.quantization.keras.quantize_model(model).get_layer("quant_conv")._weight_vars
    q = quantization.quantize(model, "binary", int8_layers=None)
    assert isinstance(_weight_quantizer(_wrapped(q)["conv"]), quantization.Binary)
    assert not _wrapped(q)["conv"].quantize_config.get_activations_and_quantizers(
        _wrapped(q)["conv"].layer)


def test_fixed_point_quantizes_activations(digits):
    x, y = digits
    activations = quantization.FixedPoint(3, per_channel=False, symmetric=False,
                                          narrow_range=False, ema_decay=0.999)
    config = quantization.LayerQuantizeConfig(["kernel"], ["activation"],
                                              quantization.FixedPoint(4), activations)
    q = quantization.quantize(small_cnn(), quantize_configs={"hidden": config},
                              representative_data=x[:256])
    hidden = keras.Model(q.inputs, q.get_layer("quant_hidden").output)
    outputs = hidden.predict(x[:256], verbose=0)
    assert 4 <= len(np.unique(outputs)) <= 2 ** 3  # calibrated: the levels are in use
    _fit(q, x, y, steps=2)
    assert len(np.unique(hidden.predict(x[:256], verbose=0))) <= 2 ** 3


def test_user_quantize_config_is_used():
    config = quantization.LayerQuantizeConfig(["kernel"], ["activation"],
                                              quantization.FixedPoint(3))
    q = quantization.quantize(small_cnn(), quantize_configs={"hidden": config})
    assert _wrapped(q)["hidden"].quantize_config == config


@pytest.mark.parametrize("kwargs,match", [
    ({"scheme": "int4"}, r"Unknown quantization scheme 'int4'. Use one of \['int8', "
                         r"'int8_prune_preserving', 'binary', 'ternary'\]"),
    ({"scheme": 8}, "Unknown quantization scheme 8"),
    ({"layers": ["nope"]}, r"No layer named \['nope'\]"),
    ({"int8_layers": ["nope"]}, r"int8_layers names layers \['nope'\]"),
    ({"int8_layers": "first"}, "int8_layers must be 'first_last', None or a list"),
    ({"int8_layers": 5}, "int8_layers must be 'first_last', None or a list of layer names, got 5"),
    ({"quantize_configs": {"nope": None}}, r"quantize_configs names layers \['nope'\]"),
    ({"quantize_configs": {"hidden": "binary"}}, "must be a tfmot.quantization.keras.Quant"),
    ({"layers": lambda layer: False}, "found no layer to quantize"),
])
def test_bad_requests_are_explained(kwargs, match):
    with pytest.raises(ValueError, match=match):
        quantization.quantize(small_cnn(), **kwargs)


@pytest.mark.parametrize("configs", ["hidden", [("hidden", None)]])
def test_quantize_configs_must_be_a_dict(configs):
    with pytest.raises(TypeError, match=r"quantize_configs must be a dict \{layer_name: "
                                        r"QuantizeConfig\}, got (str|list)"):
        quantization.quantize(small_cnn(), quantize_configs=configs)


def test_keras3_model_is_rejected_with_a_hint():
    import keras as keras3
    model = keras3.Sequential([keras3.Input((3,)), keras3.layers.Dense(2)])
    with pytest.raises(ValueError, match="Keras 3 object.*import tf_keras as keras"):
        quantization.quantize(model)


def test_subclassed_model_is_rejected():
    net = subclassed_model()
    with pytest.raises(ValueError, match="subclassed model.*Functional API"):
        quantization.quantize(net)
