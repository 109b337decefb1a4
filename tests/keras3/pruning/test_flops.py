"""count_flops for Keras 3 models: the counts tf-keras' count_flops gives the same models."""

import keras
import pytest
import tf_keras

from tests.keras3 import twin_models
from tfopt import pruning
from tfopt.keras3 import pruning as keras3_pruning


@pytest.mark.parametrize("build", twin_models.ARCHITECTURES, ids=lambda b: b.__name__)
def test_same_count_as_tf_keras(build):
    count = keras3_pruning.count_flops(build(keras))
    assert count == pruning.count_flops(build(tf_keras)) and count > 0


def test_dense_by_hand():
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4)])
    assert keras3_pruning.count_flops(model) == 2 * 5 * 4 + 4


def test_nested_model_counts_once_per_call():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(4)], name="inner")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, inner(inner(inputs)))
    assert keras3_pruning.count_flops(model) == 2 * (2 * 4 * 4 + 4)


@pytest.mark.parametrize("make,shape", [
    (lambda k: k.layers.LSTM(3), (5, 2)), (lambda k: k.layers.GRU(3), (5, 2)),
    (lambda k: k.layers.SimpleRNN(3), (5, 2)),
    (lambda k: k.layers.Bidirectional(k.layers.LSTM(3)), (5, 2)),
    (lambda k: k.layers.Conv2DTranspose(3, 2), (4, 4, 2)),
    (lambda k: k.layers.Conv1D(3, 2, groups=1), (5, 4)),
    (lambda k: k.layers.EinsumDense("abc,cd->abd", output_shape=(5, 3), bias_axes="d"),
     (5, 4)),
    (lambda k: k.layers.LayerNormalization(center=False), (3, 4)),
    (lambda k: k.layers.AveragePooling2D(2), (4, 4, 2)),
], ids=["lstm", "gru", "simple_rnn", "bidirectional", "conv_transpose", "conv1d", "einsum",
        "layer_norm", "pooling"])
def test_layers_match_tf_keras(make, shape):
    ours = keras3_pruning.count_flops(keras.Sequential([keras.Input(shape), make(keras)]))
    assert ours > 0
    assert ours == pruning.count_flops(tf_keras.Sequential([tf_keras.Input(shape),
                                                            make(tf_keras)]))


def test_attention_matches_tf_keras():
    def build(k):
        inputs = k.Input((6, 8))
        return k.Model(inputs, k.layers.MultiHeadAttention(2, 4)(inputs, inputs))
    assert keras3_pruning.count_flops(build(keras)) == pruning.count_flops(build(tf_keras))


def test_tf_keras_model_is_refused():
    with pytest.raises(ValueError, match=r"for tf_keras models use tfopt\.pruning\.count_flops"):
        keras3_pruning.count_flops(tf_keras.Sequential([tf_keras.Input((2,)),
                                                        tf_keras.layers.Dense(1)]))


def test_a_qat_model_costs_its_float_model_less_the_folded_batch_norm_without_warning(caplog):
    from tfopt.keras3 import quantization
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3),
                              keras.layers.BatchNormalization(), keras.layers.ReLU(),
                              keras.layers.Flatten(), keras.layers.Dense(3)])
    qat = quantization.quantize(model, "int8")
    assert isinstance(qat.layers[0], quantization.FakeQuant)
    with caplog.at_level("WARNING"):
        # The BatchNormalization (2 FLOPs for each of the 6 * 6 * 4 outputs) is folded.
        assert keras3_pruning.count_flops(qat) == keras3_pruning.count_flops(model) - 288 > 0
    assert "0 FLOPs" not in caplog.text
