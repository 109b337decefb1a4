"""TF Serving's REST JSON tensor format (tfopt/serving/_json_*.py).

Cases marked "mirrors X" are ported from tensorflow_serving/util/json_tensor_test.cc
test X; the others come from TF Serving's REST handler tests and docs as quoted
in the project's TF Serving notes.
"""

import json
import math

import numpy as np
import pytest

from tfopt.serving import _json_client as client
from tfopt.serving import _json_request as request
from tfopt.serving import _json_response as response
from tfopt.serving._json_tensor import JsonTensorError
from tfopt.serving._json_writer import debug_string, format_decimal, format_double

I32, I64, F32, F64, STR = "DT_INT32", "DT_INT64", "DT_FLOAT", "DT_DOUBLE", "DT_STRING"
MULTI = {"int_tensor": I32, "str_tensor": STR, "float_tensor": F32, "dbl_tensor": F64}


def _as_strings(text):
    """A JSON text with every number kept as its literal (CompareJsonAllValuesAsStrings)."""
    return json.loads(text, parse_float=str, parse_int=str, parse_constant=str)


@pytest.mark.parametrize("body, inputs, form, expected", [
    # mirrors SingleUnnamedTensor
    ('{"instances": [[1,2],[3,4],[5,6]]}', {"default": I32}, "row",
     {"default": np.array([[1, 2], [3, 4], [5, 6]], np.int32)}),
    # mirrors MixedInputForFloatTensor
    ('{"instances": [1, 2.0, 3, 4, 5.003, 0.007, 0.0]}', {"default": F32}, "row",
     {"default": np.array([1, 2, 3, 4, 5.003, 0.007, 0], np.float32)}),
    # mirrors MixedInputForDoubleTensor
    ('{"instances": [1.0, 2, 3, 4, 0.662, 0, 0.0]}', {"default": F64}, "row",
     {"default": np.array([1, 2, 3, 4, 0.662, 0, 0], np.float64)}),
    # mirrors FloatTensorWithPrecisionLoss (and TF_SERVING.md: 1435774380 -> 1435774336)
    ('{"instances": [1435774380, 1435774380.0]}', {"default": F32}, "row",
     {"default": np.array([1435774336, 1435774336], np.float32)}),
    # mirrors FloatTensorThatExceedsMaxReturnsInf / ExceedsMinReturnsZero
    ('{"instances": [1.7976931348623157e+308, -1.7976931348623157e+308, 1e308, 2.2e-308]}',
     {"default": F32}, "row", {"default": np.array([np.inf, -np.inf, np.inf, 0], np.float32)}),
    # mirrors SingleUnnamedTensorWithSignature (signature checked below)
    ('{"signature_name": "predict_images", "instances": [[1,2]]}', {"default": I32}, "row",
     {"default": np.array([[1, 2]], np.int32)}),
    # mirrors TensorFromNonNullTerminatedBuffer: rapidjson stops after the root value
    ('{"instances": [[1,2],[3,4],[5,6]]}X', {"default": I32}, "row",
     {"default": np.array([[1, 2], [3, 4], [5, 6]], np.int32)}),
    # mirrors SingleUnnamedTensorBase64Scalars / Base64Lists / SingleNamedTensorBase64
    ('{"instances": [{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}]}', {"default": STR}, "row",
     {"default": np.array([b"hello", b"world"], object)}),
    ('{"instances": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}', {"default": STR}, "row",
     {"default": np.array([[b"hello"], [b"world"]], object)}),
    ('{"instances": [{"default": [[{"b64": "aGVsbG8="}], [{"b64": "d29ybGQ="}]]}]}',
     {"default": STR}, "row", {"default": np.array([[[b"hello"], [b"world"]]], object)}),
    # mirrors MultipleNamedTensor
    ('{"instances": [{"int_tensor": [[1,2],[3,4],[5,6]], "str_tensor": ["foo", "bar"], '
     '"float_tensor": [1.0, NaN], "dbl_tensor": [NaN]}, {"int_tensor": [[7,8],[9,0],[1,2]], '
     '"str_tensor": ["baz", "bat"], "float_tensor": [2.0, Infinity], "dbl_tensor": [2.0]}]}',
     MULTI, "row",
     {"int_tensor": np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32),
      "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], object),
      "float_tensor": np.array([[1, np.nan], [2, np.inf]], np.float32),
      "dbl_tensor": np.array([[np.nan], [2]], np.float64)}),
    # mirrors SingleUnnamedTensorColumnarFormat (named and unnamed)
    ('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]]}}', {"int_tensor": I32}, "columnar",
     {"int_tensor": np.array([[[1, 2], [3, 4], [5, 6]]], np.int32)}),
    ('{"inputs": [[[1,2],[3,4],[5,6]]]}', {"int_tensor": I32}, "columnar",
     {"int_tensor": np.array([[[1, 2], [3, 4], [5, 6]]], np.int32)}),
    # mirrors MultipleNamedTensorColumnarFormat: each input its own shape, a bare b64 is rank 0
    ('{"inputs": {"int_tensor": [[[1,2],[3,4],[5,6]]], "str_tensor": ["foo", "bar"], '
     '"bin_tensor": {"b64": "aGVsbG8="}}}', {"int_tensor": I32, "str_tensor": STR,
                                             "bin_tensor": STR}, "columnar",
     {"int_tensor": np.array([[[1, 2], [3, 4], [5, 6]]], np.int32),
      "str_tensor": np.array([b"foo", b"bar"], object), "bin_tensor": np.array(b"hello", object)}),
    # TF_SERVING.md: half_plus_two's [-1, 1] signature shape is not enforced
    ('{"instances": [1.0, 2.0]}', {"x": F32}, "row", {"x": np.array([1, 2], np.float32)}),
    ('{"instances": [[1,2],[3,4]]}', {"x": F32}, "row",
     {"x": np.array([[1, 2], [3, 4]], np.float32)}),
    # rapidjson's extra words (kParseNanAndInfFlag), a scalar input, other keys ignored
    ('{"inputs": [Inf, -Inf, -Infinity, -NaN], "other": 1}', {"x": F32}, "columnar",
     {"x": np.array([np.inf, -np.inf, -np.inf, np.nan], np.float32)}),
    ('{"inputs": 3}', {"x": I64}, "columnar", {"x": np.array(3, np.int64)}),
    ('{"inputs": {"x": true}}', {"x": "DT_BOOL"}, "columnar", {"x": np.array(True)}),
    ('{"instances": [[4294967295, 0]]}', {"x": "DT_UINT32"}, "row",
     {"x": np.array([[4294967295, 0]], np.uint32)}),
    ('{"instances": [300, -1]}', {"x": "DT_UINT8"}, "row", {"x": np.array([44, 255], np.uint8)}),
    ('{"instances": [[]]}', {"x": F32}, "row", {"x": np.zeros((1, 0), np.float32)}),
    # integers past uint64 are doubles in rapidjson
    ('{"inputs": [18446744073709551616, -9223372036854775809]}', {"x": F64}, "columnar",
     {"x": np.array([2.0**64, -(2.0**63)], np.float64)}),
])
def test_parse_predict_request(body, inputs, form, expected):
    parsed = request.parse_predict_request(body.encode(), inputs)
    assert parsed.form == form
    assert sorted(parsed.inputs) == sorted(expected)
    for name, want in expected.items():
        got = parsed.inputs[name]
        assert got.dtype == want.dtype and got.shape == want.shape
        if want.dtype == object:
            assert got.tolist() == want.tolist()
        else:
            np.testing.assert_array_equal(got, want)


