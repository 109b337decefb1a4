"""make_student: the same widths and teacher start on tf-keras and Keras 3 teachers."""

import keras
import numpy as np
import pytest
import tf_keras

from tests.keras3 import twin_models
from tests.keras3.distillation.conftest import APIS
from tests.keras3.distillation.conftest import small_cnn
from tfopt import distillation as tf_keras_distillation
from tfopt.keras3 import _clone
from tfopt.keras3 import distillation


def _widths(model):
    return {layer.name: getattr(layer, "filters", getattr(layer, "units", None))
            for layer in model.layers}


@pytest.mark.parametrize("version", APIS)
def test_hidden_layers_narrow_and_the_output_keeps_its_width(version):
    k, package = APIS[version]
    teacher = small_cnn(k)
    student = package.make_student(teacher, width=0.5)
    assert _widths(student) == {"conv_a": 4, "bn": None, "conv_b": 4, "flatten": None,
                                "hidden": 8, "logits": 10}
    assert student.outputs[0].shape[1:] == teacher.outputs[0].shape[1:]
    assert student.count_params() < 0.5 * teacher.count_params()
    # Fresh weights: the student does not start as a copy of the teacher.
    assert not np.allclose(student.get_layer("logits").get_weights()[0][:4],
                           teacher.get_layer("logits").get_weights()[0][:4])


@pytest.mark.parametrize("version", APIS)
def test_teacher_weights_keep_the_strongest_units(version):
    k, package = APIS[version]
    teacher = small_cnn(k)
    student = package.make_student(teacher, width=0.5, weights="teacher")
    kernel, gamma = (teacher.get_layer(name).get_weights()[0] for name in ("conv_a", "bn"))
    strongest = np.sort(np.argsort(-np.abs(kernel).sum(axis=(0, 1, 2)))[:4])
    np.testing.assert_array_equal(student.get_layer("conv_a").get_weights()[0],
                                  kernel[..., strongest])
    np.testing.assert_array_equal(student.get_layer("bn").get_weights()[0], gamma[strongest])
    # conv_b reads only conv_a's kept channels and keeps 4 of its own 8 filters.
    kept_b = student.get_layer("conv_b").get_weights()[0]
    teacher_b = teacher.get_layer("conv_b").get_weights()[0][:, :, strongest, :]
    assert kept_b.shape == (3, 3, 4, 4)
    assert all(any(np.array_equal(kept_b[..., i], teacher_b[..., j]) for j in range(8))
               for i in range(4))
    # hidden reads the kept channels at every flattened position.
    hidden = student.get_layer("hidden").get_weights()[0]
    assert hidden.shape == (4 * 4 * 4, 8)


@pytest.mark.parametrize("weights", [None, "teacher"])
@pytest.mark.parametrize("architecture", twin_models.ARCHITECTURES,
                         ids=[a.__name__ for a in twin_models.ARCHITECTURES])
def test_keras3_students_equal_tf_keras_students(architecture, weights):
    """One width plan for both; Keras 3's teacher start equals tf-keras' prune and shrink."""
    teachers = architecture(tf_keras), architecture(keras)
    teachers[1].set_weights(teachers[0].get_weights())
    students = (tf_keras_distillation.make_student(teachers[0], 0.5, weights=weights),
                distillation.make_student(teachers[1], 0.5, weights=weights))
    layers = [{layer.name: layer.get_weights() for layer in _clone.all_layers(student)
               if layer.weights} for student in students]
    assert {name: [w.shape for w in ws] for name, ws in layers[0].items()} == \
        {name: [w.shape for w in ws] for name, ws in layers[1].items()}
    teacher = {layer.name: layer.get_weights()[0].shape
               for layer in _clone.all_layers(teachers[1]) if layer.weights}
    assert any(values[0].shape != teacher[name] for name, values in layers[1].items())
    if weights == "teacher":
        for name, values in layers[0].items():
            for tf_keras_value, keras3_value in zip(values, layers[1][name]):
                np.testing.assert_array_equal(keras3_value, tf_keras_value, err_msg=name)


