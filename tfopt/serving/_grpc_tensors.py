"""numpy arrays to and from the TensorProtos of TF Serving's gRPC API.

TF Serving answers Predict with each output in the typed repeated field of its
dtype (``float_val``, ``int64_val`` ...: ``Tensor::AsProtoField``, the default
unless ``--enable_serialization_as_tensor_content``), so clients that read
``outputs["y"].float_val`` work; `typed_proto` writes that form. Requests may
carry a tensor in either form; `to_array` reads both, as ``Tensor::FromProto``
does. Both the servicers and the client use this module.
"""

import numpy as np
import tensorflow as tf
from tensorflow.core.framework import tensor_pb2
from tensorflow.core.framework import types_pb2

# DataType -> the TensorProto field holding its values (tensor.proto). Smaller
# integers travel in int_val; float16/bfloat16 in half_val as their raw bits.
_FIELDS = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_INT32: "int_val",
    types_pb2.DT_INT16: "int_val",
    types_pb2.DT_INT8: "int_val",
    types_pb2.DT_UINT8: "int_val",
    types_pb2.DT_UINT16: "int_val",
    types_pb2.DT_INT64: "int64_val",
    types_pb2.DT_UINT32: "uint32_val",
    types_pb2.DT_UINT64: "uint64_val",
    types_pb2.DT_BOOL: "bool_val",
    types_pb2.DT_STRING: "string_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
    types_pb2.DT_COMPLEX64: "scomplex_val",
    types_pb2.DT_COMPLEX128: "dcomplex_val",
}


def _datatype(array):
    if array.dtype.kind in "OSU":
        return types_pb2.DT_STRING
    try:
        return tf.as_dtype(array.dtype).as_datatype_enum
    except TypeError:
        raise TypeError(f"arrays of dtype {array.dtype} cannot be sent to TF Serving; it takes "
                        "float, int, uint, bool, complex and string/bytes tensors. Cast the "
                        "array first.") from None


def _as_bytes(value):
    if isinstance(value, (bytes, np.bytes_)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode("utf-8")
    raise TypeError(f"string tensors must hold str or bytes; got {value!r} of type "
                    f"{type(value).__name__} in an object array. Convert it, or give the array "
                    "a numeric dtype.")


def typed_proto(array):
    """`array` as a TensorProto with its values in the typed field of its dtype.

    Raises:
      TypeError: a dtype TF Serving has no tensor type for, or an object
        array holding something other than str/bytes.
    """
    array = np.asarray(array)
    number = _datatype(array)
    proto = tensor_pb2.TensorProto(dtype=number)
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    field = _FIELDS[number]
    flat = array.ravel()
    if number == types_pb2.DT_STRING:
        values = [_as_bytes(value) for value in flat.tolist()]
    elif field == "half_val":
        values = flat.view(np.uint16).tolist()
    elif field in ("scomplex_val", "dcomplex_val"):
        values = np.stack([flat.real, flat.imag], axis=-1).ravel().tolist()
    else:
        values = flat.tolist()
    getattr(proto, field).extend(values)
    return proto


def to_array(proto):
    """A TensorProto (typed fields or ``tensor_content``) as a numpy array.

    Strings come back as an object array of bytes.

    Raises:
      ValueError: a proto whose values do not fit its shape or dtype, with
        TensorFlow's reason.
    """
    try:
        return tf.make_ndarray(proto)
    except (TypeError, ValueError) as error:
        raise ValueError(f"cannot read the tensor of dtype "
                         f"{types_pb2.DataType.Name(proto.dtype)}: {error}") from None


def request_proto(array):
    """`array` as a request TensorProto: numbers as raw ``tensor_content``, strings typed.

    The raw bytes are what TensorFlow's own clients send (``tf.make_tensor_proto``)
    and are cheaper to build and parse than one repeated value per element.
    """
    array = np.asarray(array)
    number = _datatype(array)
    if number == types_pb2.DT_STRING:
        return typed_proto(array)
    proto = tensor_pb2.TensorProto(dtype=number, tensor_content=np.ascontiguousarray(
        array).astype(array.dtype.newbyteorder("<"), copy=False).tobytes())
    for size in array.shape:
        proto.tensor_shape.dim.add(size=size)
    return proto