def test_inf_word_inside_a_string_is_not_replaced():
    parsed = request.parse_predict_request('{"inputs": ["Inf", "-NaN x"]}', {"s": STR})
    assert parsed.inputs["s"].tolist() == [b"Inf", b"-NaN x"]


def test_signature_name_and_callable_lookup():
    seen = []

    def lookup(name):
        seen.append(name)
        return {"default": I32}

    parsed = request.parse_predict_request(
        '{"signature_name": "predict_images", "instances": [[1,2]]}', lookup)
    assert parsed.signature_name == "predict_images" and seen == ["predict_images"]
    assert request.parse_predict_request('{"instances": [1]}', lookup).signature_name is None


def test_deeply_nested_documents_read_as_rapidjson_reads_them():
    # mirrors DeeplyNestedWellFormed and DeeplyNestedMalformed; they send 500000 brackets,
    # 50000 take the same path (past Python's recursion limit) in a tenth of the time.
    deep = "[" * 50000 + "]" * 50000
    body = '{"instances":[1], "nested":' + deep + "}"
    assert request.parse_predict_request(body, {"default": I32}).inputs["default"].tolist() == [1]
    with pytest.raises(JsonTensorError, match="key must be a string value"):
        request.parse_predict_request('{"signature_name":' + deep + "}", {"default": I32})
    with pytest.raises(JsonTensorError, match="rank 5000; at most 63 dimensions"):
        request.parse_predict_request('{"inputs":' + "[" * 5000 + "1" + "]" * 5000 + "}",
                                      {"default": I32})


