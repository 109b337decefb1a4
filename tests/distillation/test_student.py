import numpy as np
import pytest
import tf_keras as keras

from tfopt import distillation
from tests.conftest import small_cnn, subclassed_model

L = keras.layers


def test_hidden_layers_narrow_and_outputs_keep_their_width():
    teacher = small_cnn()
    student = distillation.make_student(teacher, width=0.5)
    widths = {l.name: getattr(l, "filters", getattr(l, "units", None)) for l in student.layers}
    assert widths["conv_a"] == 4 and widths["conv_b"] == 4 and widths["hidden"] == 8
    assert widths["logits"] == 10
    assert student.output_shape == teacher.output_shape
    assert student.count_params() < 0.5 * teacher.count_params()
    # Fresh weights: the student does not start as a copy of the teacher.
    assert not np.allclose(student.get_layer("logits").kernel.numpy()[:4, :],
                           teacher.get_layer("logits").kernel.numpy()[:4, :])


def test_functional_with_nested_model_and_a_consistent_residual():
    # The nested model reads the unchanged input: its own Input keeps its width.
    inner = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, padding="same")], name="inner")
    inputs = keras.Input((8, 8, 1))
    a = L.Conv2D(8, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(8, 3, padding="same", name="b")(inner(inputs))
    outputs = L.Dense(3, name="out")(L.GlobalAveragePooling2D()(L.Add()([a, b])))
    student = distillation.make_student(keras.Model(inputs, outputs), width=0.25)
    assert student.get_layer("a").filters == 2 and student.get_layer("b").filters == 2
    assert student.get_layer("inner").layers[-1].filters == 2
    assert student.output_shape == (None, 3)


def test_nested_model_after_a_narrowed_layer_is_refused():
    inner = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(8, 3)], name="inner")
    inputs = keras.Input((8, 8, 1))
    outputs = L.Dense(3)(L.Flatten()(inner(L.Conv2D(4, 1)(inputs))))
    with pytest.raises(ValueError, match=r"(?s)cannot narrow .* consistently.*incompatible"):
        distillation.make_student(keras.Model(inputs, outputs), width=0.5)


def test_residual_with_the_input_cannot_be_narrowed():
    inputs = keras.Input((8, 8, 4))
    merged = L.Add()([inputs, L.Conv2D(4, 3, padding="same")(inputs)])
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(merged)))
    with pytest.raises(ValueError, match="make_student cannot narrow .* consistently"):
        distillation.make_student(model, width=0.5)


@pytest.mark.parametrize("width", [0, 1.5, -0.5, True])
def test_bad_widths_are_explained(width):
    with pytest.raises(ValueError, match=r"width must be in \(0, 1\]"):
        distillation.make_student(small_cnn(), width=width)


def test_subclassed_teacher_is_refused():
    with pytest.raises(ValueError, match="subclassed model"):
        distillation.make_student(subclassed_model())