@pytest.mark.parametrize("version", APIS)
def test_teacher_weights_give_a_head_start(version, teachers, digits):
    k, package = APIS[version]
    x, y = digits
    teacher = teachers(version)

    def accuracy(model):
        return np.mean(np.argmax(model.predict(x, verbose=0), axis=1) == y)

    warm = package.make_student(teacher, width=0.5, weights="teacher")
    cold = package.make_student(teacher, width=0.5)
    assert accuracy(warm) > accuracy(cold) + 0.2


@pytest.mark.parametrize("version", APIS)
def test_teacher_weights_refuse_layers_that_mix_the_narrowed_channels(version):
    k, package = APIS[version]
    inputs = k.Input((8, 8, 4))
    a = k.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = k.layers.Conv2D(4, 3, padding="same", name="b")(a)
    # LayerNormalization mixes every channel it normalizes: none can be removed exactly.
    normalized = k.layers.LayerNormalization()(k.layers.Concatenate()([a, b]))
    model = k.Model(inputs, k.layers.Dense(2)(k.layers.Flatten()(normalized)))
    assert package.make_student(model, width=0.5).get_layer("a").filters == 2
    with pytest.raises(ValueError, match=r"cannot cut .*\['a', 'b'\].*Use weights=None"):
        package.make_student(model, width=0.5, weights="teacher")


@pytest.mark.parametrize("version", APIS)
@pytest.mark.parametrize("kwargs, match", [
    (dict(width=0), r"width must be in \(0, 1\], got 0"),
    (dict(width=True), r"width must be in \(0, 1\], got True"),
    (dict(weights="imagenet"), r"weights must be one of \[None, 'teacher'\], got 'imagenet'"),
])
def test_bad_arguments_are_explained(version, kwargs, match):
    k, package = APIS[version]
    with pytest.raises(ValueError, match=match):
        package.make_student(small_cnn(k), **kwargs)


@pytest.mark.parametrize("weights", [None, "teacher"])
def test_nested_models_and_raw_op_residuals_narrow_consistently(weights):
    inner = keras.Sequential([keras.Input((8, 8, 4)), keras.layers.Conv2D(8, 3, name="c")],
                             name="inner")
    inputs = keras.Input((8, 8, 1))
    stem = keras.layers.Conv2D(4, 1, name="stem")(inputs)
    branch = keras.layers.Conv2D(4, 1, name="branch")(stem)
    x = inner(keras.ops.add(stem, branch))  # a raw op: an Operation node, not a layer
    outputs = keras.layers.Dense(3, name="logits")(keras.layers.Flatten()(x))
    teacher = keras.Model(inputs, outputs)
    student = distillation.make_student(teacher, width=0.5, weights=weights)
    nested = student.get_layer("inner")
    assert tuple(nested.inputs[0].shape) == (None, 8, 8, 2)
    assert nested.get_layer("c").filters == 4
    assert (student.get_layer("stem").filters, student.get_layer("branch").filters) == (2, 2)
    assert student(np.zeros((1, 8, 8, 1), "float32")).shape == (1, 3)
    if weights == "teacher":  # the residual's two layers keep the same channels
        stem_kernel = teacher.get_layer("stem").get_weights()[0]
        branch_kernel = teacher.get_layer("branch").get_weights()[0]
        # The stem leads the residual group: its strongest channels are kept on both sides.
        kept = np.sort(np.argsort(-np.abs(stem_kernel).sum(axis=(0, 1, 2)))[:2])
        np.testing.assert_array_equal(student.get_layer("stem").get_weights()[0],
                                      stem_kernel[..., kept])
        np.testing.assert_array_equal(student.get_layer("branch").get_weights()[0],
                                      branch_kernel[:, :, kept][..., kept])
        np.testing.assert_array_equal(nested.get_layer("c").get_weights()[0].shape, (3, 3, 2, 4))


def test_pruned_teachers_and_tf_keras_teachers_are_refused():
    from tfopt.keras3.pruning import _objects
    from tfopt.keras3.pruning import _prune
    pruned = _prune.prune(small_cnn(keras), _objects.ConstantSparsity(0.5, begin_step=0))
    with pytest.raises(ValueError, match=r"still has pruned layers .*tfopt\.keras3\.pruning\."
                                         r"strip\(teacher\)"):
        distillation.make_student(pruned)
    with pytest.raises(ValueError, match=r"for tf_keras models use "
                                         r"tfopt\.distillation\.make_student"):
        distillation.make_student(small_cnn(tf_keras))
