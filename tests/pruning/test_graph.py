"""channel_plan(): which units can be removed, read from small hand-made graphs."""

import pytest
import tf_keras as keras
from tfopt.pruning import _graph

L = keras.layers


def _softmax_head():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(8, 3, activation="relu", name="conv")(inputs)
    x = L.GlobalAveragePooling2D()(x)
    return keras.Model(inputs, L.Dense(4, activation="softmax", name="predictions")(x))


def test_softmax_head_stays_whole_and_the_rest_is_planned():
    groups, reasons = _graph.channel_plan(_softmax_head())
    assert set(groups) == {"conv"} and groups["conv"].consumers == ["predictions"]
    assert "model output" in reasons["predictions"]


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
    assert "meet those of 'expand2' at 'add2', and 'expand2' is not being pruned" in reasons["stem"]
    assert reasons["stem"] == reasons["expand1"]


def _add_with_input():
    inputs = keras.Input((8, 8, 4))
    x = L.Add()([inputs, L.Conv2D(4, 3, padding="same", name="branch")(inputs)])
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x)))


def _sigmoid_member():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="stem")(inputs)
    x = L.Add()([x, L.Conv2D(4, 1, activation="sigmoid", name="branch")(x)])
    return keras.Model(inputs, L.Conv2D(3, 3, name="head")(x))  # zero padding at the borders


def _softmax_member():
    inputs = keras.Input((8, 3))
    x = L.Dense(4, name="stem")(inputs)
    x = L.Add()([x, L.Dense(4, activation="softmax", name="branch")(x)])
    return keras.Model(inputs, L.Dense(3, name="head")(x))


def _channel_broadcast():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="stem")(inputs)
    x = L.Multiply()([x, L.Conv2D(1, 1, name="gate")(inputs)])  # one gate for all channels
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x)))


def _add_after_concatenate():
    inputs = keras.Input((8, 8, 3))
    x = L.Concatenate()([L.Conv2D(4, 1, name="left")(inputs), L.Conv2D(4, 1, name="right")(inputs)])
    x = L.Add(name="add_3")([x, L.Conv2D(8, 1, name="other")(inputs)])
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D()(x)))


def _constant_into_flatten():
    inputs = keras.Input((4, 3))
    x = L.BatchNormalization(name="bn")(L.Concatenate()([inputs, L.Dense(4, name="dense")(inputs)]))
    return keras.Model(inputs, L.Dense(3, name="logits")(L.Flatten()(x)))


@pytest.mark.parametrize("build, name, reason", [
    (_add_with_input, "branch", "meet the model input"),
    (_sigmoid_member, "stem", "reach 'head' as a constant (the activation of 'branch' does "
                              "not map 0 to 0), which 'head' cannot take into a bias"),
    (_softmax_member, "stem", "not silent where 'head' reads them: the activation of 'branch' "
                              "does not map 0 to 0 channel by channel"),
    (_channel_broadcast, "stem", "(Multiply), which tfopt cannot cut"),
    (_add_after_concatenate, "left", "'add_3', which merges them with other channels"),
    (_constant_into_flatten, "dense", "'bn' holds other groups' channels too, so it is not "
                                      "masked), which 'flatten"),
])
def test_groups_that_cannot_be_cut_stay_whole(build, name, reason):
    groups, reasons = _graph.channel_plan(build())
    assert name not in groups and reason in reasons[name]


def _sigmoid_member_into_dense():
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="stem")(inputs)
    x = L.Add(name="add")([x, L.Conv2D(4, 1, activation="sigmoid", name="branch")(x)])
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling2D(name="pool")(x)))


def test_a_constant_channel_is_absorbed_by_a_dense_or_pointwise_consumer():
    group = _graph.channel_plan(_sigmoid_member_into_dense())[0]["stem"]
    assert group.members == ["branch"] and group.constants == {"logits": "pool"}
    assert "branch" not in group.constants  # 'branch' reads 'stem' where it is still zero


def _dense_block():
    """DenseNet: each layer's new channels are concatenated after all earlier ones."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(6, 3, padding="same", name="stem")(inputs)
    for i in (1, 2):
        y = L.ReLU()(L.BatchNormalization(name=f"bn{i}")(x))
        y = L.Conv2D(4, 1, use_bias=False, name=f"grow{i}")(y)  # DenseNet: 1x1, then 3x3
        x = L.Concatenate(name=f"concat{i}")([x, y])
    x = L.ReLU(name="relu")(L.BatchNormalization(name="bn")(x))
    return keras.Model(inputs, L.Conv2D(5, 1, name="transition")(x))


def test_concatenated_channels_are_cut_at_their_offset():
    groups, reasons = _graph.channel_plan(_dense_block())
    assert set(groups) == {"stem", "grow1", "grow2"} and set(reasons) == {"transition"}
    grow1 = groups["grow1"]
    assert grow1.shared == ["bn2", "bn"] and not grow1.per_channel
    assert grow1.offsets == {"bn2": (6,), "grow2": (6,), "bn": (6,), "transition": (6,)}
    assert set(grow1.constants) == {"grow2", "transition"}  # BatchNormalization of 0
    stem = groups["stem"]
    assert stem.per_channel == ["bn1"] and stem.shared == ["bn2", "bn"]
    assert "grow1" not in stem.constants  # bn1 is masked: zeros, nothing to absorb
    assert groups["grow2"].offsets["transition"] == (10,)


def _concatenated_twice():
    """NASNet's cells concatenate several branches derived from the same channels."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(4, 1, name="a")(inputs)
    pooled = L.AveragePooling2D(3, strides=1, padding="same")(x)
    x = L.Concatenate()([x, L.Add(name="add")([pooled, x]), L.Conv2D(2, 1, name="b")(inputs)])
    x = L.ReLU()(L.BatchNormalization(name="bn")(x))
    return keras.Model(inputs, L.Conv2D(5, 1, name="head")(x))


def test_channels_concatenated_twice_are_cut_at_both_offsets():
    groups, _ = _graph.channel_plan(_concatenated_twice())
    assert groups["a"].offsets["head"] == (0, 4) and groups["b"].offsets["head"] == (8,)
    assert groups["a"].shared == ["bn"]


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
