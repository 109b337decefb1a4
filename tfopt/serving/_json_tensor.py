"""TF Serving's REST JSON tensor format: JSON values into tensors, dtype by dtype.

The rules and the error texts follow ``tensorflow_serving/util/json_tensor.cc``
(its tests are ported in tests/serving/test_json_tensor.py). The server side
(`_json_request`, `_json_response`) and the REST client share these pieces, so
both ends read and write the same format. No TensorFlow is imported: dtypes are
given as TensorFlow ``DataType`` numbers or names (``1``, ``"DT_FLOAT"``), as
`tf.DType`s, or as numpy dtypes.
"""

import base64
import binascii

import numpy as np

from tfopt.serving._json_parse import JsonTensorError, parse_json  # noqa: F401 (shared names)
from tfopt.serving._json_writer import debug_string

_INT64 = (-(2**63), 2**63 - 1)
_UINT64_MAX = 2**64 - 1



# DataType number -> (DT_ name, numpy dtype or None, tensorflow's DataTypeString).
_DTYPES = {
    1: ("DT_FLOAT", np.float32, "float"), 2: ("DT_DOUBLE", np.float64, "double"),
    3: ("DT_INT32", np.int32, "int32"), 4: ("DT_UINT8", np.uint8, "uint8"),
    5: ("DT_INT16", np.int16, "int16"), 6: ("DT_INT8", np.int8, "int8"),
    7: ("DT_STRING", np.object_, "string"), 8: ("DT_COMPLEX64", np.complex64, "complex64"),
    9: ("DT_INT64", np.int64, "int64"), 10: ("DT_BOOL", np.bool_, "bool"),
    14: ("DT_BFLOAT16", None, "bfloat16"), 17: ("DT_UINT16", np.uint16, "uint16"),
    18: ("DT_COMPLEX128", np.complex128, "complex128"), 19: ("DT_HALF", np.float16, "half"),
    22: ("DT_UINT32", np.uint32, "uint32"), 23: ("DT_UINT64", np.uint64, "uint64"),
}
_BY_NAME = {name: number for number, (name, _, _) in _DTYPES.items()}
_BY_NUMPY = {np.dtype(kind): number for number, (_, kind, _) in _DTYPES.items() if kind}
FLOAT, DOUBLE, STRING = 1, 2, 7


def datatype(dtype, argument="dtype"):
    """The TensorFlow DataType number of `dtype` (a number, ``"DT_*"`` name, tf.DType or numpy dtype)."""
    number = getattr(dtype, "as_datatype_enum", dtype)  # a tf.DType, without importing TF
    if isinstance(number, str) and number.upper() in _BY_NAME:
        return _BY_NAME[number.upper()]
    if isinstance(number, (int, np.integer)) and not isinstance(number, bool):
        if int(number) in _DTYPES:
            return int(number)
    else:
        try:
            kind = np.dtype(number)
        except TypeError:
            kind = None
        if kind is not None and kind.kind in "SUO":
            return STRING
        if kind in _BY_NUMPY:
            return _BY_NUMPY[kind]
    raise TypeError(f"{argument} must be a TensorFlow DataType (a number or a name such as "
                    f"'DT_FLOAT'), a tf.DType or a numpy dtype; got {dtype!r}. Use one of "
                    f"{sorted(_BY_NAME)}.")


def datatype_string(number):
    """TensorFlow's DataTypeString: ``float`` for DT_FLOAT, ``string`` for DT_STRING."""
    return _DTYPES[number][2]


def numpy_dtype(number):
    """The numpy dtype tensors of DataType `number` become (object for DT_STRING)."""
    return _DTYPES[number][1]


def as_double(value):
    """An integer past the int64/uint64 range as rapidjson stores it: a double."""
    try:
        return float(value)
    except OverflowError:
        raise JsonTensorError("JSON Parse error: Number too big to be stored in double.") from None


def json_type(value):
    """rapidjson's name for the JSON type of a parsed value (``Number``, ``Array``, ...)."""
    if value is None:
        return "Null"
    if value is True or value is False:
        return str(value)
    if isinstance(value, dict):
        return "Object"
    if isinstance(value, list):
        return "Array"
    return "String" if isinstance(value, str) else "Number"


def type_error(value, number):
    """TF Serving's error for a JSON value the DataType `number` cannot hold."""
    return JsonTensorError(f"JSON Value: {debug_string(value)} Type: {json_type(value)} "
                           f"is not of expected type: {datatype_string(number)}")


