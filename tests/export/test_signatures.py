"""The signatures of an exported version, read back as TF Serving and its tools read them."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfopt.export._saved_model import saved_model
from tfopt.export._saved_model_bundle import SavedModelBundle

CLASS_NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@pytest.fixture(scope="module")
def digits_version(trained_cnn, digits_split, tmp_path_factory):
    _, (x_test, _) = digits_split
    return saved_model(trained_cnn, tmp_path_factory.mktemp("export") / "digits",
                       signatures=["serving_default", "classify"], warmup_inputs=x_test[:40],
                       class_names=CLASS_NAMES)


def _example(feature, values):
    """A serialized tf.Example with one float feature, built the way a client builds it."""
    return tf.train.Example(features=tf.train.Features(feature={feature: tf.train.Feature(
        float_list=tf.train.FloatList(value=np.ravel(values)))})).SerializeToString()


def test_signature_names_methods_keys_and_dtypes(digits_version, trained_cnn):
    with SavedModelBundle(digits_version) as bundle:
        signatures = bundle.signatures
    assert {"serving_default", "classify"} <= set(signatures)
    predict, classify = signatures["serving_default"], signatures["classify"]
    assert predict.method_name == "tensorflow/serving/predict"
    assert classify.method_name == "tensorflow/serving/classify"

    (name,) = trained_cnn.input_names
    assert list(predict.inputs) == [name]
    assert predict.inputs[name].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in predict.inputs[name].tensor_shape.dim] == [-1, 8, 8, 1]
    assert list(predict.outputs) == trained_cnn.output_names
    output = predict.outputs[trained_cnn.output_names[0]]
    assert [d.size for d in output.tensor_shape.dim] == [-1, 10]

    assert list(classify.inputs) == ["inputs"]
    assert classify.inputs["inputs"].dtype == tf.string.as_datatype_enum
    assert [d.size for d in classify.inputs["inputs"].tensor_shape.dim] == [-1]
    assert sorted(classify.outputs) == ["classes", "scores"]
    assert classify.outputs["classes"].dtype == tf.string.as_datatype_enum
    assert classify.outputs["scores"].dtype == tf.float32.as_datatype_enum
    assert [d.size for d in classify.outputs["scores"].tensor_shape.dim] == [-1, 10]


def test_classify_answers_probabilities_for_serialized_examples(digits_version, trained_cnn,
                                                               digits_split):
    _, (x_test, _) = digits_split
    x = x_test[:25]
    requests = np.array([_example(trained_cnn.input_names[0], row) for row in x], dtype=object)
    with SavedModelBundle(digits_version) as bundle:
        result = bundle.run("classify", {"inputs": requests})
    logits = trained_cnn.predict(x, verbose=0)
    assert result["classes"].shape == (25, 10)
    assert (result["classes"].astype(str) == np.array(CLASS_NAMES)).all()
    assert result["scores"].sum(axis=1) == pytest.approx(np.ones(25), abs=1e-5)
    assert (np.argmax(result["scores"], axis=1) == np.argmax(logits, axis=1)).all()
    assert result["scores"] == pytest.approx(tf.nn.softmax(logits).numpy(), abs=1e-5)


def test_saved_model_cli_lists_both_signatures(digits_version, trained_cnn):
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", digits_version, "--all"], check=True,
                           capture_output=True, text=True,
                           env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")).stdout
    classify = shown[shown.index("signature_def['classify']"):]
    predict = shown[shown.index("signature_def['serving_default']"):]
    assert ("inputs['inputs'] tensor_info:\n        dtype: DT_STRING\n        shape: (-1)"
            in classify)
    assert "outputs['classes']" in classify and "outputs['scores']" in classify
    assert "Method name is: tensorflow/serving/classify" in classify
    assert (f"inputs['{trained_cnn.input_names[0]}'] tensor_info:\n        dtype: DT_FLOAT\n"
            "        shape: (-1, 8, 8, 1)") in predict
    assert (f"outputs['{trained_cnn.output_names[0]}'] tensor_info:\n        dtype: DT_FLOAT\n"
            "        shape: (-1, 10)") in predict
    assert "Method name is: tensorflow/serving/predict" in predict


def _two_in_two_out(dict_inputs):
    keras.utils.set_random_seed(0)
    image, meta = keras.Input((8, 8, 1), name="image"), keras.Input((3,), name="meta")
    hidden = keras.layers.Concatenate()([keras.layers.Flatten()(
        keras.layers.Conv2D(4, 3, activation="relu")(image)), meta])
    outputs = [keras.layers.Dense(10, name="digit")(hidden),
               keras.layers.Dense(1, name="size")(hidden)]
    return keras.Model({"pixels": image, "extra": meta} if dict_inputs else [image, meta],
                       outputs)


@pytest.mark.parametrize("dict_inputs", [False, True])
def test_multi_input_multi_output_models_serve_by_layer_name(dict_inputs, tmp_path):
    model = _two_in_two_out(dict_inputs)
    rng = np.random.default_rng(1)
    image = rng.normal(size=(6, 8, 8, 1)).astype("float32")
    meta = rng.normal(size=(6, 3)).astype("float32")
    given = {"pixels": image, "extra": meta} if dict_inputs else [image, meta]
    version = saved_model(model, tmp_path / "m", warmup_inputs=given)
    with SavedModelBundle(version) as bundle:
        signature = bundle.signatures["serving_default"]
        outputs = bundle.run("serving_default", {"image": image, "meta": meta})
    assert sorted(signature.inputs) == ["image", "meta"]
    assert sorted(signature.outputs) == ["digit", "size"]
    expected = model.predict(given, verbose=0)
    assert outputs["digit"] == pytest.approx(expected[0], abs=1e-5)
    assert outputs["size"] == pytest.approx(expected[1], abs=1e-5)


def test_classify_of_a_softmax_model_keeps_its_probabilities(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,), name="features"),
                              keras.layers.Dense(3, activation="softmax", name="probs")])
    version = saved_model(model, tmp_path / "m", signatures="classify")
    x = np.random.default_rng(2).normal(size=(5, 4)).astype("float32")
    with SavedModelBundle(version) as bundle:
        result = bundle.run("classify", {"inputs": [_example("features", row) for row in x]})
    assert result["scores"] == pytest.approx(model.predict(x, verbose=0), abs=1e-6)
    assert (result["classes"].astype(str) == ["0", "1", "2"]).all()


def test_classify_of_a_sigmoid_unit_reports_both_classes(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,), name="features"),
                              keras.layers.Dense(1, activation="sigmoid")])
    version = saved_model(model, tmp_path / "m", signatures="classify",
                          class_names=["no", "yes"])
    x = np.random.default_rng(3).normal(size=(5, 4)).astype("float32")
    with SavedModelBundle(version) as bundle:
        result = bundle.run("classify", {"inputs": [_example("features", row) for row in x]})
    p = model.predict(x, verbose=0)
    assert result["scores"] == pytest.approx(np.concatenate([1 - p, p], axis=1), abs=1e-6)
    assert (result["classes"].astype(str) == ["no", "yes"]).all()


def test_classify_reads_a_feature_spec_of_its_own(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((2, 2), name="grid"), keras.layers.Flatten(),
                              keras.layers.Dense(3)])
    version = saved_model(model, tmp_path / "m", signatures="classify",
                          feature_spec={"pixels": tf.io.FixedLenFeature([4], tf.float32)})
    x = np.random.default_rng(4).normal(size=(3, 2, 2)).astype("float32")
    with SavedModelBundle(version) as bundle:
        result = bundle.run("classify", {"inputs": [_example("pixels", row) for row in x]})
        with pytest.raises(tf.errors.InvalidArgumentError, match="pixels"):
            bundle.run("classify", {"inputs": [_example("grid", row) for row in x]})
    assert result["scores"] == pytest.approx(
        tf.nn.softmax(model.predict(x, verbose=0)).numpy(), abs=1e-6)
