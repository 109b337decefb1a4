"""Predict requests in TF Serving's JSON: parsed by the server, written by the client.

A body is ``{"signature_name"?: str, "instances": [...]}`` (row form) or
``{"signature_name"?: str, "inputs": ...}`` (columnar form). The JSON's own
shape is what the model gets: TF Serving does not check it against the
signature, so half_plus_two answers ``[1.0, 2.0]`` although it declares
``[-1, 1]``. Rules and messages follow ``FillPredictRequestFromJson`` in
``tensorflow_serving/util/json_tensor.cc``.
"""

import collections.abc
import dataclasses

import numpy as np

from tfopt.serving import _json_tensor as jt
from tfopt.serving._json_writer import debug_string

ROW, COLUMNAR = "row", "columnar"
_MAX_RANK = 63  # numpy's 64 dimensions, one kept for the batch of the row form


@dataclasses.dataclass
class PredictRequest:
    """A parsed predict body.

    Attributes:
      inputs: input name -> numpy array (DT_STRING inputs as object arrays of bytes).
      signature_name: the body's ``signature_name``, None when it has none.
      form: ``"row"`` for ``instances``, ``"columnar"`` for ``inputs``; answer in the same form.
    """

    inputs: dict
    signature_name: object
    form: str


def _dense_shape(value):
    # GetDenseTensorShape: follows first elements only; FillTensorProto checks the rest.
    shape = []
    while isinstance(value, list):
        shape.append(len(value))
        if not value:
            break
        value = value[0]
    return shape


def _fill(value, level, shape, number, out):
    """Appends the scalars of `value` to `out`, checking it has `shape` (FillTensorProto)."""
    if not isinstance(value, list):
        if level != len(shape):
            raise jt.JsonTensorError(
                f"JSON Value: {debug_string(value)} found at incorrect level: {level + 1} in "
                f"the JSON DOM. Expected at level: {len(shape)}")
        if isinstance(value, dict):
            if number != jt.STRING:
                raise jt.type_error(value, number)
            out.append(jt.decode_b64(value))
        else:
            out.append(jt.check_value(value, number))
        return
    if level >= len(shape):
        raise jt.JsonTensorError(
            f"Encountered list at unexpected level: {level} expected < {len(shape)}")
    if len(value) != shape[level]:
        raise jt.JsonTensorError(f"Encountered list at unexpected size: {len(value)} at level: "
                                 f"{level} expected size: {shape[level]}")
    for item in value:
        _fill(item, level + 1, shape, number, out)


def _tensor(value, number):
    """`value` as a flat array of DataType `number`, and its shape."""
    shape = _dense_shape(value)
    if len(shape) > _MAX_RANK:
        # TensorFlow itself stops at 254 dimensions; numpy arrays at 64.
        raise jt.JsonTensorError(f"JSON Value: {debug_string(value)} is a tensor of rank "
                                 f"{len(shape)}; at most {_MAX_RANK} dimensions are supported")
    array = jt.fast_array(value, shape, number)
    if array is None:
        values = []
        _fill(value, 0, shape, number, values)
        array = jt.to_array(values, [len(values)], number)
    return array.reshape(-1), shape


def _is_named(value):
    return isinstance(value, dict) and not jt.is_b64(value)


def _status(error):
    # Wrapped messages quote the inner one as absl's Status::ToString does.
    return f"{error.code}: {error.message}"


