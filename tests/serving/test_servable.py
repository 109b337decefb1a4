"""Servable: half_plus_two run as TF Serving runs it, with TF Serving's errors."""

import os
import threading

import grpc
import numpy as np
import pytest

from tests.serving import half_plus_two
from tfopt.serving import _loader
from tfopt.serving import _servable
from tfopt.serving._errors import ServingError

INVALID = grpc.StatusCode.INVALID_ARGUMENT
PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture(scope="module")
def servable(half_plus_two_base):
    return _loader.load("half_plus_two", 123, os.path.join(half_plus_two_base, "123"))


@pytest.mark.parametrize("x", [
    [[1.0], [2.0]],
    [1.0, 2.0],               # TF Serving feeds shapes outside the signature's [-1, 1]
    [[1.0, 2.0], [3.0, 4.0]],
])
def test_predict_half_plus_two(servable, x):
    x = np.array(x, np.float32)
    name, outputs = servable.predict({"x": x})
    assert name == "serving_default"
    np.testing.assert_array_equal(outputs["y"], 0.5 * x + 2)


def test_predict_output_filter_and_named_signature(servable):
    name, outputs = servable.predict({"x": np.ones((1, 1), np.float32)}, "serving_default", ["y"])
    assert name == "serving_default" and list(outputs) == ["y"]


@pytest.mark.parametrize("inputs, signature, output_filter, code, message", [
    ({"x": [[1.0]]}, "nope", (), PRECONDITION, 'Serving signature key "nope" not found.'),
    ({}, "", (), INVALID, "input size does not match signature: 0!=1 len({}) != len({x}). "
     "Sent extra: {}. Missing but required: {x}."),
    ({"x": [[1.0]], "z": [[1.0]]}, "", (), INVALID, "input size does not match signature: "
     "2!=1 len({x,z}) != len({x}). Sent extra: {z}. Missing but required: {}."),
    # saved_model::GetInputValues (tensorflow/cc/saved_model/util.cc).
    ({"z": [[1.0]]}, "", (), INVALID, "Signature input alias: x(feed name: x:0) not found in "
     "request and no default value provided. Inputs expected to be in the request {z}, or "
     "default input alias set: "),
    ({"x": np.array([["a"]])}, "", (), INVALID,
     "Expects arg[0] to be float but string is provided"),
    ({"x": np.array([[1.0]])}, "", (), INVALID,
     "Expects arg[0] to be float but double is provided"),
    ({"x": [[1.0]]}, "", ("z",), INVALID,
     "output tensor alias not found in signature: z Outputs expected to be in the set {y}."),
    ({"x": [[1.0]]}, "", ("y", "y"), INVALID, "duplicate output tensor alias: y"),
    # predict_util.cc checks the output filter before Session::Run checks dtypes.
    ({"x": np.array([["a"]])}, "", ("z",), INVALID,
     "output tensor alias not found in signature: z Outputs expected to be in the set {y}."),
])
def test_predict_errors(servable, inputs, signature, output_filter, code, message):
    inputs = {k: np.asarray(v, np.float32) if isinstance(v, list) else v
              for k, v in inputs.items()}
    with pytest.raises(ServingError) as raised:
        servable.predict(inputs, signature, output_filter)
    assert (raised.value.code, raised.value.message) == (code, message)


def _signature_with_default():
    from tensorflow.core.protobuf import meta_graph_pb2  # pylint: disable=import-outside-toplevel

    signature = meta_graph_pb2.SignatureDef()
    signature.inputs["a"].name = "a:0"
    signature.inputs["b"].name = "b:0"
    signature.defaults["b"].dtype = 1
    return signature


@pytest.mark.parametrize("names, message", [
    (["a", "z"], "Inputs contains invalid name. Used request inputs: a, request input: a,z"),
    (["z"], "Signature input alias: a(feed name: a:0) not found in request and no default "
     "value provided. Inputs expected to be in the request {z}, or default input alias set: b"),
])
def test_input_names_checked_as_get_input_values(names, message):
    # saved_model::GetInputValues (tensorflow/cc/saved_model/util.cc): reachable past the
    # size check only when the signature has defaults.
    with pytest.raises(ServingError) as raised:
        _servable._validate_input_names(_signature_with_default(), dict.fromkeys(names))
    assert (raised.value.code, raised.value.message) == (INVALID, message)


def test_classify_and_regress(servable):
    examples = [half_plus_two.example(1.0), half_plus_two.example(3.0)]
    name, classes, scores = servable.classify(examples, "classify_x_to_y")
    assert name == "classify_x_to_y" and classes is None
    np.testing.assert_array_equal(scores, [[2.5], [3.5]])
    name, values = servable.regress(examples, "regress_x_to_y")
    assert name == "regress_x_to_y"
    np.testing.assert_array_equal(values, [2.5, 3.5])
    np.testing.assert_array_equal(servable.regress(examples, "regress_x_to_y2")[1], [3.5, 4.5])


@pytest.mark.parametrize("method, examples, signature, code, message", [
    ("classify", [b""], "nope", INVALID, "No signature was found with the name: nope"),
    ("regress", [b""], "nope", INVALID, "No signature was found with the name: nope"),
    # classifier.cc / regressor.cc: INVALID_ARGUMENT, not FAILED_PRECONDITION.
    ("classify", [b""], "", INVALID, "No classification inputs found in SignatureDef: "),
    ("regress", [b""], "", INVALID, "No regression inputs found in SignatureDef: "),
    ("regress", [b""], "classify_x_to_y", INVALID,
     "No regression outputs found in SignatureDef: "),
    ("classify", [b""], "regress_x_to_y", INVALID,
     'Expected classification signature outputs to contain at least one of "classes" or '
     '"scores". Signature was: '),
    ("classify", [], "classify_x_to_y", INVALID, "Input is empty."),
    ("regress", [], "regress_x_to_y", INVALID, "Input is empty."),
    ("regress", [b""], "regress_x_to_y", INVALID,
     "Name: <unknown>, Feature: x (data type: float) is required but could not be found."),
])
def test_classify_regress_errors(servable, method, examples, signature, code, message):
    with pytest.raises(ServingError) as raised:
        getattr(servable, method)(examples, signature)
    assert raised.value.code == code
    assert raised.value.message.startswith(message)


def test_concurrent_predict_from_8_threads(servable):
    rng = np.random.default_rng(0)
    batches = [rng.normal(size=(int(rng.integers(1, 6)), 1)).astype(np.float32)
               for _ in range(8 * 25)]
    results = [None] * len(batches)

    def work(start):
        for i in range(start, len(batches), 8):
            results[i] = servable.predict({"x": batches[i]})[1]["y"]

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for x, y in zip(batches, results):
        np.testing.assert_array_equal(y, 0.5 * x + 2)


def test_metadata_lists_every_signature(servable):
    assert sorted(servable.metadata().signature_def) == [
        "classify_x_to_y", "regress_x_to_y", "regress_x_to_y2", "serving_default"]
    assert servable.metadata().signature_def["serving_default"].inputs["x"].name == "x:0"
