"""Misuse of the Distiller and make_student gets an error naming the problem, before training."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfopt import distillation
from tfopt import pruning
from tests.distillation.conftest import mlp

L = keras.layers


def _shares_a_layer(teacher):
    return keras.Sequential([keras.Input((8, 8, 1)), teacher.get_layer("flat"),
                             teacher.get_layer("hidden"), L.Dense(10)])


def _one_unit(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(1)])


@pytest.mark.parametrize("make,error,match", [
    (lambda t: dict(student=mlp(8, 1), temperature=float("inf")), ValueError,
     r"temperature must be a finite number > 0, got inf"),
    (lambda t: dict(student=mlp(8, 1), temperature="4"), ValueError,
     r"temperature must be a finite number > 0, got '4'"),
    (lambda t: dict(student=mlp(8, 1), hint_weight=2.0), ValueError,
     r"hint_weight=2.0 has no effect without hints"),
    (lambda t: dict(student=mlp(8, 1), temprature=2.0), TypeError,
     r"unexpected keyword argument\(s\) \['temprature'\] \(did you mean \['temperature'\]\?\)"),
    (lambda t: dict(student=keras.Sequential([keras.Input((64,)), L.Dense(10)])), ValueError,
     r"teacher takes inputs of shape \(None, 8, 8, 1\) and the student \(None, 64\)"),
    (lambda t: dict(student=_shares_a_layer(t)), ValueError,
     r"student shares 2 trainable weight\(s\) with the teacher .*hidden/kernel"),
], ids=["temperature_inf", "temperature_string", "hint_weight_without_hints", "typo",
        "input_shapes", "shared_weights"])
def test_bad_distiller_arguments_are_explained(teacher, make, error, match):
    with pytest.raises(error, match=match):
        distillation.Distiller(teacher, **make(teacher))


def test_one_output_unit_is_refused():
    # A softmax over one unit is 1 whatever the logit: the soft loss would be 0 forever.
    with pytest.raises(ValueError, match=r"one output unit \(None, 1\).*always be 0.*two output"):
        distillation.Distiller(_one_unit(0), _one_unit(1))


def test_numpy_numbers_are_numbers(teacher):
    d = distillation.Distiller(teacher, mlp(8, 1), temperature=np.int64(2), alpha=np.float32(0.5))
    assert (d.temperature, d.alpha) == (2.0, 0.5)
    assert distillation.make_student(teacher, width=np.float32(0.5)).get_layer("hidden").units == 32


@pytest.mark.parametrize("kwargs,match", [
    (dict(optimizer=None), r"compile needs an optimizer for the student, got None"),
    (dict(optimizer="adamm"), r"optimizer='adamm' is not a Keras optimizer name"),
    (dict(loss="nope"), r"loss='nope' is not a Keras loss name"),
    (dict(loss="sparse_categorical_crossentropy"),
     r"reads the student's outputs as probabilities, but student_outputs='logits'"),
    (dict(loss=keras.losses.SparseCategoricalCrossentropy()),
     r"SparseCategoricalCrossentropy\(from_logits=False\)' reads the student's outputs as "
     r"probabilities.*from_logits=True"),
], ids=["no_optimizer", "unknown_optimizer", "unknown_loss", "loss_name_on_logits",
        "loss_object_on_logits"])
def test_bad_compile_arguments_are_explained(teacher, kwargs, match):
    d = distillation.Distiller(teacher, mlp(8, 1))
    with pytest.raises(ValueError, match=match):
        d.compile(**{"optimizer": "adam", **kwargs})


def _dataset(x, y):
    return tf.data.Dataset.from_tensor_slices((x, y)).batch(8)


@pytest.mark.parametrize("call,match", [
    (lambda d, x, y: d.fit(x, np.eye(10)[y]),
     r"fit: y has shape \(32, 10\).*These look one-hot: pass np.argmax\(y, axis=-1\)"),
    (lambda d, x, y: d.evaluate(x, np.eye(10)[y]), r"evaluate: y has shape \(32, 10\)"),
    (lambda d, x, y: d.fit(_dataset(x, np.eye(10, dtype="float32")[y])),
     r"fit: y has shape \(None, 10\).*one-hot"),
    (lambda d, x, y: d.fit(x, y, validation_data=(x, np.eye(10)[y])),
     r"fit\(validation_data=...\): y has shape \(32, 10\)"),
    (lambda d, x, y: d.fit(x, np.stack([y, y], axis=1)), r"Pass one class index per example"),
    (lambda d, x, y: d.fit(x, y + 10), r"class indices in \[0, 10\).*values from 10 to 19"),
    (lambda d, x, y: d.fit(x, y + 0.5), r"non-integer values such as 0.5"),
    (lambda d, x, y: d.fit(x.reshape(32, 64), y),
     r"fit: x has shape \(32, 64\), but the teacher and student take inputs of shape "
     r"\(None, 8, 8, 1\)"),
    (lambda d, x, y: d.distillation_loss(np.zeros((4, 10)), np.zeros((4, 5))),
     r"same shape, got \(4, 10\) and \(4, 5\)"),
], ids=["one_hot", "evaluate_one_hot", "dataset_one_hot", "validation_one_hot", "two_columns",
        "out_of_range", "fractional", "x_shape", "distillation_loss_shapes"])
def test_bad_data_is_explained_before_training(teacher, digits, call, match):
    x, y = digits[0][:32], digits[1][:32] % 10
    d = distillation.Distiller(teacher, mlp(8, 1))
    d.compile("adam")
    before = [w.copy() for w in d.student.get_weights()]
    with pytest.raises(ValueError, match=match):
        call(d, x, y)
    for a, b in zip(before, d.student.get_weights()):  # refused before any step
        np.testing.assert_array_equal(a, b)


def test_pruned_teacher_must_be_stripped_first():
    pruned = pruning.prune(mlp(16, 0), pruning.OneShot(0.5))
    with pytest.raises(ValueError, match=r"still holds pruning wrappers .*Strip first: "
                                         r"make_student\(tfopt.pruning.strip\(teacher\)\)"):
        distillation.make_student(pruned)
