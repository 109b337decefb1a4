"""make_student's width plan on the graph patterns of real architectures, in miniature."""

import numpy as np
import pytest
import tf_keras as keras
from tf_keras.src.applications.convnext import LayerScale

from tfopt import distillation

L = keras.layers


def _student(model, width=0.5):
    student = distillation.make_student(model, width=width)
    assert student.output_shape == model.output_shape
    x = np.random.default_rng(0).random((2,) + model.input_shape[1:]).astype("float32")
    assert student(x).shape == model(x).shape  # the student runs, not only builds
    return student


def _filters(model, name):
    layer = model.get_layer(name)
    return getattr(layer, "filters", getattr(layer, "units", None))


@pytest.mark.parametrize("head", ["reshape", "flatten"])
def test_classifier_convolution_before_a_reshape_keeps_its_width(head):
    """MobileNet: Conv2D(classes) -> Reshape -> Activation; MobileNetV3: -> Flatten."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 3, name="features")(inputs)
    x = L.GlobalAveragePooling2D(keepdims=head == "flatten")(x)
    if head == "reshape":
        x = L.Reshape((1, 1, 16), name="to_map")(x)
    x = L.Dropout(0.1)(x)
    x = L.Conv2D(10, 1, name="classifier")(x)
    x = L.Reshape((10,))(x) if head == "reshape" else L.Flatten()(x)
    student = _student(keras.Model(inputs, L.Activation("softmax")(x)))
    assert _filters(student, "features") == 8 and _filters(student, "classifier") == 10
    if head == "reshape":
        assert student.get_layer("to_map").target_shape == (1, 1, 8)


def test_squeeze_excite_reshape_follows_the_narrowed_channels():
    """EfficientNet: GAP -> Reshape((1, 1, C)) -> reduce -> expand(C) -> Multiply."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(32, 3, padding="same", name="expand")(inputs)
    se = L.Reshape((1, 1, 32), name="se_reshape")(L.GlobalAveragePooling2D()(x))
    se = L.Conv2D(8, 1, activation="relu", name="se_reduce")(se)
    se = L.Conv2D(32, 1, activation="sigmoid", name="se_expand")(se)
    x = L.Multiply()([x, se])
    outputs = L.Dense(10)(L.GlobalAveragePooling2D()(x))
    student = _student(keras.Model(inputs, outputs))
    assert student.get_layer("se_reshape").target_shape == (1, 1, 16)
    assert [_filters(student, n) for n in ("expand", "se_reduce", "se_expand")] == [16, 4, 16]


def test_depthwise_grouped_convolution_and_layer_scale_follow_their_input():
    """ConvNeXt: Conv2D(C, groups=C) -> LayerNorm -> Dense -> Dense(C) -> LayerScale(C) -> +."""
    inputs = keras.Input((8, 8, 3))
    x = L.Conv2D(16, 2, strides=2, name="stem")(inputs)
    y = L.Conv2D(16, 3, padding="same", groups=16, name="depthwise")(x)
    y = L.Dense(64, activation="gelu", name="pointwise_1")(L.LayerNormalization()(y))
    y = LayerScale(1e-6, 16, name="scale")(L.Dense(16, name="pointwise_2")(y))
    x = x + y
    outputs = L.Dense(10)(L.GlobalAveragePooling2D()(x))
    student = _student(keras.Model(inputs, outputs))
    depthwise = student.get_layer("depthwise")
    assert (depthwise.filters, depthwise.groups) == (8, 8)
    assert student.get_layer("scale").projection_dim == 8
    assert [_filters(student, n) for n in ("stem", "pointwise_1", "pointwise_2")] == [8, 32, 8]


