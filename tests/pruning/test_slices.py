"""Cutting channels out of weights: gathered cuts, absorbed constants, widths."""

import numpy as np

import tf_keras as keras
from tfopt.pruning import _slices

L = keras.layers


def _built(layer, shape):
    layer.build((None,) + shape)
    rng = np.random.default_rng(0)
    layer.set_weights([rng.normal(size=w.shape) for w in layer.weights])
    return layer


def test_cuts_of_several_groups_on_one_weight_are_removed_together():
    conv = _built(L.Conv2D(3, 1), (4, 4, 6))
    cuts = _slices.Cuts()
    cuts.add("conv", _slices.inputs(conv, np.array([0, 1])))  # one group's channels
    cuts.add("conv", _slices.inputs(conv, np.array([4, 1])))  # another's, behind a Concatenate
    removed = cuts.of("conv")
    np.testing.assert_array_equal(removed[("kernel", -2)], [0, 1, 4])
    kernel, bias = _slices.cut(conv, conv.get_weights(), removed)
    np.testing.assert_array_equal(kernel, conv.kernel.numpy()[:, :, [2, 3, 5], :])
    np.testing.assert_array_equal(bias, conv.bias.numpy())


def test_separable_consumer_loses_every_depthwise_output_of_a_channel():
    separable = _built(L.SeparableConv2D(4, 3, depth_multiplier=2), (6, 6, 3))
    (_, _, depthwise), (_, _, pointwise) = _slices.inputs(separable, np.array([1]))
    np.testing.assert_array_equal(depthwise, [1])
    np.testing.assert_array_equal(pointwise, [2, 3])  # channel 1 x multiplier 2


def test_constant_inputs_become_a_bias_where_there_was_none():
    conv = _built(L.Conv2D(2, 1, use_bias=False), (4, 4, 3))
    values = np.array([0.5, -2.0])
    increment = _slices.absorbed(conv, conv.get_weights(), np.array([0, 2]), values)
    np.testing.assert_allclose(increment, values @ conv.kernel.numpy()[0, 0, [0, 2], :],
                               rtol=1e-6)
    config = conv.get_config()
    weights = _slices.add_to_bias(conv, config, conv.get_weights(), increment)
    assert config["use_bias"] is True
    rebuilt = _built(L.Conv2D.from_config(config), (4, 4, 3))
    rebuilt.set_weights(weights)
    np.testing.assert_allclose(rebuilt.bias.numpy(), increment, rtol=1e-6)


def test_constant_inputs_add_to_an_existing_bias():
    dense = _built(L.Dense(2), (3,))
    increment = _slices.absorbed(dense, dense.get_weights(), np.array([1]), np.array([2.0]))
    _, bias = _slices.add_to_bias(dense, dense.get_config(), dense.get_weights(), increment)
    np.testing.assert_allclose(bias, dense.bias.numpy() + 2.0 * dense.kernel.numpy()[1],
                               rtol=1e-6)


def test_widths_fall_by_the_channels_removed():
    config = {"target_shape": (1, 1, 8)}
    _slices.set_width(L.Reshape((1, 1, 8)), config, 3)
    assert config["target_shape"] == (1, 1, 5)
    config = {"target_shape": (1, 1, -1)}
    _slices.set_width(L.Reshape((1, 1, -1)), config, 3)
    assert config["target_shape"] == (1, 1, -1)
    config = L.Dense(6).get_config()
    _slices.set_width(L.Dense(6), config, 2)
    assert config["units"] == 4
