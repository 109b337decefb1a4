"""shrink(): pruned units are cut out and predictions do not change."""

import numpy as np
import pytest

import tf_keras as keras
from tfopt import pruning
from tfopt import _clone
from tests.conftest import small_cnn

L = keras.layers


def _dense_dense():
    return keras.Sequential([keras.Input((6,)), L.Dense(8, activation="relu"),
                             L.Dense(8, activation="relu"), L.Dense(3)])


def _conv_conv():
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu"),
                             L.Conv2D(6, 3, activation="relu"), L.GlobalAveragePooling2D(),
                             L.Dense(3)])


def _conv_bn_conv():
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3), L.BatchNormalization(),
                             L.ReLU(), L.Conv2D(6, 3, activation="relu"),
                             L.GlobalAveragePooling2D(), L.Dense(3)])


def _conv_pool_flatten_dense():
    return keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, activation="relu"),
                             L.MaxPooling2D(2), L.Flatten(), L.Dense(8, activation="relu"),
                             L.Dense(3)])


def _conv_depthwise_conv():
    return keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(8, 1, activation="relu"),
                             L.DepthwiseConv2D(3), L.BatchNormalization(),
                             L.Conv2D(6, 1, activation="relu"), L.GlobalAveragePooling2D(),
                             L.Dense(3)])


def _conv_separable():
    return keras.Sequential([keras.Input((8, 8, 2)), L.Conv2D(8, 1, activation="relu"),
                             L.SeparableConv2D(6, 3, depth_multiplier=2, activation="relu"),
                             L.GlobalAveragePooling2D(), L.Dense(3)])


def _conv_transposed():
    return keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(8, 1, activation="relu"),
                             L.Conv2DTranspose(4, 2), L.GlobalAveragePooling2D(), L.Dense(3)])


def _embedding_lstm():
    return keras.Sequential([keras.Input((5,), dtype="int32"), L.Embedding(12, 8),
                             L.LSTM(6), L.Dense(3)])


def _residual():
    inputs = keras.Input((8, 8, 2))
    stem = L.Conv2D(8, 3, padding="same", name="stem")(inputs)
    branch = L.Conv2D(8, 3, padding="same", activation="relu", name="branch_in")(stem)
    branch = L.Conv2D(8, 3, padding="same", name="branch_out")(branch)
    x = L.Add()([stem, branch])
    x = L.Conv2D(6, 1, activation="relu", name="head")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3)(x))


def _residual_stage():
    """Identity blocks with BatchNormalization: stem, expand1, expand2 meet at two Adds."""
    inputs = keras.Input((8, 8, 2))
    x = L.ReLU()(L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name="stem")(inputs)))
    for i in (1, 2):
        y = L.Conv2D(6, 1, activation="relu", name=f"reduce{i}")(x)
        y = L.BatchNormalization()(L.Conv2D(8, 3, padding="same", name=f"expand{i}")(y))
        x = L.ReLU()(L.Add()([x, y]))
    x = L.MaxPooling2D(2)(x)
    return keras.Model(inputs, L.Dense(3)(L.Flatten()(x)))


def _tf_op_residual():
    """ConvNeXt writes its residual Add as `x + y` (a TF op on Keras tensors)."""
    inputs = keras.Input((6, 8))
    x = L.Dense(8, name="stem")(inputs)
    y = L.Dense(12, activation="gelu", name="hidden")(x)
    x = x + L.Dense(8, name="back")(y)
    return keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling1D()(x)))


def _squeeze_excite():
    """EfficientNet's block: swish, depthwise, a reshaped gate multiplied in, projection."""
    inputs = keras.Input((8, 8, 2))
    x = L.Activation("swish")(L.BatchNormalization()(L.Conv2D(8, 1, name="expand")(inputs)))
    x = L.BatchNormalization()(L.DepthwiseConv2D(3, padding="same")(x))
    gate = L.Reshape((1, 1, 8))(L.GlobalAveragePooling2D()(x))
    gate = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(
        L.Conv2D(3, 1, activation="swish")(gate))
    x = L.Multiply()([x, gate])
    x = L.Conv2D(6, 1, name="project")(x)
    return keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(x)))


def _hard_swish():
    """MobileNetV3's x * relu6(x + 3) / 6, written with TF ops."""
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(8, 1, name="expand")(inputs)
    x = L.Multiply()([x, L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)])
    return keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(L.Conv2D(6, 1)(x))))


def _constant_absorbed():
    """Removed units leave a constant (ReLU(threshold) of 0) that the Dense takes into its bias."""
    return keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(8, 1, name="constant"),
                             L.ReLU(negative_slope=0.1, threshold=1.0),
                             L.GlobalAveragePooling2D(), L.Dense(3)])


