"""Classify/regress JSON bodies (tfopt/serving/_json_examples.py).

Cases marked "mirrors X" are ported from tensorflow_serving/util/json_tensor_test.cc
test X (ClassifyRegressRequestTest and ClassifyRegressnResultTest).
"""

import json
import math

import numpy as np
import pytest
from tensorflow.core.example import example_pb2

from tfopt.serving import _json_examples as examples
from tfopt.serving import _json_response as response
from tfopt.serving._json_tensor import JsonTensorError


def _features(example):
    """An Example's features as {name: (list kind, [values])}."""
    result = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        result[name] = (kind, list(getattr(feature, kind).value) if kind else [])
    return result


def _same(actual, expected):
    assert actual.keys() == expected.keys()
    for name, (kind, values) in expected.items():
        assert actual[name][0] == kind, name
        for got, want in zip(actual[name][1], values, strict=True):
            assert got == want or (math.isnan(got) and math.isnan(want)), name


@pytest.mark.parametrize("method", ["classify", "regress"])
def test_request_no_context(method):
    # mirrors RequestNoContext
    parsed = examples.parse_examples_request(
        '{"examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0], "age": 20}, '
        '{"names": ["baz"], "ratings": 6.0}]}', method)
    assert parsed.context is None and parsed.signature_name is None
    _same(_features(parsed.examples[0]), {"names": ("bytes_list", [b"foo", b"bar"]),
                                          "ratings": ("float_list", [8.0, 9.0]),
                                          "age": ("int64_list", [20])})
    _same(_features(parsed.examples[1]), {"names": ("bytes_list", [b"baz"]),
                                          "ratings": ("float_list", [6.0])})


def test_request_with_context_and_signature():
    # mirrors RequestWithContextAndSignature, plus an empty list and a float32 cast
    parsed = examples.parse_examples_request(
        '{"signature_name": "custom_signture", "context": {"query": "pizza", "location": ["sfo"]},'
        ' "examples": [{"names": ["foo", "bar"], "ratings": [8.0, 9.0, NaN, Infinity], "age": 20},'
        ' {"names": ["baz", {"b64": "aGVsbG8="}], "ratings": 6.0, "intboolmix": [1, true, false]},'
        ' {"names": "bar", "ratings": -Infinity, "none": [], "big": 1e308}]}')
    assert parsed.signature_name == "custom_signture"
    _same(_features(parsed.context), {"query": ("bytes_list", [b"pizza"]),
                                      "location": ("bytes_list", [b"sfo"])})
    _same(_features(parsed.examples[0]), {
        "names": ("bytes_list", [b"foo", b"bar"]), "age": ("int64_list", [20]),
        "ratings": ("float_list", [8.0, 9.0, float("nan"), float("inf")])})
    _same(_features(parsed.examples[1]), {"names": ("bytes_list", [b"baz", b"hello"]),
                                          "ratings": ("float_list", [6.0]),
                                          "intboolmix": ("int64_list", [1, 1, 0])})
    _same(_features(parsed.examples[2]), {"names": ("bytes_list", [b"bar"]),
                                          "ratings": ("float_list", [float("-inf")]),
                                          "none": (None, []), "big": ("float_list", [math.inf])})


def test_integers_beyond_uint64_are_floats_as_in_rapidjson():
    parsed = examples.parse_examples_request('{"examples": [{"x": [1.5, 18446744073709551616]}]}')
    assert _features(parsed.examples[0]) == {"x": ("float_list", [1.5, 2.0**64])}


def test_serialized_examples_let_example_features_override_the_context():
    parsed = examples.parse_examples_request(
        '{"context": {"q": "ctx", "shared": 1}, "examples": [{"q": "own"}, {"x": 2.5}]}')
    merged = [example_pb2.Example.FromString(data) for data in parsed.serialized()]
    assert _features(merged[0]) == {"q": ("bytes_list", [b"own"]), "shared": ("int64_list", [1])}
    assert _features(merged[1]) == {"q": ("bytes_list", [b"ctx"]), "shared": ("int64_list", [1]),
                                    "x": ("float_list", [2.5])}