def test_residual_group_shares_one_width():
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(12, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(12, 3, padding="same", name="b")(L.Conv2D(20, 1, name="inner")(a))
    c = L.Conv2D(12, 1, name="c")(L.ReLU()(L.Add()([a, b])))
    x = L.Add()([L.Add()([a, b]), c])
    student = _student(keras.Model(inputs, L.Dense(10)(L.Flatten()(x))))
    assert [_filters(student, n) for n in ("a", "b", "c", "inner")] == [6, 6, 6, 10]


def test_residual_group_with_the_model_input_keeps_its_width():
    """A Transformer block added to its input: the whole Add group stays whole."""
    inputs = keras.Input((6, 16))
    attended = L.MultiHeadAttention(2, 8, name="attention")(inputs, inputs)
    x = L.LayerNormalization()(L.Add()([inputs, attended]))
    fed = L.Dense(16, name="ffn_output")(L.Dense(64, activation="relu", name="ffn_hidden")(x))
    x = L.Add()([x, fed])
    model = keras.Model(inputs, L.Dense(10)(L.GlobalAveragePooling1D()(x)))
    student = _student(model)
    assert _filters(student, "ffn_output") == 16 and _filters(student, "ffn_hidden") == 32
    assert student.get_layer("attention").get_config()["key_dim"] == 4
    assert student.count_params() < 0.6 * model.count_params()


def test_concatenated_widths_follow_unless_joined_to_another_width():
    inputs = keras.Input((8, 8, 3))
    a = L.Conv2D(8, 1, name="a")(inputs)
    b = L.Conv2D(8, 1, name="b")(inputs)
    free = L.Concatenate()([a, b])  # read by a convolution: any width will do
    c = L.Conv2D(6, 1, name="c")(inputs)
    d = L.Conv2D(6, 1, name="d")(inputs)
    joined = L.Add()([L.Concatenate()([c, d]), L.Conv2D(12, 1, name="e")(free)])
    student = _student(keras.Model(inputs, L.Dense(10)(L.Flatten()(joined))))
    assert [_filters(student, n) for n in "abcde"] == [4, 4, 6, 6, 12]


def test_recurrent_and_embedding_layers_narrow():
    inputs = keras.Input((12,), dtype="int32")
    x = L.Embedding(50, 16, name="embedding")(inputs)
    x = L.Bidirectional(L.GRU(8, return_sequences=True), name="bidirectional")(x)
    x = L.TimeDistributed(L.Dense(12), name="per_step")(x)
    x = L.LSTM(10, name="lstm")(x)
    model = keras.Model(inputs, L.Dense(3)(x))
    student = distillation.make_student(model, width=0.5)
    assert student.get_layer("embedding").output_dim == 8
    assert student.get_layer("bidirectional").forward_layer.units == 4
    assert student.get_layer("bidirectional").output_shape == (None, 12, 8)
    assert student.get_layer("per_step").layer.units == 6
    assert student.get_layer("lstm").units == 5
    assert student.count_params() < 0.35 * model.count_params()


def test_shared_layers_stay_shared_and_sequential_stays_sequential():
    shared = L.Dense(8, name="shared")
    left, right = keras.Input((4,)), keras.Input((4,))
    model = keras.Model([left, right], L.Dense(2)(L.Add()([shared(left), shared(right)])))
    student = _student_two(model)
    assert len(student.get_layer("shared").inbound_nodes) == 2
    assert student.get_layer("shared").units == 4
    sequential = keras.Sequential([keras.Input((4,)), L.Dense(8, name="h"), L.Dense(2)])
    narrowed = distillation.make_student(sequential)
    assert isinstance(narrowed, keras.Sequential) and narrowed.get_layer("h").units == 4


def _student_two(model):
    student = distillation.make_student(model, width=0.5)
    x = np.ones((2, 4), "float32")
    assert student([x, x]).shape == (2, 2)
    return student


def test_initial_states_narrow_with_their_recurrent_layer():
    inputs = keras.Input((5, 3))
    summary = L.Flatten()(inputs)
    h, c = L.Dense(8, name="h")(summary), L.Dense(8, name="c")(summary)
    x = L.LSTM(8, name="lstm")(inputs, initial_state=[h, c])
    student = _student(keras.Model(inputs, L.Dense(2)(x)))
    assert [_filters(student, n) for n in ("h", "c", "lstm")] == [4, 4, 4]