def is_b64(value):
    """Whether `value` is ``{"b64": "<string>"}`` with no other key."""
    return isinstance(value, dict) and len(value) == 1 and isinstance(value.get("b64"), str)


def decode_b64(value):
    """The bytes of a ``{"b64": ...}`` object, as absl::Base64Unescape reads them."""
    if not is_b64(value):
        raise JsonTensorError(f"JSON Value: {debug_string(value)} not formatted correctly "
                              "for base64 data")
    text = value["b64"].rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise JsonTensorError("Unable to base64 decode") from None


# The JSON integers each integer DataType takes (inclusive): rapidjson's IsInt, IsInt64,
# IsUint and IsUint64. DT_INT8/INT16/UINT8 travel as int32 (TensorProto int_val) and
# wrap when the tensor is built, as in TF Serving: 300 becomes 44 in a DT_UINT8.
_INT_RANGES = {3: (-(2**31), 2**31 - 1), 4: (-(2**31), 2**31 - 1), 5: (-(2**31), 2**31 - 1),
               6: (-(2**31), 2**31 - 1), 9: _INT64, 22: (0, 2**32 - 1), 23: (0, _UINT64_MAX)}


def check_value(value, number):
    """`value`, a JSON scalar, as an element of DataType `number` (AddValueToTensor)."""
    if number in (FLOAT, DOUBLE):
        if type(value) is int and not _INT64[0] <= value <= _UINT64_MAX:
            return as_double(value)
        if type(value) in (int, float):
            return value
    elif number in _INT_RANGES:
        low, high = _INT_RANGES[number]
        if type(value) is int and low <= value <= high:
            return value
    elif number == STRING:
        if isinstance(value, str):
            return value.encode("utf-8", "surrogateescape")
    elif number == 10:
        if value is True or value is False:
            return value
    else:
        raise JsonTensorError(f"Conversion of JSON Value: {debug_string(value)} to type: "
                              f"{datatype_string(number)}", code="UNIMPLEMENTED")
    raise type_error(value, number)


def to_array(values, shape, number):
    """The numpy tensor of DataType `number` holding `values` (flat, row-major) in `shape`."""
    kind = numpy_dtype(number)
    if number == STRING:
        array = np.empty(len(values), dtype=object)
        array[:] = values
    elif number == FLOAT:
        # Through double first, as rapidjson's GetFloat: 1435774380 -> 1435774336, 1e308 -> inf.
        with np.errstate(over="ignore"):
            array = np.array(values, dtype=np.float64).astype(np.float32)
    elif number in (3, 4, 5, 6):
        array = np.array(values, dtype=np.int64).astype(kind)  # wraps like the C++ cast
    else:
        array = np.array(values, dtype=kind)
    return array.reshape(shape)


_FAST_TYPES = {FLOAT: {int, float}, DOUBLE: {int, float}, 10: {bool},
               **{number: {int} for number in (3, 4, 5, 6, 9, 22)}}


def fast_array(value, shape, number):
    """`value` as a tensor of DataType `number` in one numpy pass, or None to take the slow path.

    Equivalent to checking each element with `check_value` (a Python call per
    element) when it succeeds; any irregularity (ragged lists, a wrong JSON type,
    an int out of range, strings) returns None, so the element-by-element path
    finds the exact error TF Serving reports.
    """
    if number not in _FAST_TYPES:
        return None
    try:
        array = np.array(value, dtype=object)
    except ValueError:  # some ragged nestings
        return None
    if array.shape != tuple(shape) or not set(map(type, array.ravel().tolist())) <= _FAST_TYPES[
            number]:
        return None
    if number in (FLOAT, DOUBLE):
        try:
            with np.errstate(over="ignore"):
                return array.astype(np.float64).astype(numpy_dtype(number))
        except OverflowError:  # an integer past any double: check_value says so
            return None
    if number == 10:
        return array.astype(np.bool_)
    try:
        wide = array.astype(np.int64)
    except OverflowError:  # past int64: the element-by-element path decides
        return None
    low, high = _INT_RANGES[number]
    if wide.size and (wide.min() < low or wide.max() > high):
        return None
    return wide.astype(numpy_dtype(number))  # DT_INT8/16, UINT8 wrap as in TF Serving