@pytest.mark.parametrize("method", ["classify", "regress"])
@pytest.mark.parametrize("body, message", [
    # mirrors JsonErrors
    ('{"signature_name": ["hello"], "examples": [{"names": ["foo", "bar"]}]}',
     "'signature_name' key must be a string value."),
    ('{"context": [{"names": ["foo", "bar"]}]}', "Example must be JSON object but got JSON Array"),
    ('{"examples": {"names": ["foo", "bar"]}}', "Expecting 'examples' value to be an list/array"),
    ('{"examples": [[{"names": ["foo", "bar"]}]]}', "Example must be JSON object but got JSON Array"),
    ('{"examples": [{"names": [10, null]}]}', "Feature: names has element with unexpected JSON "
     "type: Null"),
    ('{"examples": [{"names": [10, 10.0]}]}', "Unexpected element type in feature: names "
     "expecting type: int64"),
    ('{"examples": [{"names": [10, {"test": 10}]}]}', "names has element with unexpected JSON "
     "type: Object"),
    ('{"examples": [{"names": [[10], 20]}]}', "names has element with unexpected JSON type: Array"),
    ('{"examples": [{"names": [20, 18446744073709551603]}]}',
     "Feature: names has uint64_t element. Only int64_t is supported."),
    # the other texts (TF_SERVING.md section 3)
    ('{"signature_name": "s"}', "When method is classify, key 'examples' is expected and was "
     "not found"),
    ('{"examples": []}', "'examples' value is an empty array"),
    ('{"examples": [{"x": ["a", 1.5]}]}', "feature: x expecting type: bytes"),
    ('{"examples": [{"x": [1.5, true]}]}', "feature: x expecting type: float"),
    ('{"examples": [{"x": {"b64": "%%"}}]}', "Unable to base64 decode"),
    ('', "JSON Parse error: The document is empty"),
])
def test_request_errors(body, message, method):
    with pytest.raises(JsonTensorError) as raised:
        examples.parse_examples_request(body, method)
    assert message in raised.value.message


def test_classification_and_regression_results():
    # mirrors JsonFromClassificationResult, JsonFromRegressionResult(WithNonFinite)
    body = response.make_classify_response([[b"car", b"bike", b"bus"]] * 2,
                                           [[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]])
    assert json.loads(body) == {"results": [[["car", 0.2], ["bike", 0.7], ["bus", 0.1]],
                                            [["car", 0.7], ["bike", 0.1], ["bus", 0.2]]]}
    labels, scores = examples.decode_classify_response(body)
    assert labels.tolist() == [[b"car", b"bike", b"bus"]] * 2
    np.testing.assert_array_equal(scores, np.float32([[0.2, 0.7, 0.1], [0.7, 0.1, 0.2]]))
    body = response.make_regress_response([0.2, np.inf, 1.0, -np.inf, np.nan])
    assert body == '{\n    "results": [0.2, Infinity, 1.0, -Infinity, NaN]\n}'
    np.testing.assert_array_equal(examples.decode_regress_response(body),
                                  np.float32([0.2, np.inf, 1.0, -np.inf, np.nan]))


def test_client_examples_reach_the_server_unchanged():
    body = examples.encode_examples_request(
        [{"x": 80.0, "n": 3, "ok": True, "s": "caf\u00e9", "raw": b"\x00\xff", "v": [0.1, 2.0]},
         {"x": np.float32(1.5), "n": np.int64(-4)}], context={"c": [b"ctx"]}, signature_name="r")
    parsed = examples.parse_examples_request(body, "regress")
    assert parsed.signature_name == "r"
    assert _features(parsed.context) == {"c": ("bytes_list", [b"ctx"])}
    _same(_features(parsed.examples[0]), {
        "x": ("float_list", [80.0]), "n": ("int64_list", [3]), "ok": ("int64_list", [1]),
        "s": ("bytes_list", ["caf\u00e9".encode()]), "raw": ("bytes_list", [b"\x00\xff"]),
        "v": ("float_list", [np.float32(0.1), 2.0])})
    _same(_features(parsed.examples[1]), {"x": ("float_list", [1.5]), "n": ("int64_list", [-4])})


@pytest.mark.parametrize("call, error, message", [
    (lambda: examples.encode_examples_request([]), ValueError, "non-empty list"),
    (lambda: examples.encode_examples_request({"x": 1.0}), ValueError, "non-empty list"),
    (lambda: examples.encode_examples_request([{"x": None}]), TypeError, "got None"),
    (lambda: examples.encode_examples_request([{1: 1.0}]), TypeError, "examples[0] must be"),
    (lambda: examples.encode_examples_request([{"x": 1}], context=[1]), TypeError,
     "context must be"),
    (lambda: examples.encode_examples_request([{"x": 1}], signature_name=1), TypeError,
     "signature_name must be"),
    (lambda: examples.parse_examples_request("{}", "predict"), ValueError, "method must be"),
    (lambda: examples.decode_classify_response('{"results": [["car", 0.2]]}'), JsonTensorError,
     "[label, score] pairs"),
    (lambda: examples.decode_regress_response('{"error": "No classification inputs"}'),
     JsonTensorError, "No classification inputs"),
    (lambda: examples.decode_regress_response('{"result": [1.0]}'), JsonTensorError,
     "no 'results' list"),
])
def test_misuse_is_named(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)
