"""count_flops(): hand-computed FLOPs (multiply-add = 2, bias add = 1) for tiny models."""

import pytest

import tfopt  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
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