def _dense_block():
    """DenseNet: new channels concatenated after the old; BatchNormalization of all of them."""
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(6, 3, padding="same", name="stem")(inputs)
    for i in (1, 2):
        y = L.ReLU()(L.BatchNormalization()(x))
        y = L.Conv2D(8, 1, use_bias=False, name=f"bottleneck{i}")(y)
        y = L.Conv2D(4, 3, padding="same", use_bias=False, name=f"grow{i}")(L.ReLU()(y))
        x = L.Concatenate()([x, y])
    x = L.ReLU()(L.BatchNormalization()(x))
    x = L.AveragePooling2D(2)(L.Conv2D(6, 1, use_bias=False, name="transition")(x))
    return keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(x)))


def _concatenated_twice():
    """NASNet's cells concatenate several branches derived from the same channels."""
    inputs = keras.Input((8, 8, 2))
    x = L.Conv2D(6, 1, name="a")(inputs)
    pooled = L.AveragePooling2D(3, strides=1, padding="same")(x)
    x = L.Concatenate()([x, L.Add()([pooled, x]), L.Conv2D(4, 1, name="b")(inputs)])
    x = L.ReLU()(L.BatchNormalization()(x))
    return keras.Model(inputs, L.Dense(3)(L.GlobalAveragePooling2D()(L.Conv2D(5, 1)(x))))


def _nested():
    inner = keras.Sequential([keras.Input((6, 6, 8)), L.Conv2D(8, 3), L.BatchNormalization(),
                              L.ReLU(), L.Conv2D(6, 1, activation="relu"),
                              L.GlobalAveragePooling2D(), L.Dense(8, activation="relu")],
                             name="inner")
    inputs = keras.Input((8, 8, 1))
    x = L.Conv2D(8, 3, activation="relu")(inputs)
    return keras.Model(inputs, L.Dense(3)(inner(x)))


CASES = {
    "dense_dense": _dense_dense,
    "conv_conv": _conv_conv,
    "conv_bn_conv": _conv_bn_conv,
    "conv_pool_flatten_dense": _conv_pool_flatten_dense,
    "conv_depthwise_conv": _conv_depthwise_conv,
    "conv_separable": _conv_separable,
    "conv_transposed": _conv_transposed,
    "embedding_lstm": _embedding_lstm,
    "residual": _residual,
    "residual_stage": _residual_stage,
    "tf_op_residual": _tf_op_residual,
    "squeeze_excite": _squeeze_excite,
    "hard_swish": _hard_swish,
    "constant_absorbed": _constant_absorbed,
    "dense_block": _dense_block,
    "concatenated_twice": _concatenated_twice,
    "nested": _nested,
}


def _data(model, count=16):
    rng = np.random.default_rng(0)
    shape = (count,) + tuple(model.input_shape[1:])
    if model.inputs[0].dtype.is_integer:
        return rng.integers(0, 12, size=shape).astype("int32")
    return rng.normal(size=shape).astype("float32")


def _randomize(model):
    """Random weights everywhere, so biases and BN statistics are all non-trivial."""
    rng = np.random.default_rng(1)
    for layer in _clone.all_layers(model):
        if _clone.is_graph_model(layer):
            continue
        layer.set_weights([
            rng.uniform(0.5, 1.5, w.shape) if "moving_variance" in w.name
            else rng.normal(scale=0.5, size=w.shape) for w in layer.weights])
    return model


