"""The REST client's side of TF Serving's JSON: numpy inputs in, numpy outputs out.

Requests are written so the server reads back exactly the arrays given
(float32 values in their shortest round-trip form, bytes as ``{"b64": ...}``);
responses are read with the server's own rules (`_json_tensor.parse_json`), so
``NaN``/``Infinity`` and TF Serving's error bodies are understood.
"""

import base64
import collections.abc
import json

import numpy as np

from tfopt.serving import _json_tensor as jt
from tfopt.serving._json_request import COLUMNAR, ROW


_NON_FINITE = {"nan": "NaN", "inf": "Infinity", "-inf": "-Infinity"}


def _element_texts(array):
    """The JSON text of each element of `array` (flattened), read back exactly by the server."""
    kind = array.dtype
    if kind.kind == "f":
        # numpy's str() of a float32/float64 is its shortest round-trip form, done in C.
        width = np.float32 if kind.itemsize <= 4 else np.float64
        texts = array.astype(width).ravel().astype(str).tolist()
        return [_NON_FINITE.get(text, text) for text in texts]
    if kind.kind in "iu":
        return array.ravel().astype(str).tolist()
    if kind.kind == "b":
        return ["true" if value else "false" for value in array.ravel().tolist()]
    if kind.kind in "SOU":
        # Bytes travel as b64 so any byte survives; str elements as JSON strings.
        return [_string_text(value) for value in array.ravel().tolist()]
    raise TypeError(f"inputs of dtype {kind} cannot be sent as JSON; TF Serving's JSON carries "
                    "float, int, uint, bool and string/bytes tensors. Cast the array first.")


def _string_text(value):
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bytes, bytearray)):
        return '{"b64": "%s"}' % base64.b64encode(value).decode("ascii")
    raise TypeError(f"string inputs must hold str or bytes; got {value!r} of type "
                    f"{type(value).__name__} in an object array. Convert it, or give the "
                    "array a numeric dtype.")


def tensor_text(array, kind=None):
    """A numpy array (of dtype `kind`, default its own) as a JSON value: nested lists or a scalar."""
    array = np.asarray(array, dtype=kind)
    pieces = _element_texts(array)
    if array.size == 0:
        return json.dumps(np.empty(array.shape).tolist())
    for size in reversed(array.shape):
        pieces = ["[" + ",".join(pieces[start:start + size]) + "]"
                  for start in range(0, len(pieces), size)]
    return pieces[0]


def _validate_inputs(inputs, form):
    if form not in (ROW, COLUMNAR):
        raise ValueError(f"form must be {ROW!r} (an 'instances' list) or {COLUMNAR!r} (an "
                         f"'inputs' object); got {form!r}.")
    named = isinstance(inputs, collections.abc.Mapping)
    arrays = dict(inputs) if named else {None: inputs}
    if not arrays:
        raise ValueError("inputs is an empty dict; give at least one input name -> array.")
    for name, array in arrays.items():
        if named and not isinstance(name, str):
            raise TypeError(f"input names must be strings; got {name!r} in inputs.")
        arrays[name] = np.asarray(array)
        _element_texts(arrays[name].reshape(-1)[:1])  # a dtype JSON cannot carry fails here
    if form == ROW:
        sizes = {name: (array.shape[0] if array.ndim else None) for name, array in arrays.items()}
        if None in sizes.values() or 0 in sizes.values() or len(set(sizes.values())) > 1:
            raise ValueError(
                "the row form ('instances') needs every input to have the same batch size of at "
                f"least 1 in dimension 0; the batch sizes given are {sizes}. Use "
                f"form={COLUMNAR!r} for scalars, empty batches or inputs of different sizes.")
    return named, arrays


def encode_predict_request(inputs, form=ROW, signature_name=None):
    """The JSON body of a predict request for `inputs`, as TF Serving reads it.

    Args:
      inputs: a numpy array (a model with one input) or a dict of input name -> array.
      form: ``"row"`` (``instances``: one entry per example) or ``"columnar"``
        (``inputs``: whole tensors). Defaults to ``"row"``.
      signature_name: the signature to call; None for TF Serving's default
        (``serving_default``). Defaults to None.

    Returns:
      The body, a str. Floats are written so the server reads back the same
      float32/float64 value; bytes go as ``{"b64": ...}``.

    Example:
      >>> encode_predict_request(np.array([[1.0], [2.0]], np.float32))
      '{"instances": [[1.0],[2.0]]}'
    """
    if signature_name is not None and not isinstance(signature_name, str):
        raise TypeError(f"signature_name must be a str or None; got {signature_name!r}.")
    named, arrays = _validate_inputs(inputs, form)
    head = "" if signature_name is None else f'"signature_name": {json.dumps(signature_name)}, '
    if form == COLUMNAR:
        if not named:
            return '{%s"inputs": %s}' % (head, tensor_text(arrays[None]))
        members = ", ".join(f"{json.dumps(name)}: {tensor_text(array)}"
                            for name, array in arrays.items())
        return '{%s"inputs": {%s}}' % (head, members)
    if not named:  # the instances list is the tensor itself, one entry per row
        return '{%s"instances": %s}' % (head, tensor_text(arrays[None]))
    batch = next(iter(arrays.values())).shape[0]
    rows = ["{" + ", ".join(f"{json.dumps(name)}: {tensor_text(array[index], array.dtype)}"
                            for name, array in arrays.items()) + "}"
            for index in range(batch)]
    return '{%s"instances": [%s]}' % (head, ",".join(rows))


