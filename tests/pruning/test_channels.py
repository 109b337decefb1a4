"""How layers connect and what they output for a zero channel."""

import pytest
import tensorflow as tf

import tf_keras as keras
from tfopt.pruning import _channels

L = keras.layers
ZERO, CONSTANT = _channels.ZERO, _channels.CONSTANT


def _raises(x):
    raise RuntimeError("no")


@pytest.mark.parametrize("activation, expected", [
    ("relu", ZERO), ("linear", ZERO), ("gelu", ZERO), ("swish", ZERO), ("relu6", ZERO),
    ("elu", ZERO), ("sigmoid", CONSTANT), ("hard_sigmoid", CONSTANT), ("softplus", CONSTANT),
    ("softmax", None),  # mixes the channels of a row
    (_raises, None),
])
def test_value_at_zero_of_any_activation(activation, expected):
    assert _channels.value_at_zero(keras.activations.get(activation)) == expected


def _tf_op_model():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 1, name="conv")(inputs)  # the letters of "conv" were read as layer names
    x = tf.nn.relu(x * 2.0)
    x = L.Conv2D(6, 3, activation="relu", name="head")(x)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


def test_graph_reads_tf_op_layers_called_with_constants():
    graph = _channels.Graph(_tf_op_model())
    multiply = graph.consumers["conv"]
    assert len(multiply) == 1 and graph.producers[multiply[0]] == ["conv"]
    assert graph.outputs == {"logits"}




@pytest.mark.parametrize("op, expected", [
    (lambda x: x * 2.0, ZERO), (lambda x: x + 3.0, CONSTANT), (tf.nn.relu, ZERO),
    (tf.math.sigmoid, CONSTANT),
])
def test_tf_ops_on_keras_tensors_are_evaluated_at_zero(op, expected):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, op(L.Dense(4, name="dense")(inputs)))
    graph = _channels.Graph(model)
    (name,) = graph.consumers["dense"]
    assert _channels.kind(graph, name) == "pass_through"
    assert graph.at_zero(name) == expected