def _pruned(build, sparsity=0.5):
    model = _randomize(build())
    pruned = pruning.prune(model, pruning.OneShot(sparsity, step=0), structure="channels")
    pruned.compile("adam", "mse")
    x = _data(pruned)
    y = np.random.default_rng(2).normal(size=(len(x), 3)).astype("float32")
    pruned.fit(x, y, batch_size=8, epochs=1, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    return pruned, x


def _max_difference(a, b, x):
    return float(np.max(np.abs(a(x, training=False).numpy() - b(x, training=False).numpy())))


@pytest.mark.parametrize("name", list(CASES))
def test_shrink_matches_strip_with_fewer_parameters_and_flops(name):
    pruned, x = _pruned(CASES[name])
    stripped, small = pruning.strip(pruned), pruning.shrink(pruned)
    assert _max_difference(small, stripped, x) < 1e-4
    assert small.count_params() < stripped.count_params()
    assert pruning.count_flops(small) < pruning.count_flops(pruned)


def _filters(model):
    return {layer.name: layer.filters for layer in model.layers if hasattr(layer, "filters")}


def test_shrink_cuts_layers_meeting_at_a_residual_add_jointly():
    pruned, _ = _pruned(_residual)
    assert pruned.get_layer("prune_branch_out").follow == "stem"
    np.testing.assert_array_equal(pruned.get_layer("prune_branch_out").unit_mask(),
                                  pruned.get_layer("prune_stem").unit_mask())
    filters = _filters(pruning.shrink(pruned))
    assert filters["stem"] == filters["branch_out"] == 4  # both feed the Add: one mask
    assert filters["branch_in"] == 4  # half of 8 pruned, consumed by branch_out
    assert filters["head"] == 3


@pytest.mark.parametrize("build, cut", [
    (_residual_stage, {"stem": 4, "expand1": 4, "expand2": 4, "reduce1": 3, "reduce2": 3}),
    (_squeeze_excite, {"expand": 4, "se_expand": 4, "project": 3}),
    (_constant_absorbed, {"constant": 4}),
    (_dense_block, {"stem": 3, "bottleneck1": 4, "grow1": 2, "bottleneck2": 4, "grow2": 2,
                    "transition": 3}),
])
def test_shrink_cuts_every_member_of_a_group(build, cut):
    pruned, _ = _pruned(build)
    small = pruning.shrink(pruned)
    widths = {name: getattr(small.get_layer(name), "filters", None) for name in cut}
    assert widths == cut


def test_shrink_leaves_fully_kept_layers_as_they_are():
    model = _randomize(_conv_bn_conv())
    pruned = pruning.prune(model, pruning.OneShot(0.5, step=0), structure="channels")
    small = pruning.shrink(pruned)  # never trained: every unit mask is all ones
    x = _data(model)
    assert _filters(small) == _filters(model)
    assert _max_difference(small, model, x) < 1e-4


def test_shrunk_model_is_plain_and_survives_keras_save(tmp_path):
    pruned, x = _pruned(_nested)
    small = pruning.shrink(pruned)
    kinds = {type(layer).__module__ for layer in _clone.all_layers(small)}
    assert not any(kind.startswith("tfopt") for kind in kinds)
    path = str(tmp_path / "small.keras")
    small.save(path)
    loaded = keras.models.load_model(path)
    assert _max_difference(loaded, small, x) < 1e-6


def test_shrink_rejects_unstructured_pruning():
    pruned = pruning.prune(_dense_dense(), pruning.OneShot(0.5), structure="unstructured")
    with pytest.raises(ValueError, match=r"structure='channels'.*'unstructured'"):
        pruning.shrink(pruned)


def test_shrink_recognises_a_model_pruned_with_tfmot():
    import tensorflow_model_optimization as tfmot
    pruned = tfmot.sparsity.keras.prune_low_magnitude(_dense_dense())
    with pytest.raises(ValueError, match="tfmot's prune_low_magnitude wrappers .*single weights"):
        pruning.shrink(pruned)


def test_shrink_rejects_a_model_that_was_not_pruned():
    with pytest.raises(ValueError, match="no PruneWrapper layers.*strip"):
        pruning.shrink(_dense_dense())


def _grouped_consumer():
    return keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(8, 1, activation="relu", name="cut"),
                             L.Conv2D(8, 1, activation="relu", name="whole"),
                             L.Conv2D(4, 3, groups=2, activation="relu", name="grouped"),
                             L.GlobalAveragePooling2D(), L.Dense(3)])


def _channels_first_flatten():
    return keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(8, 1, activation="relu", name="cut"),
                             L.Conv2D(8, 3, activation="relu", name="whole"),
                             L.Flatten(data_format="channels_first"), L.Dense(3)])


def _relu_not_zero_at_zero():
    # Removed channels leave ReLU as a constant, which a 3x3 window with zero
    # padding sees as a constant only away from the borders.
    return keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(8, 1, activation="relu", name="cut"),
                             L.Conv2D(8, 1, name="whole"),
                             L.ReLU(negative_slope=0.1, threshold=1.0),
                             L.Conv2D(4, 3, padding="same", name="window"),
                             L.GlobalAveragePooling2D(), L.Dense(3)])


def _sigmoid_after_flatten():
    return keras.Sequential([keras.Input((6, 6, 2)), L.Conv2D(8, 1, activation="relu", name="cut"),
                             L.Conv2D(8, 3, activation="relu", name="whole"), L.Flatten(),
                             L.Activation("sigmoid"), L.Dense(3)])


@pytest.mark.parametrize("build, filters", [
    (_grouped_consumer, {"cut": 4, "whole": 8, "grouped": 4}),
    (_channels_first_flatten, {"cut": 4, "whole": 8}),
    (_relu_not_zero_at_zero, {"cut": 4, "whole": 8, "window": 2}),
    (_sigmoid_after_flatten, {"cut": 4, "whole": 8}),
])
def test_shrink_leaves_layers_it_cannot_cut_through_whole(build, filters):
    pruned, x = _pruned(build)
    small = pruning.shrink(pruned)
    assert _filters(small) == filters
    assert _max_difference(small, pruning.strip(pruned), x) < 1e-4


def test_shrink_before_any_pruning_step_says_it_removes_nothing(caplog):
    pruned = pruning.prune(small_cnn(), pruning.OneShot(0.5, step=10), structure="channels")
    plain = pruning.shrink(pruned)
    assert "found no pruned units, so it removes nothing (pruning step" in caplog.text
    assert plain.count_params() == small_cnn().count_params()
