"""Quantizers and configs: round trips, exact levels, straight-through gradients, get()."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfopt import quantization
from tfopt.quantization._fixed_point import fake_quant_reference
from tfopt.quantization._prune_preserving import PrunePreservingQuantizer
from tests.conftest import assert_config_round_trip

Q = quantization

OBJECTS = [
    Q.Binary(),
    Q.Binary(per_channel=False, clip=0.5),
    Q.Ternary(),
    Q.Ternary(threshold=0.5, per_channel=False, clip=2.0),
    Q.FixedPoint(4),
    Q.FixedPoint(12, per_channel=False, symmetric=False, narrow_range=False, ema_decay=0.999),
    Q.LayerQuantizeConfig(),
    Q.LayerQuantizeConfig(["kernel"], ["activation"], "ternary"),
    Q.LayerQuantizeConfig("kernel", (), Q.FixedPoint(3), Q.FixedPoint(6, per_channel=False,
                                                                     ema_decay=0.99)),
    PrunePreservingQuantizer(),
    PrunePreservingQuantizer(per_channel=False),
    Q.LayerQuantizeConfig(["kernel"], ["activation"], PrunePreservingQuantizer(False)),
    Q.LayerQuantizeConfig(quantize_output=True, activation_quantizer=(
        tfmot.quantization.keras.quantizers.MovingAverageQuantizer(8, False, False, False))),
]


@pytest.mark.parametrize("obj", OBJECTS, ids=repr)
def test_config_round_trip(obj):
    restored = assert_config_round_trip(obj)
    assert restored == obj


def _kernel(shape=(3, 3, 4, 6), seed=0):
    return np.random.default_rng(seed).normal(0.0, 0.3, size=shape).astype("float32")


def _per_channel(values):
    return [np.unique(values[..., c]) for c in range(values.shape[-1])]


@pytest.mark.parametrize("shape", [(3, 3, 4, 6), (20, 5)], ids=["conv", "dense"])
def test_binary_is_sign_times_mean_magnitude_per_channel(shape):
    w = _kernel(shape)
    q = Q.Binary()(tf.constant(w), True, {}).numpy()
    scale = np.abs(w).reshape(-1, shape[-1]).mean(axis=0)
    np.testing.assert_allclose(q, np.where(w >= 0, 1.0, -1.0) * scale, rtol=1e-6)
    for c, levels in enumerate(_per_channel(q)):
        np.testing.assert_allclose(levels, [-scale[c], scale[c]], rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 3, 4, 6), (20, 5)], ids=["conv", "dense"])
def test_ternary_follows_twn_per_channel(shape):
    w = _kernel(shape, seed=1)
    q = Q.Ternary()(tf.constant(w), True, {}).numpy()
    flat = w.reshape(-1, shape[-1])
    delta = 0.7 * np.abs(flat).mean(axis=0)
    kept = np.abs(flat) > delta
    scale = (np.abs(flat) * kept).sum(axis=0) / kept.sum(axis=0)
    expected = (np.sign(flat) * kept * scale).reshape(shape)
    np.testing.assert_allclose(q, expected, rtol=1e-6, atol=1e-7)
    for c, levels in enumerate(_per_channel(q)):
        assert len(levels) <= 3
        assert set(np.round(levels / scale[c], 5)) <= {-1.0, 0.0, 1.0}


@pytest.mark.parametrize("quantizer", [Q.Binary(), Q.Ternary()], ids=repr)
def test_straight_through_gradient_is_clipped_at_one(quantizer):
    w = tf.Variable([[-2.0], [-1.0], [-0.4], [0.0], [0.3], [1.0], [1.5]])
    upstream = tf.constant([[1.0], [2.0], [3.0], [4.0], [5.0], [6.0], [7.0]])
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(quantizer(w, True, {}) * upstream)
    gradient = tape.gradient(loss, w).numpy().ravel()
    np.testing.assert_array_equal(gradient, [0.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.0])


def _fixed_point_vars(quantizer, shape):
    layer = keras.layers.Layer()
    return quantizer.build(tf.TensorShape(shape), "kernel", layer)


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
@pytest.mark.parametrize("shape", [(3, 3, 4, 6), (20, 5)], ids=["conv", "dense"])
def test_fixed_point_levels_per_channel_and_inference_matches_training(bits, shape):
    quantizer = Q.FixedPoint(bits)
    variables = _fixed_point_vars(quantizer, shape)
    w = tf.constant(_kernel(shape, seed=bits))
    trained = quantizer(w, True, variables).numpy()
    for levels in _per_channel(trained):
        assert len(levels) <= 2 ** bits - 1  # narrow range: zero in the middle
    # Inference reads the tracked ranges and ends with the int8-storage fake quant,
    # which must leave the n-bit levels where they are.
    np.testing.assert_allclose(quantizer(w, False, variables).numpy(), trained, atol=1e-6)


def test_fixed_point_gradient_passes_inside_the_range():
    quantizer = Q.FixedPoint(4)
    w = tf.Variable(_kernel((6, 3)))
    variables = _fixed_point_vars(quantizer, (6, 3))
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(quantizer(w, True, variables))
    np.testing.assert_array_equal(tape.gradient(loss, w).numpy(), np.ones((6, 3)))


@pytest.mark.parametrize("quantizer", [Q.Binary(), Q.Ternary()], ids=repr)
def test_binary_and_ternary_inference_output_equals_training_output(quantizer):
    w = tf.constant(_kernel((3, 3, 2, 4), seed=3))
    np.testing.assert_allclose(quantizer(w, False, {}).numpy(), quantizer(w, True, {}).numpy(),
                               rtol=1e-6)


@pytest.mark.parametrize("bits,narrow", [(2, True), (4, True), (4, False), (8, True), (8, False)])
def test_fake_quant_reference_matches_tensorflow(bits, narrow):
    rng = np.random.default_rng(bits)
    x = rng.normal(0, 2, size=(50, 4)).astype("float32")
    low = -rng.uniform(0.5, 3, size=4).astype("float32")
    high = rng.uniform(0.5, 3, size=4).astype("float32")
    expected = tf.quantization.fake_quant_with_min_max_vars_per_channel(
        x, low, high, num_bits=bits, narrow_range=narrow)
    np.testing.assert_allclose(fake_quant_reference(x, low, high, bits, narrow), expected,
                               atol=1e-5)


@pytest.mark.parametrize("bits", [1, 17, 0, 4.0, True, "8"])
def test_fixed_point_validates_bits(bits):
    with pytest.raises(ValueError, match=r"integer from 2 to 16, got .*scheme='binary'"):
        Q.FixedPoint(bits)


@pytest.mark.parametrize("kwargs,match", [
    ({"ema_decay": 1.0}, r"ema_decay=...\) must be None"),
    ({"per_channel": "yes"}, r"per_channel=...\) must be True or False"),
])
def test_fixed_point_validates_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Q.FixedPoint(4, **kwargs)


def test_per_channel_fixed_point_explains_activations():
    with pytest.raises(ValueError, match="per_channel=False, symmetric=False"):
        Q.FixedPoint(4).build(None, "post_activation", keras.layers.Dense(2))


@pytest.mark.parametrize("name,expected", [
    ("binary", Q.Binary()), ("ste_sign", Q.Binary()), ("ternary", Q.Ternary()),
    ("ste_ternary", Q.Ternary()), ("fixed_point", Q.FixedPoint(8)), ("STE_SIGN", Q.Binary()),
])
def test_get_resolves_names(name, expected):
    assert Q.get(name) == expected


def test_get_passes_instances_and_restores_configs():
    fixed = Q.FixedPoint(5, per_channel=False)
    assert Q.get(fixed) is fixed
    assert Q.get(keras.saving.serialize_keras_object(fixed)) == fixed
    tfmot_quantizer = tfmot.quantization.keras.quantizers.LastValueQuantizer(8, True, True, True)
    assert Q.get(tfmot_quantizer) is tfmot_quantizer


@pytest.mark.parametrize("identifier", ["sign", 3, None])
def test_get_rejects_unknown_identifiers(identifier):
    with pytest.raises(ValueError, match=r"Unknown quantizer .*'binary', 'fixed_point', "
                                         r"'ste_sign', 'ste_ternary', 'ternary'"):
        Q.get(identifier)


def test_layer_quantize_config_quantizes_what_it_names():
    dense = keras.layers.Dense(3, activation="relu")
    dense.build((None, 4))
    config = Q.LayerQuantizeConfig(["kernel"], ["activation"], "binary", quantize_output=True)
    (weight, weight_quantizer), = config.get_weights_and_quantizers(dense)
    assert weight is dense.kernel and weight_quantizer == Q.Binary()
    assert len(config.get_activations_and_quantizers(dense)) == 1
    assert len(config.get_output_quantizers(dense)) == 1
    assert config.without_activations() == Q.LayerQuantizeConfig(["kernel"], [], "binary")
