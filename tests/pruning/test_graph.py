"""channel_plan(): which units can be removed, read from small hand-made graphs."""

import pytest
import tensorflow as tf

import tfopt  # noqa: F401  (sets TF_USE_LEGACY_KERAS before TensorFlow loads)
import tf_keras as keras
from tfopt.pruning import _graph

L = keras.layers


def _raises(x):
    raise RuntimeError("no")


@pytest.mark.parametrize("activation, expected", [
    ("relu", True), ("linear", True), ("gelu", True), ("swish", True), ("relu6", True),
    ("softmax", False), ("sigmoid", False), ("hard_sigmoid", False), ("elu", True),
    (_raises, False),
])
def test_zero_preserving_holds_for_any_activation(activation, expected):
    assert _graph._zero_preserving(keras.activations.get(activation)) is expected


def _softmax_head():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(4, activation="softmax", name="predictions")(x))


def test_softmax_head_stays_whole_and_the_rest_is_planned():
    groups, reasons = _graph.channel_plan(_softmax_head())
    assert set(groups) == {"conv"} and groups["conv"].consumers == ["predictions"]
    assert "does not map 0 to 0" in reasons["predictions"]


def _tf_op_model():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1, name="conv")(inputs)  # the letters of "conv" were read as layer names
    x = tf.nn.relu(x * 2.0)
    x = L.Conv2D(6, 3, activation="relu", name="head")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


def test_graph_reads_tf_op_layers_called_with_constants():
    graph = _graph._Graph(_tf_op_model())
    multiply = graph.consumers["conv"]
    assert len(multiply) == 1 and graph.producers[multiply[0]] == ["conv"]
    assert graph.outputs == {"logits"}
    groups, _ = _graph.channel_plan(_tf_op_model())
    assert "head" in groups
