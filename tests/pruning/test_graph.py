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
    assert "model output" in reasons["predictions"]


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


def _residual_stage():
    """A stem and two identity blocks: stem, expand1 and expand2 all feed the Adds."""
    inputs = keras.Input((8, 8, 3))
    x = L.BatchNormalization(name="stem_bn")(L.Conv2D(8, 3, padding="same", name="stem")(inputs))
    x = L.ReLU(name="stem_relu")(x)
    for i in (1, 2):
        y = L.Conv2D(4, 1, activation="relu", name=f"reduce{i}")(x)
        y = L.Conv2D(8, 3, padding="same", name=f"expand{i}")(y)
        y = L.BatchNormalization(name=f"expand{i}_bn")(y)
        x = L.ReLU(name=f"relu{i}")(L.Add(name=f"add{i}")([x, y]))
    x = L.GlobalAveragePooling2D(name="pool")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


def test_layers_meeting_at_a_chain_of_adds_form_one_group():
    groups, reasons = _graph.channel_plan(_residual_stage())
    assert set(groups) == {"stem", "reduce1", "reduce2"} and set(reasons) == {"logits"}
    stage = groups["stem"]
    assert stage.members == ["expand1", "expand2"] or stage.members == ["expand2", "expand1"]
    assert sorted(stage.per_channel) == ["expand1_bn", "expand2_bn", "stem_bn"]
    assert sorted(stage.consumers) == ["logits", "reduce1", "reduce2"]
    assert {"add1", "add2", "relu1", "relu2", "pool"} <= set(stage.pass_through)
    assert sorted(stage.followers) == sorted(stage.members + stage.per_channel)
    assert groups["reduce1"].consumers == ["expand1"] and not groups["reduce1"].members


def test_a_group_stays_whole_unless_all_its_members_are_pruned():
    candidates = {"stem", "expand1", "reduce1", "reduce2"}  # expand2 left out by the user
    groups, reasons = _graph.channel_plan(_residual_stage(), candidates=candidates)
    assert set(groups) == {"reduce1", "reduce2"}
    assert "'expand2', which is not being pruned" in reasons["stem"]
    assert reasons["stem"] == reasons["expand1"]


def _add_with_input():
    inputs = keras.Input((8, 8, 4))
    x = L.Add()([inputs, L.Conv2D(4, 3, padding="same", name="branch")(inputs)])
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x)))


def _concatenate():
    inputs = keras.Input((8, 8, 3))
    x = L.Concatenate()([L.Conv2D(4, 1, name="left")(inputs), L.Conv2D(4, 1, name="right")(inputs)])
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x)))


def _sigmoid_member():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="stem")(inputs)
    x = L.Add()([x, L.Conv2D(4, 1, activation="sigmoid", name="branch")(x)])
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x)))


def _channel_broadcast():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="stem")(inputs)
    x = L.Multiply()([x, L.Conv2D(1, 1, name="gate")(inputs)])  # one gate for all channels
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("build, name, reason", [
    (_add_with_input, "branch", "meet the model input"),
    (_concatenate, "left", "(Concatenate), which tfopt cannot cut"),
    (_sigmoid_member, "stem", "activation of 'branch' does not map 0 to 0"),
    (_channel_broadcast, "stem", "(Multiply), which tfopt cannot cut"),
])
def test_groups_that_cannot_be_cut_stay_whole(build, name, reason):
    groups, reasons = _graph.channel_plan(build())
    assert name not in groups and reason in reasons[name]


def _hard_swish(x):
    return L.Multiply()([x, L.ReLU(6.0)(x + 3.0) * (1.0 / 6.0)])


def _squeeze_excite(reshape):
    """MobileNetV3 / EfficientNet blocks: hard-swish TF ops, a gate multiplied in."""
    inputs = keras.Input((8, 8, 3))
    x = _hard_swish(L.BatchNormalization(name="bn")(L.Conv2D(8, 1, name="expand")(inputs)))
    if reshape:
        se = L.Reshape((1, 1, 8), name="reshape")(L.GlobalAveragePooling2D()(x))
    else:
        se = L.GlobalAveragePooling2D(keepdims=True)(x)
    se = L.Conv2D(2, 1, activation="relu", name="se_reduce")(se)
    se = L.Conv2D(8, 1, activation="sigmoid", name="se_expand")(se)
    x = L.Multiply(name="excite")([x, se])
    x = L.Conv2D(4, 1, name="project")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x)))


@pytest.mark.parametrize("reshape", [False, True])
def test_a_gate_multiplied_with_pruned_channels_loses_the_same_units(reshape):
    groups, _ = _graph.channel_plan(_squeeze_excite(reshape))
    group = groups["expand"]
    assert group.members == ["se_expand"] and group.per_channel == ["bn"]
    assert sorted(group.consumers) == ["project", "se_reduce"]
    assert group.reshapes == (["reshape"] if reshape else [])
    assert "excite" in group.pass_through and "se_expand" not in groups


def _bidirectional():
    inputs = keras.Input((5,), dtype="int32")
    x = L.Embedding(10, 4, name="embedding")(inputs)
    return keras.Model(inputs, L.Dense(2)(L.Bidirectional(L.GRU(3), name="rnn")(x)))


def test_a_bidirectional_rnn_consumes_channels():
    groups, _ = _graph.channel_plan(_bidirectional())
    assert groups["embedding"].consumers == ["rnn"]
