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
from tfopt.serving._json_writer import format_decimal


def _element_text(kind):
    """A function writing one numpy scalar of dtype `kind` as JSON the server reads exactly."""
    if kind.kind == "f":
        width = np.float64 if kind == np.float64 else np.float32
        return lambda value: format_decimal(value, width)
    if kind.kind in "iu":
        return lambda value: str(int(value))
    if kind.kind == "b":
        return lambda value: "true" if value else "false"
    if kind.kind in "SO":
        # Bytes travel as b64 so any byte survives; str elements as JSON strings.
        def text(value):
            if isinstance(value, str):
                return json.dumps(value, ensure_ascii=False)
            return '{"b64": "%s"}' % base64.b64encode(bytes(value)).decode("ascii")
        return text
    if kind.kind == "U":
        return lambda value: json.dumps(str(value), ensure_ascii=False)
    raise TypeError(f"inputs of dtype {kind} cannot be sent as JSON; TF Serving's JSON carries "
                    "float, int, uint, bool and string/bytes tensors. Cast the array first.")


def tensor_text(array, kind=None):
    """A numpy array (of dtype `kind`, default its own) as a JSON value: nested lists or a scalar."""
    array = np.asarray(array, dtype=kind)
    write = _element_text(array.dtype)
    if array.size == 0:
        return json.dumps(np.empty(array.shape).tolist())
    pieces = [write(value) for value in array.ravel()]
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
        _element_text(arrays[name].dtype)
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
    batch = next(iter(arrays.values())).shape[0]
    if not named:
        rows = [tensor_text(row, arrays[None].dtype) for row in arrays[None]]
    else:
        rows = ["{" + ", ".join(f"{json.dumps(name)}: {tensor_text(array[index], array.dtype)}"
                                for name, array in arrays.items()) + "}"
                for index in range(batch)]
    return '{%s"instances": [%s]}' % (head, ",".join(rows))