def _rows(instances, infos):
    """The inputs of an ``instances`` list (FillTensorMapFromInstancesList)."""
    if not isinstance(instances[0], dict) and len(infos) > 1:
        raise jt.JsonTensorError("instances is a plain list, but expecting list of objects as "
                                 "multiple input tensors required as per tensorinfo_map")
    named = _is_named(instances[0])
    names = sorted(infos)
    if not named and len(infos) == 1:
        # Equal shapes per row is one rectangular tensor: convert it in one pass when possible.
        whole = jt.fast_array(instances, _dense_shape(instances), infos[names[0]])
        if whole is not None:
            return {names[0]: whole}
    columns, shapes = {}, {}

    def add(item, name):
        if name not in infos:
            raise jt.JsonTensorError(f"JSON object: does not have named input: {name}")
        values, shape = _tensor(item, infos[name])
        if name not in shapes:
            shapes[name] = (len(values), shape)
        elif shapes[name][0] != len(values):
            raise jt.JsonTensorError(
                f"Expecting tensor size: {shapes[name][0]} but got: {len(values)}")
        elif shapes[name][1] != shape:
            raise jt.JsonTensorError(
                f"Expecting shape [{','.join(map(str, shapes[name][1]))}] but got: "
                f"[{','.join(map(str, shape))}]")
        columns.setdefault(name, []).append(values)

    for index, element in enumerate(instances):
        if named:
            if not _is_named(element):
                raise jt.JsonTensorError(
                    f"Expecting object but got list at item {index} of input list")
            for name, item in element.items():
                try:
                    add(item, name)
                except jt.JsonTensorError as error:
                    raise jt.JsonTensorError(
                        f"Failed to process element: {index} key: {name} of 'instances' list. "
                        f"Error: {_status(error)}", error.code) from None
            if sorted(element) != names:
                raise jt.JsonTensorError(
                    f"Failed to process element: {index} of 'instances' list. JSON object: "
                    f"{debug_string(element)} keys must be equal to: {','.join(names)}")
        else:
            if _is_named(element):
                raise jt.JsonTensorError(
                    f"Expecting value/list but got object at item {index} of input list")
            try:
                add(element, names[0])
            except jt.JsonTensorError as error:
                raise jt.JsonTensorError(
                    f"Failed to process element: {index} of 'instances' list. "
                    f"Error: {_status(error)}", error.code) from None
    return {name: np.concatenate(chunks).reshape([len(instances)] + shapes[name][1])
            for name, chunks in columns.items()}


def _columns(inputs, infos):
    """The inputs of an ``inputs`` value or object (FillTensorMapFromInputsMap)."""
    if not _is_named(inputs):
        if len(infos) > 1:
            raise jt.JsonTensorError("inputs is a plain value/list, but expecting an object as "
                                     "multiple input tensors required as per tensorinfo_map")
        inputs = {next(iter(infos)): inputs}
    tensors = {}
    for name in sorted(infos):
        if name not in inputs:
            raise jt.JsonTensorError(f"Missing named input: {name} in 'inputs' object.")
        values, shape = _tensor(inputs[name], infos[name])
        tensors[name] = values.reshape(shape)
    return tensors


def _input_types(signature_inputs, signature_name):
    infos = signature_inputs(signature_name) if callable(signature_inputs) else signature_inputs
    if not isinstance(infos, collections.abc.Mapping):
        raise TypeError("signature_inputs must map input names to dtypes, or be a function of "
                        f"the signature name returning such a mapping; got {infos!r}.")
    return {name: jt.datatype(dtype, f"signature_inputs[{name!r}]")
            for name, dtype in infos.items()}


def parse_predict_request(body, signature_inputs):
    """Reads a predict request body as TF Serving does.

    Args:
      body: the request body, bytes or str.
      signature_inputs: the signature's inputs, name -> dtype (a DataType number
        or ``"DT_*"`` name, a tf.DType or a numpy dtype), or a function of the
        body's signature name (None when absent) returning that mapping; the
        function may raise JsonTensorError for an unknown signature.

    Returns:
      A PredictRequest.

    Raises:
      JsonTensorError: with TF Serving's message, for anything TF Serving rejects.
    """
    document = jt.parse_json(body)
    signature_name = document.get("signature_name")
    if "signature_name" in document and not isinstance(signature_name, str):
        raise jt.JsonTensorError(f"JSON Value: {debug_string(document)} not formatted "
                                 "correctly. 'signature_name' key must be a string value.")
    infos = _input_types(signature_inputs, signature_name)
    if not infos:
        raise jt.JsonTensorError(
            f"Failed to get input map for signature: {signature_name or 'DEFAULT'}")
    if "instances" in document:
        if "inputs" in document:
            raise jt.JsonTensorError(
                f"JSON Value: {debug_string(document)} Not formatted correctly expecting only "
                "one of 'inputs' or 'instances' keys to exist ")
        instances = document["instances"]
        if not isinstance(instances, list):
            raise jt.JsonTensorError(f"JSON Value: {debug_string(document)} Expecting "
                                     "'instances' to be an list/array")
        if not instances:
            raise jt.JsonTensorError(
                f"JSON Value: {debug_string(document)} No values in 'instances' array")
        return PredictRequest(_rows(instances, infos), signature_name, ROW)
    if "inputs" in document:
        return PredictRequest(_columns(document["inputs"], infos), signature_name, COLUMNAR)
    raise jt.JsonTensorError("Missing 'inputs' or 'instances' key")