def _flatten(value, shape, out):
    """Appends the scalars of the JSON tensor `value` to `out`, checking it is rectangular."""
    if isinstance(value, list):
        if not shape or len(value) != shape[0]:
            raise jt.JsonTensorError(f"response tensor is not rectangular: found a list of "
                                     f"{len(value)} where {shape[:1] or 'a scalar'} was expected")
        for item in value:
            _flatten(item, shape[1:], out)
    elif shape:
        raise jt.JsonTensorError(f"response tensor is not rectangular: found a scalar where a "
                                 f"list of {shape[0]} was expected")
    elif jt.is_b64(value):
        out.append(jt.decode_b64(value))
    elif isinstance(value, str):
        out.append(value.encode("utf-8", "surrogateescape"))
    else:
        out.append(value)


def _inferred_type(values):
    # TF Serving writes floats with '.', 'e' or NaN/Infinity, so JSON floats mean a float output.
    if any(isinstance(value, bytes) for value in values):
        return jt.STRING
    if values and all(value is True or value is False for value in values):
        return 10
    if all(type(value) is int for value in values) and values:
        return 23 if max(values) > 2**63 - 1 >= 0 <= min(values) else 9  # uint64 past int64
    return jt.FLOAT


def decode_tensor(value, number=None):
    """A JSON tensor of a response as a numpy array of DataType `number` (None: inferred)."""
    shape = []
    probe = value
    while isinstance(probe, list):
        shape.append(len(probe))
        probe = probe[0] if probe else None
    values = []
    _flatten(value, shape, values)
    number = _inferred_type(values) if number is None else number
    for item in values:
        if number != jt.STRING and not isinstance(item, (int, float)):
            raise jt.JsonTensorError(f"response value {item!r} is not a number, as an output of "
                                     f"type {jt.datatype_string(number)} needs")
    return jt.to_array(values, shape, number)


def _output_types(output_dtypes):
    if output_dtypes is None:
        return lambda alias: None
    if isinstance(output_dtypes, collections.abc.Mapping):
        numbers = {alias: jt.datatype(kind, f"output_dtypes[{alias!r}]")
                   for alias, kind in output_dtypes.items()}
        # A response with one unnamed output takes the only dtype given.
        only = next(iter(numbers.values())) if len(numbers) == 1 else None
        return lambda alias: only if alias is None else numbers.get(alias)
    number = jt.datatype(output_dtypes, "output_dtypes")
    return lambda alias: number


def json_document(body):
    """The parsed response body; raises JsonTensorError with the server's ``{"error": ...}``."""
    document = jt.parse_json(body)
    if "error" in document:
        raise jt.JsonTensorError(str(document["error"]))
    return document


def decode_predict_response(body, output_dtypes=None):
    """The outputs of a predict response body, as numpy arrays.

    Args:
      body: the response body, bytes or str.
      output_dtypes: the outputs' dtypes (one dtype, or alias -> dtype, as
        `parse_predict_request` takes them), from the model's metadata; None
        infers them: float32 for numbers written as floats, int64 for
        integers, bool, and bytes (object arrays) for strings and b64 values.
        Defaults to None.

    Returns:
      One array when the response holds one unnamed output (row form with one
      output, or columnar form with a bare value), else a dict alias -> array.

    Raises:
      JsonTensorError: the server's ``{"error": ...}`` message, or a body that
        is not a predict response.
    """
    types = _output_types(output_dtypes)
    document = json_document(body)
    if "predictions" in document:
        rows = document["predictions"]
        if not isinstance(rows, list):
            raise jt.JsonTensorError("'predictions' in the response is not a list")
        if rows and isinstance(rows[0], dict) and not jt.is_b64(rows[0]):
            for index, row in enumerate(rows):
                if not isinstance(row, dict) or set(row) != set(rows[0]):
                    raise jt.JsonTensorError(f"prediction {index} does not have the outputs "
                                             f"{sorted(rows[0])} of prediction 0")
            return {alias: decode_tensor([row[alias] for row in rows], types(alias))
                    for alias in rows[0]}
        return decode_tensor(rows, types(None))
    if "outputs" in document:
        outputs = document["outputs"]
        if isinstance(outputs, dict) and not jt.is_b64(outputs):
            return {alias: decode_tensor(value, types(alias)) for alias, value in outputs.items()}
        return decode_tensor(outputs, types(None))
    raise jt.JsonTensorError(f"the response has neither 'predictions' nor 'outputs': "
                             f"keys {sorted(document)}")
