"""count_flops(): hand-computed FLOPs (multiply-add = 2, bias add = 1) for tiny models."""

import pytest

import tf_keras as keras
from tfopt import pruning

L = keras.layers


def _single(layer, shape, dtype="float32"):
    return keras.Sequential([keras.Input(shape, dtype=dtype), layer])


def test_dense_model():
    model = keras.Sequential([keras.Input((5,)), L.Dense(4, activation="relu"),
                              L.Dense(3, use_bias=False)])
    # 5 -> 4: 2*5*4 + 4 biases; 4 -> 3 without bias: 2*4*3.
    assert pruning.count_flops(model) == (2 * 5 * 4 + 4) + 2 * 4 * 3


def test_conv_model():
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3), L.MaxPooling2D(2),
                              L.BatchNormalization(), L.Flatten(), L.Dense(2)])
    conv = 6 * 6 * 4 * (2 * 3 * 3 * 1 + 1)  # outputs * (2 * window * inputs + bias)
    pool = 3 * 3 * 4 * (2 * 2)  # outputs * window
    batch_norm = 2 * 3 * 3 * 4
    dense = 2 * 36 * 2 + 2
    assert pruning.count_flops(model) == conv + pool + batch_norm + dense


@pytest.mark.parametrize("layer, shape, expected", [
    (L.Dense(3), (5, 4), 5 * 3 * (2 * 4 + 1)),  # applied at each of 5 positions
    (L.Conv1D(3, 2), (5, 4), 4 * 3 * (2 * 2 * 4 + 1)),
    (L.Conv2D(4, 3, groups=2, use_bias=False), (6, 6, 2), 4 * 4 * 4 * 2 * 9 * 1),
    (L.Conv2DTranspose(3, 2), (4, 4, 2), 2 * 4 * 4 * 2 * (2 * 2 * 3) + 5 * 5 * 3),
    (L.DepthwiseConv2D(3), (8, 8, 2), 6 * 6 * 2 * (2 * 9 + 1)),
    (L.SeparableConv2D(4, 3, depth_multiplier=2), (8, 8, 2),
     6 * 6 * (2 * 4 * 9 + 2 * 4 * 4 + 4)),  # depthwise 9-window and pointwise 4->4 per position
    (L.BatchNormalization(), (4, 4, 2), 2 * 32),
    (L.AveragePooling2D(2), (4, 4, 2), 2 * 2 * 2 * 4),
    (L.GlobalMaxPooling2D(), (4, 4, 2), 32),
    (L.LSTM(3), (5, 2), 5 * (2 * (2 + 3) * 12 + 12)),  # 4 gates of 3 units
    (L.GRU(3), (5, 2), 5 * (2 * (2 + 3) * 9 + 2 * 9)),  # reset_after: two biases
    (L.SimpleRNN(3), (5, 2), 5 * (2 * (2 + 3) * 3 + 3)),
    (L.ReLU(), (4, 4, 2), 0),
])
def test_layer(layer, shape, expected):
    assert pruning.count_flops(_single(layer, shape)) == expected


def test_embedding_is_free():
    model = _single(L.Embedding(10, 4), (5,), dtype="int32")
    assert pruning.count_flops(model) == 0


def test_nested_model_counts_once_per_call():
    inner = keras.Sequential([keras.Input((4,)), L.Dense(4)], name="inner")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, inner(inner(inputs)))
    assert pruning.count_flops(model) == 2 * pruning.count_flops(inner) == 2 * (2 * 16 + 4)


@pytest.mark.parametrize("structure", ["unstructured", "channels"])
def test_pruned_model_counts_dense_flops(structure):
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(4, 3, activation="relu"),
                              L.BatchNormalization(), L.Conv2D(4, 3), L.Flatten(), L.Dense(2)])
    pruned = pruning.prune(model, pruning.OneShot(0.5), structure=structure)
    for wrapper in pruned.layers:
        if isinstance(wrapper, pruning.PruneWrapper) and wrapper.follow is None:
            wrapper.prune_to(0.5)
    assert pruning.count_flops(pruned) == pruning.count_flops(model) > 0


