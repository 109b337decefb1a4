"""The Keras 3 graph adapter gives the core channel plan the same groups as tf-keras'."""

import dataclasses

import keras
import pytest
import tf_keras

from tests.keras3 import twin_models
from tfopt.core import channels
from tfopt.keras3 import _graph as keras3_graph
from tfopt.pruning import _graph as tf_keras_graph


def _named(groups, raw_ops):
    """Groups as dicts, raw-op names (which the two Kerases spell differently) replaced."""
    def rename(value):
        if isinstance(value, str):
            return "<op>" if value in raw_ops else value
        if isinstance(value, list):
            return [rename(v) for v in value]
        if isinstance(value, dict):
            return {rename(k): rename(v) for k, v in value.items()}
        return value
    return {leader: {field: rename(value) for field, value in dataclasses.asdict(group).items()}
            for leader, group in groups.items()}


@pytest.mark.parametrize("build", twin_models.ARCHITECTURES, ids=lambda b: b.__name__)
def test_same_channel_groups_in_both_kerases(build):
    theirs, ours = build(tf_keras), build(keras)
    old_groups, old_reasons = tf_keras_graph.channel_plan(theirs)
    new_graph = keras3_graph.Graph(ours)
    new_groups, new_reasons = keras3_graph.channel_plan(ours)
    raw = {name for name in new_graph.layers if new_graph.class_name(name) is None}
    raw |= {layer.name for layer in theirs.layers if type(layer).__name__ == "TFOpLambda"}
    assert new_groups, "every twin model has a prunable group"
    assert _named(new_groups, raw) == _named(old_groups, raw)
    assert set(new_reasons) == set(old_reasons)


def test_raw_ops_are_nodes_that_pass_channels_on():
    model = twin_models.raw_ops(keras)
    graph = keras3_graph.Graph(model)
    (add,) = graph.consumers["conv"]
    assert graph.producers[add] == ["conv", "other"] and graph.class_name(add) is None
    assert channels.kind(graph, add) == "merge"
    (scale,) = graph.consumers[add]
    assert channels.kind(graph, scale) == "pass_through"
    assert graph.at_zero(scale) == channels.ZERO


@pytest.mark.parametrize("op,expected", [
    (lambda x: x * 2.0, channels.ZERO), (lambda x: x + 3.0, channels.CONSTANT),
    (keras.ops.relu, channels.ZERO), (keras.ops.sigmoid, channels.CONSTANT),
])
def test_raw_ops_are_evaluated_at_zero(op, expected):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, op(keras.layers.Dense(4, name="dense")(inputs)))
    graph = keras3_graph.Graph(model)
    (name,) = graph.consumers["dense"]
    assert channels.kind(graph, name) == "pass_through"
    assert graph.at_zero(name) == expected


def test_a_nested_model_is_not_cut_through():
    inner = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="inner_dense")],
                             name="inner")
    inputs = keras.Input((4,))
    x = keras.layers.Dense(8, name="outer")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(inner(x)))
    groups, reasons = keras3_graph.channel_plan(model)
    assert "outer" not in groups and "'inner'" in reasons["outer"]


def test_a_model_without_a_graph_is_refused():
    with pytest.raises(ValueError, match="keras.Input"):
        keras3_graph.Graph(keras.Sequential([keras.layers.Dense(2)]))
