"""Tests of teachers other than the float model: Keras models and TF-Hub-style SavedModels."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.conftest import compile_model
from tests.conftest import small_cnn
from tfopt import pipeline
from tfopt.pipeline import _teacher

OPTIONS = dict(recipe="distill", epochs_per_stage=2, min_steps_per_stage=0, seed=1)


class _Module(tf.Module):
    """A SavedModel with no Keras model in it: logits = the Keras model's, plus `bias`."""

    def __init__(self, model, bias):
        super().__init__()
        self.model = model
        self.bias = tf.Variable(bias, dtype=tf.float32)

    @tf.function(input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
    def __call__(self, x):
        return self.model(x, training=False) + self.bias


def _save_module(directory, model, bias, signature_only=False):
    module = _Module(model, bias)
    signatures = {"serving_default": module.__call__.get_concrete_function()}
    if signature_only:  # no __call__ restored: only the serving signature
        holder = tf.Module()
        holder.bias, holder.model = module.bias, module.model
        tf.saved_model.save(holder, directory, signatures=signatures)
    else:
        tf.saved_model.save(module, directory, signatures=signatures)
    assert not os.path.exists(os.path.join(directory, "keras_metadata.pb"))
    return directory


@pytest.mark.parametrize("signature_only", [False, True])
def test_a_saved_model_teacher_gives_its_functions_outputs_and_lists_its_weights(
        tmp_path, float_model, digits_data, signature_only):
    bias = np.linspace(-1, 1, 10).astype(np.float32)
    path = _save_module(str(tmp_path / "hub"), float_model, bias, signature_only)
    teacher = _teacher.load_teacher(path, (8, 8, 1))
    x = digits_data[1][0][:16]
    np.testing.assert_allclose(teacher.predict(x, verbose=0),
                               float_model.predict(x, verbose=0) + bias, atol=1e-5)
    assert any(np.array_equal(w, bias) for w in teacher.get_weights())
    assert not teacher.trainable_weights
    config = teacher.layers[-1].get_config()
    assert config["path"] == path
    again = _teacher.SavedModelTeacher.from_config(config)  # the config round trip
    np.testing.assert_allclose(again(x).numpy(), teacher.predict(x, verbose=0), atol=1e-5)


def test_the_stages_learn_from_the_given_teacher_not_from_the_float_model(
        tmp_path, float_model, digits_data):
    # A teacher that always answers 0: a student distilled from it (alpha 0.1) says 0 far more.
    always_zero = np.full(10, -20.0, np.float32)
    always_zero[0] = 20.0
    path = _save_module(str(tmp_path / "hub"), keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Lambda(lambda x: tf.zeros((tf.shape(x)[0], 10)))]),
        always_zero)
    teacher = _teacher.load_teacher(path, (8, 8, 1))
    own = pipeline.optimize(float_model, digits_data, tmp_path / "own", **OPTIONS)
    taught = pipeline.optimize(float_model, digits_data, tmp_path / "taught", teacher=teacher,
                               **OPTIONS)
    x_test = digits_data[1][0]

    def zeros(result):
        student = keras.models.load_model(
            os.path.join(result.output_dir, "stages", "01-distill", "model.keras"))
        return np.mean(np.argmax(student.predict(x_test, verbose=0), axis=-1) == 0)

    assert zeros(taught) > 2 * zeros(own) and zeros(taught) > 0.3
    # Agreement is still with the float model, and the run records the teacher.
    assert taught.stages[1]["agreement"] < own.stages[1]["agreement"]
    with open(os.path.join(taught.output_dir, "run.json"), encoding="utf-8") as stream:
        assert "teacher" in json.load(stream)
    with pytest.raises(ValueError, match=r"differs in \['teacher'\]"):
        pipeline.optimize(float_model, digits_data, tmp_path / "taught", **OPTIONS)


def test_a_softmax_float_model_teaches_its_students(tmp_path, digits_data):
    (x, y), _ = digits_data
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, activation="relu"),
                              keras.layers.Flatten(), keras.layers.Dense(10, activation="softmax")])
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    model.fit(x, y, epochs=4, verbose=0)
    result = pipeline.optimize(model, digits_data, tmp_path / "run", recipe="distill,qat",
                               epochs_per_stage=2, min_steps_per_stage=0)
    assert result.stages[-1]["tflite_accuracy"] > 0.7  # ~0.1 if read as logits


@pytest.mark.parametrize("make, message", [
    (lambda: compile_model(keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                             keras.layers.Dense(3)])),
     r"maps \(8, 8, 1\) to \(3,\); the model maps \(8, 8, 1\) to \(10,\)"),
    (lambda: keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                               keras.layers.Dense(10), keras.layers.Lambda(tf.nn.softmax)]),
     "outputs what look like probabilities"),
])
def test_a_teacher_of_another_task_or_with_hidden_probabilities_is_refused(
        tmp_path, float_model, digits_data, make, message):
    with pytest.raises(ValueError, match=message):
        pipeline.optimize(float_model, digits_data, tmp_path / "run", teacher=make(), **OPTIONS)
    assert not os.path.exists(tmp_path / "run")


def test_a_saved_model_without_a_usable_function_is_refused(tmp_path):
    module = tf.Module()
    module.v = tf.Variable(1.0)
    tf.saved_model.save(module, str(tmp_path / "bare"))
    with pytest.raises(ValueError, match="has neither a __call__ function nor a "
                                         "'serving_default' signature"):
        _teacher.load_teacher(str(tmp_path / "bare"), (8, 8, 1))
    with pytest.raises(ValueError, match="neither a model file"):
        _teacher.load_teacher(str(tmp_path), (8, 8, 1))