def test_unknown_spatial_size_is_an_error():
    model = _single(L.Conv1D(2, 3), (None, 4))
    with pytest.raises(ValueError, match="fully known shapes.*keras.Input"):
        pruning.count_flops(model)


def _merge(merge, count, shape=(4, 6)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, merge([inputs] * count))


@pytest.mark.parametrize("build, expected", [
    pytest.param(lambda: _single(L.EinsumDense("abc,cd->abd", output_shape=(None, 7),
                                               bias_axes="d"), (5, 4)),
                 5 * 7 * (2 * 4 + 1), id="einsum_dense"),  # 5x7 outputs: 4 products, a bias
    pytest.param(lambda: _single(L.EinsumDense("...b,bc->...c", output_shape=7), (5, 4)),
                 5 * 7 * 2 * 4, id="einsum_dense_ellipsis"),
    pytest.param(lambda: _single(L.LayerNormalization(), (4, 6)), 7 * 24, id="layer_norm"),
    pytest.param(lambda: _single(L.LayerNormalization(center=False, scale=False), (4, 6)),
                 5 * 24, id="layer_norm_plain"),
    pytest.param(lambda: _single(L.Bidirectional(L.GRU(3)), (5, 2)),
                 2 * 5 * (2 * (2 + 3) * 9 + 2 * 9), id="bidirectional_gru"),
    pytest.param(lambda: _merge(L.Add(), 3), 2 * 24, id="add_three"),
    pytest.param(lambda: _merge(L.Multiply(), 2), 24, id="multiply"),
    pytest.param(lambda: _merge(L.Average(), 2), 2 * 24, id="average"),  # an add, a division
    pytest.param(lambda: _merge(L.Concatenate(), 2), 0, id="concatenate"),
    pytest.param(lambda: _merge(lambda xs: xs[0] * 0.5 + xs[1], 2), 2 * 24, id="tf_ops"),
])
def test_other_layers(build, expected):
    assert pruning.count_flops(build()) == expected


def test_multi_head_attention():
    inputs = keras.Input((4, 6))
    model = keras.Model(inputs, L.MultiHeadAttention(2, 3)(inputs, inputs))
    projection = 4 * 2 * 3 * (2 * 6 + 1)  # query, key, value: 6 features -> 2 heads x 3
    output = 4 * 6 * (2 * 2 * 3 + 1)  # 2 heads x 3 -> 6 features
    attention = 2 * (4 * 4 * 2) * (3 + 3)  # scores and weighted values: 4x4 pairs per head
    assert pruning.count_flops(model) == 3 * projection + output + attention


def _profiled_flops(model):
    """FLOPs TensorFlow's profiler finds in the model's inference graph (batch 1)."""
    import tensorflow as tf
    from tensorflow.python.framework import convert_to_constants

    spec = tf.TensorSpec((1,) + tuple(model.input_shape[1:]), model.inputs[0].dtype)
    function = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec)
    graph = convert_to_constants.convert_variables_to_constants_v2(function).graph
    builder = tf.compat.v1.profiler.ProfileOptionBuilder
    options = builder(builder.float_operation()).with_empty_output().build()
    return tf.compat.v1.profiler.profile(graph=graph, options=options).total_float_ops


def _residual_squeeze_excite():
    inputs = keras.Input((6, 6, 4))
    x = L.Conv2D(4, 3, padding="same")(inputs)
    gate = L.Dense(4)(L.GlobalAveragePooling2D(keepdims=True)(x))
    x = L.Multiply()([x, gate])
    x = L.Add()([inputs, x * 0.5])
    return keras.Model(inputs, L.Dense(3)(L.Conv1D(5, 2)(L.Reshape((36, 4))(x))))


def test_count_agrees_with_tensorflow_profiler():
    # Matmuls, convolutions, bias adds, the mean of global pooling and
    # element-wise arithmetic (merge layers and TF ops) all count the same.
    model = _residual_squeeze_excite()
    assert pruning.count_flops(model) == _profiled_flops(model)
