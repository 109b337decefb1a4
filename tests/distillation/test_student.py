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


def test_nested_model_after_a_narrowed_layer_takes_the_new_width():
    inner = keras.Sequential([keras.Input((8, 8, 4)), L.Conv2D(8, 3, name="c")], name="inner")
    inputs = keras.Input((8, 8, 1))
    outputs = L.Dense(3)(L.Flatten()(inner(L.Conv2D(4, 1)(inputs))))
    student = distillation.make_student(keras.Model(inputs, outputs), width=0.5)
    nested = student.get_layer("inner")
    assert nested.input_shape == (None, 8, 8, 2) and nested.get_layer("c").filters == 4
    assert student(np.zeros((1, 8, 8, 1), "float32")).shape == (1, 3)


def test_residual_with_the_input_keeps_its_width():
    inputs = keras.Input((8, 8, 4))
    merged = L.Add()([inputs, L.Conv2D(4, 3, padding="same", name="residual")(inputs)])
    hidden = L.Dense(8, name="hidden")(L.Flatten()(merged))
    student = distillation.make_student(keras.Model(inputs, L.Dense(2)(hidden)), width=0.5)
    assert student.get_layer("residual").filters == 4 and student.get_layer("hidden").units == 4


@pytest.mark.parametrize("width", [0, 1.5, -0.5, True])
def test_bad_widths_are_explained(width):
    with pytest.raises(ValueError, match=r"width must be in \(0, 1\]"):
        distillation.make_student(small_cnn(), width=width)


def test_subclassed_teacher_is_refused():
    with pytest.raises(ValueError, match="subclassed model"):
        distillation.make_student(subclassed_model())


def test_teacher_weights_keep_the_strongest_units():
    teacher = small_cnn()
    student = distillation.make_student(teacher, width=0.5, weights="teacher")
    assert [w.shape for w in student.weights] == [
        w.shape for w in distillation.make_student(teacher, width=0.5).weights]
    kernel = teacher.get_layer("conv_a").kernel.numpy()
    strongest = np.sort(np.argsort(-np.abs(kernel).sum(axis=(0, 1, 2)))[:4])
    np.testing.assert_array_equal(student.get_layer("conv_a").kernel.numpy(),
                                  kernel[..., strongest])
    # conv_b reads only the kept channels of conv_a (through the BatchNormalization).
    kept_b = student.get_layer("conv_b").kernel.numpy()
    assert kept_b.shape == (3, 3, 4, 4)
    teacher_b = teacher.get_layer("conv_b").kernel.numpy()[:, :, strongest, :]
    matches = [any(np.array_equal(kept_b[..., i], teacher_b[..., j]) for j in range(8))
               for i in range(4)]
    assert all(matches)
    np.testing.assert_array_equal(student.get_layer("bn").gamma.numpy(),
                                  teacher.get_layer("bn").gamma.numpy()[strongest])


def test_teacher_weights_give_a_head_start(digits):
    x, y = digits
    teacher = small_cnn()
    teacher.compile(keras.optimizers.Adam(1e-2),
                    keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x, y, epochs=5, verbose=0)

    def accuracy(model):
        return np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y)

    warm = distillation.make_student(teacher, width=0.5, weights="teacher")
    cold = distillation.make_student(teacher, width=0.5)
    assert accuracy(warm) > accuracy(cold) + 0.2


def test_teacher_weights_need_layers_channel_pruning_can_cut():
    inputs = keras.Input((8, 8, 4))
    a = L.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = L.Conv2D(4, 3, padding="same", name="b")(a)
    # LayerNormalization mixes every channel it normalizes: none can be removed exactly.
    normalized = L.LayerNormalization()(L.Concatenate()([a, b]))
    model = keras.Model(inputs, L.Dense(2)(L.Flatten()(normalized)))
    assert distillation.make_student(model, width=0.5).get_layer("a").filters == 2
    with pytest.raises(ValueError, match=r"cannot cut .* channel pruning cannot narrow the "
                                         r"layers \['a', 'b'\].*Use weights=None"):
        distillation.make_student(model, width=0.5, weights="teacher")


def test_unknown_weights_are_explained():
    with pytest.raises(ValueError, match=r"weights must be one of \[None, 'teacher'\], got "
                                         "'imagenet'"):
        distillation.make_student(small_cnn(), weights="imagenet")