@pytest.mark.parametrize("body, offset", [
    ('{"a": ' + "[" * 5000 + "1 2" + "]" * 5000 + "}", 5007),
    ('{"a": ' + "[" * 5000 + "]" * 4999 + "}", 10005),
])
def test_deeply_nested_malformed_json_is_a_parse_error(body, offset):
    with pytest.raises(JsonTensorError) as raised:
        request.parse_predict_request(body, {"x": I32})
    assert raised.value.message == f"JSON Parse error: Invalid value. at offset: {offset}"


@pytest.mark.parametrize("body, inputs, message", [
    # mirrors SingleUnnamedTensorErrors
    ("", {"x": I32}, "JSON Parse error: The document is empty"),
    ('{"signature_name": 5, "instances": [[1,2],[3,4],[5,6,7]]}', {"x": I32},
     "not formatted correctly. 'signature_name' key must be a string value."),
    ('{"instances": [[1,2]], "inputs": [[1,2]]}', {"x": I32},
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys to exist "),
    ('{"instances": [[1,2],[3,4],[5,6,7]]}', {"x": I32},
     "Failed to process element: 2 of 'instances' list. Error: INVALID_ARGUMENT: "
     "Expecting tensor size: 2 but got: 3"),
    ('{"instances": [[1,2],[3,4],[[5,6]]]}', {"x": I32}, "Expecting shape [2] but got: [1,2]"),
    ('{"instances": [1, [1]]}', {"x": I32}, "Expecting shape [] but got: [1]"),
    ('{"instances": [[1,2],["a", "b"]]}', {"x": I32},
     'JSON Value: "a" Type: String is not of expected type: int32'),
    # mirrors MultipleNamedTensorErrors
    ('{"instances": [{"i": [[1,2]], "s": ["a"]}, {"i": [[[7,8]]], "s": ["b"]}]}',
     {"i": I32, "s": STR}, "Expecting shape [1,2] but got: [1,1,2]"),
    ('{"instances": [{"i": [[1,2],[3,4]], "s": ["a"]}, {"i": [[7,8]], "s": ["b"]}]}',
     {"i": I32, "s": STR}, "Expecting tensor size: 4 but got: 2"),
    ('{"instances": [{"i": [1], "s": ["a"]}, [1, 20, 30]]}', {"i": I32, "s": STR},
     "Expecting object but got list at item 1 of input list"),
    ('{"instances": [["baz", "bar"], {"s": ["baz", "bat"]}]}', {"s": STR},
     "Expecting value/list but got object at item 1 of input list"),
    # the other texts of FillPredictRequestFromJson
    ("  \n ", {"x": I32}, "JSON Parse error: The document is empty. at offset: 4"),
    ("{", {"x": I32}, "JSON Parse error: Missing a name for object member."),
    ('{"instances": [1 2]}', {"x": I32}, "Missing a comma or ']' after an array element."),
    ('{"instances": [1] "a": 2}', {"x": I32}, "Missing a comma or '}' after an object member."),
    ("nonsense", {"x": I32}, "JSON Parse error: Invalid value. at offset: 0"),
    ('{"instances": [1e400]}', {"x": F32}, "Number too big to be stored in double."),
    ('{"instances": [1%s]}' % ("0" * 400), {"x": F32}, "Number too big to be stored in double."),
    ('{"instances": [1%s]}' % ("0" * 5000), {"x": F32}, "Number too big to be stored in double."),
    ("[1, 2]", {"x": I32}, "JSON Value: [1, 2] Is not object"),
    ('{"instances": [1]}', {}, "Failed to get input map for signature: DEFAULT"),
    ('{"instances": {"a": 1}}', {"x": I32}, "Expecting 'instances' to be an list/array"),
    ('{"instances": []}', {"x": I32}, "No values in 'instances' array"),
    ('{"signature_name": "s"}', {"x": I32}, "Missing 'inputs' or 'instances' key"),
    ('{"instances": [{"x": 1, "z": 2}]}', {"x": I32},
     "Failed to process element: 0 key: z of 'instances' list. Error: INVALID_ARGUMENT: "
     "JSON object: does not have named input: z"),
    ('{"instances": [{"y": 1}]}', {"x": I32, "y": I32},
     # rapidjson's PrettyWriter breaks objects over lines even in quoted values
     'JSON object: {\n    "y": 1\n} keys must be equal to: x,y'),
    ('{"instances": [1, 2]}', {"x": I32, "y": I32},
     "instances is a plain list, but expecting list of objects as multiple input tensors"),
    ('{"inputs": [1, 2]}', {"x": I32, "y": I32},
     "inputs is a plain value/list, but expecting an object as multiple input tensors"),
    ('{"inputs": {"y": [1]}}', {"x": I32, "y": I32}, "Missing named input: x in 'inputs' object."),
    ('{"inputs": [[1, 2], [3]]}', {"x": I32},
     "Encountered list at unexpected size: 1 at level: 1 expected size: 2"),
    ('{"inputs": [[1, 2], 3]}', {"x": I32},
     "JSON Value: 3 found at incorrect level: 2 in the JSON DOM. Expected at level: 2"),
    ('{"inputs": [1, [3]]}', {"x": I32}, "Encountered list at unexpected level: 1 expected < 1"),
    ('{"inputs": [[1, 2], [3, [4, 5]]]}', {"x": F32},
     "Encountered list at unexpected level: 2 expected < 2"),
    ('{"instances": [[1, 2], [3, [4, 5]]]}', {"x": F32},
     "Failed to process element: 1 of 'instances' list. Error: INVALID_ARGUMENT: Encountered "
     "list at unexpected level: 1 expected < 1"),
    # JSON -> dtype
    ('{"inputs": [true]}', {"x": F32}, "JSON Value: true Type: True is not of expected type: float"),
    ('{"inputs": [null]}', {"x": F64}, "Type: Null is not of expected type: double"),
    ('{"inputs": ["1.0"]}', {"x": F32}, 'JSON Value: "1.0" Type: String is not of expected type'),
    ('{"inputs": [1.0]}', {"x": I32}, "JSON Value: 1.0 Type: Number is not of expected type: int32"),
    ('{"inputs": [2147483648]}', {"x": I32}, "is not of expected type: int32"),
    ('{"inputs": [9223372036854775808]}', {"x": I64}, "is not of expected type: int64"),
    ('{"inputs": [-1]}', {"x": "DT_UINT64"}, "is not of expected type: uint64"),
    ('{"inputs": [1]}', {"x": "DT_BOOL"}, "is not of expected type: bool"),
    ('{"inputs": [1]}', {"x": STR}, "is not of expected type: string"),
    ('{"inputs": [{"b64": "aGk="}]}', {"x": F32}, "Type: Object is not of expected type: float"),
    ('{"inputs": {"x": [{"b64": "aGk=", "extra": 1}]}}', {"x": STR},
     'JSON Value: {\n    "b64": "aGk=",\n    "extra": 1\n} not formatted correctly for base64'),
    ('{"inputs": [{"b64": "a*b"}]}', {"x": STR}, "Unable to base64 decode"),
])
def test_parse_predict_request_errors(body, inputs, message):
    with pytest.raises(JsonTensorError) as raised:
        request.parse_predict_request(body, inputs)
    assert message in raised.value.message
    assert raised.value.code == "INVALID_ARGUMENT"


def test_dtype_json_cannot_carry_is_unimplemented():
    with pytest.raises(JsonTensorError, match="to type: half") as raised:
        request.parse_predict_request('{"inputs": [1.0]}', {"x": "DT_HALF"})
    assert raised.value.code == "UNIMPLEMENTED"


@pytest.mark.parametrize("dtype", [1, "DT_FLOAT", "dt_float", np.float32, np.dtype("float32")])
def test_dtypes_in_every_spelling(dtype):
    parsed = request.parse_predict_request('{"inputs": [1]}', {"x": dtype})
    assert parsed.inputs["x"].dtype == np.float32


def test_tf_dtype_is_accepted():
    import tensorflow as tf  # already loaded by tests/conftest.py
    parsed = request.parse_predict_request('{"inputs": ["a"]}', {"x": tf.string})
    assert parsed.inputs["x"].tolist() == [b"a"]


INTS = np.array([[[1, 2], [3, 4], [5, 6]], [[7, 8], [9, 0], [1, 2]]], np.int32)
WORDS = np.array([[b"hello", b"world"], [b"tf", b"serving"]], object)
B64_ROWS = [[{"b64": "aGVsbG8="}, {"b64": "d29ybGQ="}], [{"b64": "dGY="}, {"b64": "c2VydmluZw=="}]]


@pytest.mark.parametrize("outputs, form, expected", [
    # mirrors FromJsonSingleTensor
    ({"int_tensor": INTS}, "row", {"predictions": INTS.tolist()}),
    ({"int_tensor": INTS}, "columnar", {"outputs": INTS.tolist()}),
    # mirrors FromJsonSingleScalarTensor
    ({"int_tensor": np.arange(1, 6, dtype=np.int32)}, "row", {"predictions": [1, 2, 3, 4, 5]}),
    ({"int_tensor": np.arange(1, 6, dtype=np.int32)}, "columnar", {"outputs": [1, 2, 3, 4, 5]}),
    # mirrors FromJsonSingleBytesTensor
    ({"str_tensor_bytes": WORDS}, "row", {"predictions": B64_ROWS}),
    # mirrors FromJsonMultipleNamedTensors
    ({"int_tensor": INTS, "str_tensor": np.array([[b"foo", b"bar"], [b"baz", b"bat"]], object),
      "float_tensor": np.array([[1.0], [2.0]], np.float32),
      "double_scalar_tensor": np.array([8.0, 9.0]), "str_tensor_bytes": WORDS}, "row",
     {"predictions": [
         {"double_scalar_tensor": 8.0, "float_tensor": [1.0], "int_tensor": INTS[0].tolist(),
          "str_tensor": ["foo", "bar"], "str_tensor_bytes": B64_ROWS[0]},
         {"double_scalar_tensor": 9.0, "float_tensor": [2.0], "int_tensor": INTS[1].tolist(),
          "str_tensor": ["baz", "bat"], "str_tensor_bytes": B64_ROWS[1]}]}),
    ({"int_tensor": INTS, "str_tensor_bytes": WORDS, "b": np.array([True, False])}, "columnar",
     {"outputs": {"int_tensor": INTS.tolist(), "str_tensor_bytes": B64_ROWS,
                  "b": [True, False]}}),
    # mirrors FromJsonSingleZeroBatchTensor / FromJsonMultipleZeroBatchTensors
    ({"int_tensor": np.zeros((0, 2), np.int32)}, "row", {"predictions": []}),
    ({"s": np.zeros((0, 1, 2), object), "f": np.zeros((0, 3, 4), np.float32)}, "row",
     {"predictions": []}),
])
def test_make_predict_response(outputs, form, expected):
    assert json.loads(response.make_predict_response(outputs, form)) == expected


@pytest.mark.parametrize("values, texts", [
    # mirrors FromJsonSingleFloatTensorSixDigitPrecision
    ([9000000, 999999, 0.5, 0.0003, 0.00003, 555557.5],
     ["9e+06", "999999.0", "0.5", "0.0003", "3e-05", "555557.5"]),
    # mirrors FromJsonSingleFloatTensorNonFinite
    ([np.nan, np.inf, 3, -np.inf], ["NaN", "Infinity", "3.0", "-Infinity"]),
    # TF_SERVING.md: whole numbers get ".0"; %.9g when six digits do not round-trip
    ([998002, 0.1, 1435774380, 2.5], ["998002.0", "0.1", "1.43577434e+09", "2.5"]),
])
def test_float32_numbers_written_as_tf_serving(values, texts):
    body = response.make_predict_response({"y": np.array([values], np.float32)}, "row")
    assert _as_strings(body) == {"predictions": [texts]}


def test_double_uses_17_digits():
    assert format_decimal(0.1, np.float64) == "0.1"
    assert format_decimal(1 / 3, np.float64) == "0.33333333333333331"
    assert format_decimal(2.0**60, np.float64) == "1.152921504606847e+18"


@pytest.mark.parametrize("value, text", [
    (1.0, "1.0"), (1e308, "1e308"), (1.5e-7, "1.5e-7"), (1e-6, "0.000001"), (0.001234, "0.001234"),
    (12340000000.0, "12340000000.0"), (1e16, "10000000000000000.0"), (1e21, "1e21"),
    (1.2345e22, "1.2345e22"), (-2.5, "-2.5"), (-0.0, "-0.0"), (5e-324, "5e-324"),
])
def test_values_quoted_in_errors_as_rapidjson_writes_doubles(value, text):
    assert format_double(value) == text


def test_quoted_values_are_cut_as_tf_serving_cuts_them():
    # JsonWriterWithLimit stops at 256 bytes; rapidjson's Writer stops at a NaN.
    assert debug_string(list(range(1000))).startswith("[0, 1, 2")
    assert 256 <= len(debug_string(list(range(1000)))) < 270
    assert debug_string([1.5, float("nan"), 2]) == "[1.5"
    with pytest.raises(JsonTensorError) as raised:
        request.parse_predict_request('{"instances": [], "x": [1e-7, "a"]}', {"x": F32})
    assert raised.value.message == ('JSON Value: {\n    "instances": [],\n    "x": [1e-7, "a"]\n} '
                                    "No values in 'instances' array")


def test_half_plus_two_answer_is_byte_exact():
    # TF Serving's documented curl output for half_plus_two, PrettyWriter quirk included.
    body = response.make_predict_response({"y": np.array([2.5, 3.0, 4.5], np.float32)}, "row")
    assert body == '{\n    "predictions": [2.5, 3.0, 4.5\n    ]\n}'
    assert response.make_error_body('a "b"') == '{\n    "error": "a \\"b\\""\n}'
    # rapidjson escapes controls with upper-case hex, and nothing else (not "/", not UTF-8)
    assert response.make_error_body("a\x1f/\u00e9") == '{\n    "error": "a\\u001F/\u00e9"\n}'


@pytest.mark.parametrize("outputs, form, message", [
    # mirrors FromJsonSingleTensorErrors, FromJsonMultipleNamedTensorsErrors,
    # FromJsonMultipleZeroBatchTensorsErrors
    ({}, "row", "Cannot convert empty tensor map to JSON"),
    ({"tensor": np.array([1, 2], np.complex64)}, "row",
     "Failed to write JSON value for tensor type: complex64"),
    ({"tensor": np.array([1, 2], np.float16)}, "columnar",
     "Failed to write JSON value for tensor type: half"),
    ({"tensor": np.array([1, 2], np.uint16)}, "columnar",
     "Failed to write JSON value for tensor type: uint16"),
    ({"tensor": np.array(1, np.int32)}, "row", "Tensor name: tensor has no shape information "),
    ({"a": np.zeros((2, 3), np.int32), "b": np.zeros((1, 3), object)}, "row",
     "Tensor name: b has inconsistent batch size: 1 expecting: 2"),
    ({"a": np.zeros((0, 2), np.int32), "b": np.zeros((1, 2), object)}, "row",
     "Tensor name: b has inconsistent batch size: 1 expecting: 0"),
])
def test_make_predict_response_errors(outputs, form, message):
    with pytest.raises(JsonTensorError) as raised:
        response.make_predict_response(outputs, form)
    assert raised.value.message == message


def test_classify_and_regress_responses():
    body = response.make_classify_response([[b"a", b"b"]], [[0.25, 0.75]])
    assert json.loads(body) == {"results": [[["a", 0.25], ["b", 0.75]]]}
    assert json.loads(response.make_classify_response(scores=[[0.5]])) == {"results": [[["", 0.5]]]}
    assert response.make_regress_response([[2.5], [3.0]]) == '{\n    "results": [2.5, 3.0]\n}'
    with pytest.raises(JsonTensorError, match="empty RegressionResults"):
        response.make_regress_response(np.zeros(0))
    with pytest.raises(JsonTensorError, match="empty ClassificationResults"):
        response.make_classify_response(scores=np.zeros((0, 2)))


ROUND_TRIP_INPUTS = [
    np.array([[0.1, -2.5e-8, np.nan], [np.pi, 3e38, -np.inf]], np.float32),
    np.array([[1, -2], [2**62, 0]], np.int64),
    np.array([1.0 / 3, 1e-300], np.float64),
    np.array([[b"\x00\xffbytes"], [b"caf\xc3\xa9"]], object),
    {"image": np.random.default_rng(0).random((3, 2, 2)).astype(np.float32),
     "ids": np.array([7, 8, 9], np.int32), "text": np.array(["a", "\u00e9", "\n"])},
]
SIGNATURES = [{"x": F32}, {"x": I64}, {"x": F64}, {"x": STR},
              {"image": F32, "ids": I32, "text": STR}]


@pytest.mark.parametrize("form", ["row", "columnar"])
@pytest.mark.parametrize("inputs, signature", list(zip(ROUND_TRIP_INPUTS, SIGNATURES)))
def test_client_request_reaches_the_server_unchanged(inputs, signature, form):
    body = client.encode_predict_request(inputs, form=form, signature_name="sig")
    parsed = request.parse_predict_request(body, signature)
    assert parsed.form == form and parsed.signature_name == "sig"
    sent = inputs if isinstance(inputs, dict) else {"x": inputs}
    for name, array in sent.items():
        got = parsed.inputs[name]
        want = np.char.encode(array, "utf-8").astype(object) if array.dtype.kind == "U" else array
        assert got.shape == want.shape
        if want.dtype == object:
            assert got.tolist() == want.tolist()
        else:
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("form", ["row", "columnar"])
@pytest.mark.parametrize("outputs", [
    {"y": np.array([[0.1, np.nan], [np.inf, -0.0]], np.float32)},
    {"y": np.array([1, 2**40], np.int64)},
    {"y": np.array([[-128, 127]], np.int8)},
    {"y": np.array([2**64 - 1], np.uint64)},
    {"y_bytes": np.array([b"\x00\xff", b"x"], object)},
    {"y": np.array([b"caf\xc3\xa9", b"x"], object)},
    {"scores": np.array([[0.25, 0.75], [1.0, 0.0]], np.float32),
     "classes_bytes": np.array([[b"a", b"b"], [b"c", b"d"]], object),
     "flag": np.array([True, False])},
])
def test_server_response_decodes_to_the_same_arrays(outputs, form):
    body = response.make_predict_response(outputs, form)
    decoded = client.decode_predict_response(body, {alias: array.dtype
                                                    for alias, array in outputs.items()})
    if len(outputs) == 1 and not isinstance(decoded, dict):
        decoded = {next(iter(outputs)): decoded}
    assert sorted(decoded) == sorted(outputs)
    for alias, array in outputs.items():
        assert decoded[alias].dtype == array.dtype and decoded[alias].shape == array.shape
        if array.dtype == object:
            assert decoded[alias].tolist() == array.tolist()
        else:
            np.testing.assert_array_equal(decoded[alias], array)


def test_decode_uses_given_dtypes_and_raises_server_errors():
    body = response.make_predict_response({"y": np.array([1.0 / 3], np.float64)}, "row")
    assert client.decode_predict_response(body, {"y": F64})[0] == 1.0 / 3
    assert client.decode_predict_response(body).dtype == np.float32
    assert client.decode_predict_response('{"outputs": [18446744073709551615, 1]}').dtype == (
        np.uint64)
    assert client.decode_predict_response('{"outputs": [[true], [false]]}').dtype == np.bool_
    assert client.decode_predict_response('{"predictions": [{"b64": "aGk="}]}').tolist() == [b"hi"]
    with pytest.raises(JsonTensorError, match="^Servable not found") as raised:
        client.decode_predict_response(response.make_error_body("Servable not found for request"))
    assert raised.value.code == "INVALID_ARGUMENT"
    with pytest.raises(JsonTensorError, match="not rectangular"):
        client.decode_predict_response('{"predictions": [[1, 2], [3]]}')
    with pytest.raises(JsonTensorError, match="neither 'predictions' nor 'outputs'"):
        client.decode_predict_response('{"result": [1]}')


@pytest.mark.parametrize("call, error, message", [
    (lambda: client.encode_predict_request(np.zeros(2), form="rows"), ValueError, "form must be"),
    (lambda: client.encode_predict_request({}), ValueError, "empty dict"),
    (lambda: client.encode_predict_request({1: np.zeros(2)}), TypeError, "names must be strings"),
    (lambda: client.encode_predict_request(np.zeros(2, np.complex64)), TypeError, "complex64"),
    (lambda: client.encode_predict_request(np.float32(1)), ValueError, "same batch size"),
    (lambda: client.encode_predict_request(np.array([b"a", 5], object)), TypeError,
     "got 5 of type int"),
    (lambda: client.encode_predict_request(np.zeros((0, 2))), ValueError, "same batch size"),
    (lambda: client.encode_predict_request({"a": np.zeros(2), "b": np.zeros(3)}), ValueError,
     "'a': 2, 'b': 3"),
    (lambda: client.encode_predict_request(np.zeros(2), signature_name=3), TypeError,
     "signature_name must be"),
    (lambda: client.decode_predict_response(b"{}", output_dtypes="DT_NOPE"), TypeError,
     "output_dtypes must be"),
    (lambda: request.parse_predict_request(42, {"x": F32}), TypeError, "body must be bytes"),
    (lambda: request.parse_predict_request("{}", ["x"]), TypeError, "must map input names"),
    (lambda: request.parse_predict_request("{}", {"x": "DT_NOPE"}), TypeError,
     "signature_inputs['x'] must be a TensorFlow DataType"),
    (lambda: response.make_predict_response({"y": np.zeros(1)}, "rows"), ValueError,
     "form must be"),
    (lambda: response.make_predict_response([np.zeros(1)], "row"), TypeError,
     "outputs must be a dict"),
    (lambda: response.make_classify_response(), ValueError, "got neither"),
    (lambda: response.make_classify_response([[b"a"]], [[0.1, 0.2]]), ValueError, "same shape"),
    (lambda: response.make_regress_response(np.zeros((2, 2))), ValueError, "[batch, 1]"),
])
def test_misuse_is_named(call, error, message):
    with pytest.raises(error) as raised:
        call()
    assert message in str(raised.value)


def test_columnar_scalar_and_row_examples_as_documented():
    assert client.encode_predict_request(np.array([[1.0], [2.0]], np.float32)) == (
        '{"instances": [[1.0],[2.0]]}')
    assert client.encode_predict_request({"x": np.float32(0.5)}, form="columnar") == (
        '{"inputs": {"x": 0.5}}')
    assert math.isnan(client.decode_predict_response('{"outputs": NaN}'))
