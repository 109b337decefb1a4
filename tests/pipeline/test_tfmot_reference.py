"""tfmot's prune + prune-preserving QAT recipe, the pipeline's reference point, on digits."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter

from tests.conftest import compile_model
from tfopt import pipeline
from tfopt.pipeline import _builtin
from tfopt.pipeline import _tfmot_reference

EPOCHS = 2  # one pruning epoch and one QAT epoch: the smallest budget the recipe takes
SPARSITY = 0.8


@pytest.fixture(scope="module")
def cnn(digits_data):
    """The benchmarks' reference CNN at digits size: tfmot's QAT wraps every layer of it.

    (The pipeline tests' small CNN has a BatchNormalization after an activation,
    which tfmot cannot quantize.)
    """
    (x_train, y_train), _ = digits_data
    keras.utils.set_random_seed(0)
    model = compile_model(_builtin.reference_cnn(x_train.shape[1:], 10), lr=3e-3)
    model.fit(x_train, y_train, epochs=4, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def reference(cnn, digits_data, tmp_path_factory):
    weights = [w.copy() for w in cnn.get_weights()]
    train, test = digits_data
    figures = _tfmot_reference.tfmot_recipe(cnn, train, test, EPOCHS,
                                            tmp_path_factory.mktemp("tfmot"), sparsity=SPARSITY)
    return figures, weights


def test_the_int8_file_keeps_the_pruned_zeros(reference):
    figures, _ = reference
    interpreter = Interpreter(model_path=figures["tflite_path"])
    dtypes = {d["index"]: d["dtype"] for d in interpreter.get_tensor_details()}
    ops = interpreter._get_ops_details()  # pylint: disable=protected-access
    weighted = [op for op in ops if op["op_name"] in ("CONV_2D", "FULLY_CONNECTED")]
    assert len(weighted) == 4
    for op in weighted:
        # int8 in, int8 weights, int8 out: the QAT ranges made it an integer model.
        assert [dtypes[i] for i in (*op["inputs"][:2], *op["outputs"])] == [np.int8] * 3
        kernel = interpreter.get_tensor(op["inputs"][1])
        # Each pruned layer ends at the schedule's sparsity; rounding to int8 may add zeros.
        assert SPARSITY - 0.02 <= np.mean(kernel == 0) <= SPARSITY + 0.1, op
    assert SPARSITY - 0.02 <= figures["sparsity"] <= SPARSITY + 0.1


def test_figures_are_measured_on_the_file(reference, cnn, digits_data, tmp_path):
    figures, _ = reference
    _, (x_test, y_test) = digits_data
    assert figures["epochs"] == EPOCHS and figures["pruning_epochs"] == 1
    assert figures["qat_epochs"] == 1
    assert 0 < figures["tflite_gzip_bytes"] < figures["tflite_bytes"]
    float_file = tf.lite.TFLiteConverter.from_keras_model(cnn).convert()
    assert figures["tflite_bytes"] < len(float_file) / 2  # int8 weights, not float32
    assert _tfmot_reference.weight_sparsity(_write(tmp_path / "f.tflite", float_file)) < 0.05
    float_accuracy = np.mean(np.argmax(cnn.predict(x_test, verbose=0), -1) == y_test)
    assert figures["tflite_accuracy"] > float_accuracy - 0.1
    assert abs(figures["tflite_accuracy"] - figures["keras_accuracy"]) < 0.03
    assert 0 < figures["latency_ms"] < 100 and figures["wall_seconds"] > 0


def test_the_float_model_is_left_as_it_was(reference, cnn):
    _, weights = reference
    for before, after in zip(weights, cnn.get_weights()):
        np.testing.assert_array_equal(before, after)


@pytest.mark.parametrize("change, message", [
    (dict(epochs=1), "epochs must be an int >= 2"),
    (dict(epochs=0), "epochs must be an int >= 2"),
    (dict(epochs=2.0), "epochs must be an int >= 2"),
    (dict(epochs=True), "epochs must be an int >= 2"),
    (dict(sparsity=0.0), r"sparsity must be a number in \(0, 1\)"),
    (dict(sparsity=1.0), r"sparsity must be a number in \(0, 1\)"),
    (dict(sparsity=-0.2), r"sparsity must be a number in \(0, 1\)"),
    (dict(sparsity="0.8"), r"sparsity must be a number in \(0, 1\)"),
    (dict(batch_size=0), "batch_size must be an int >= 1"),
    (dict(seed=-1), "seed must be an int >= 0"),
    (dict(train=None), r"train must be \(x, y\) arrays"),
    (dict(train=(np.zeros((4, 28, 28, 1)), np.zeros(4, int))), r"train x has shape"),
    (dict(test=(np.zeros((4, 8, 8, 1)), np.zeros(4))), "test y must be 4 integer class ids"),
])
def test_bad_arguments_are_refused_before_training(cnn, digits_data, tmp_path, change,
                                                   message):
    train, test = digits_data
    arguments = dict(model=cnn, train=train, test=test, epochs=EPOCHS, workdir=tmp_path)
    with pytest.raises(ValueError, match=message):
        _tfmot_reference.tfmot_recipe(**{**arguments, **change})
    assert not list(tmp_path.iterdir())


def test_a_workdir_that_is_not_a_path_is_refused(cnn, digits_data):
    train, test = digits_data
    with pytest.raises(TypeError, match="workdir must be a directory path"):
        _tfmot_reference.tfmot_recipe(cnn, train, test, EPOCHS, workdir=3)


def test_a_model_tfmot_cannot_quantize_is_refused_before_training(float_model, digits_data,
                                                                  tmp_path):
    train, test = digits_data
    with pytest.raises(ValueError, match="tfmot's prune-preserving QAT cannot quantize.*bn"):
        _tfmot_reference.tfmot_recipe(float_model, train, test, EPOCHS, tmp_path)
    assert not list(tmp_path.iterdir())


def _write(path, content):
    path.write_bytes(content)
    return str(path)


def test_a_run_compared_with_tfmot_shows_its_recipe_as_a_reference_point(tmp_path, cnn,
                                                                         digits_data):
    result = pipeline.optimize(cnn, digits_data, tmp_path / "run", recipe="distill,qat",
                               min_steps_per_stage=0, compare_tfmot=True)
    with open(result.report.replace(".md", ".json"), encoding="utf-8") as stream:
        points = json.load(stream)["reference_points"]
    (label, point), = points.items()
    assert label == "tfmot prune 80% + PQAT" and point["epochs"] == 2  # the stages' epochs
    assert 0.75 < point["sparsity"] < 0.85
    assert os.path.isfile(tmp_path / "run" / "reference" / "tfmot"
                          / _tfmot_reference.TFLITE_FILE)
    with open(result.report, encoding="utf-8") as stream:
        assert "`tfmot prune 80% + PQAT`" in stream.read()


def test_a_model_tfmot_cannot_quantize_leaves_the_reference_point_out(tmp_path, digits_data,
                                                                      float_model):
    result = pipeline.optimize(float_model, digits_data, tmp_path / "run", recipe="distill",
                               min_steps_per_stage=0, compare_tfmot=True)  # BatchNormalization
    with open(result.report.replace(".md", ".json"), encoding="utf-8") as stream:
        assert json.load(stream)["reference_points"] == {}
