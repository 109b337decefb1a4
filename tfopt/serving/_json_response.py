"""Response bodies written as TF Serving writes them (``MakeJsonFromTensors`` and friends).

Row form: ``{"predictions": [...]}``, one entry per example (plain values with
one output, objects keyed by output alias with several). Columnar form:
``{"outputs": value}`` or ``{"outputs": {alias: value}}``. Float32 numbers in
their shortest round-trip form with ``.0`` on whole numbers, NaN/Infinity bare,
DT_STRING outputs whose alias ends in ``_bytes`` as ``{"b64": ...}``. The text
matches TF Serving's byte for byte, indentation included; output aliases are
written in sorted order (TF Serving's map order is unspecified).
"""

import base64

import numpy as np

from tfopt.serving import _json_request
from tfopt.serving import _json_tensor as jt
from tfopt.serving._json_writer import PrettyWriter, format_decimal, format_string

# The integer dtypes TF Serving writes (AddSingleValueAndAdvance has no DT_UINT16 case).
_INTEGERS = {np.dtype(kind) for kind in (np.int8, np.int16, np.int32, np.int64, np.uint8,
                                         np.uint32, np.uint64)}


def _scalar_writer(alias, array):
    """A function giving the JSON text of one element of `array` (AddSingleValueAndAdvance)."""
    kind = array.dtype
    if kind == np.float32 or kind == np.float64:
        width = kind.type
        return lambda value: format_decimal(value, width)
    if kind in _INTEGERS:
        return lambda value: str(int(value))
    if kind.kind == "b":
        return lambda value: "true" if value else "false"
    if kind.kind in "OSU":
        if alias.endswith("_bytes"):
            return lambda value: _Base64(base64.b64encode(_bytes(value)).decode("ascii"))
        # TF Serving writes the raw bytes; invalid UTF-8 is replaced here to keep the text valid.
        return lambda value: format_string(_bytes(value).decode("utf-8", "replace"))
    try:
        name = jt.datatype_string(jt.datatype(kind))
    except TypeError:
        name = str(kind)
    raise jt.JsonTensorError(f"Failed to write JSON value for tensor type: {name}")


class _Base64(str):
    """Base64 text to write as a ``{"b64": ...}`` object, member by member as TF Serving does."""


def _bytes(value):
    return value.encode("utf-8") if isinstance(value, str) else bytes(value)


def _write_tensor(writer, value, write):
    """Writes `value`, an array or one element of one, as nested lists (AddTensorValues)."""
    if isinstance(value, np.ndarray) and value.ndim:
        writer.start(True)
        for item in value:
            _write_tensor(writer, item, write)
        writer.end()
    else:
        text = write(value[()] if isinstance(value, np.ndarray) else value)
        if isinstance(text, _Base64):
            writer.start(False)
            writer.key("b64")
            writer.raw(format_string(text))
            writer.end()
        else:
            writer.raw(text)


def _validate_outputs(outputs):
    if not isinstance(outputs, dict) or not outputs:
        if isinstance(outputs, dict):
            raise jt.JsonTensorError("Cannot convert empty tensor map to JSON")
        raise TypeError(f"outputs must be a dict of output alias -> numpy array; got "
                        f"{type(outputs).__name__}.")
    arrays = {alias: np.asarray(outputs[alias]) for alias in sorted(outputs)}
    return {alias: (array, _scalar_writer(alias, array)) for alias, array in arrays.items()}


def make_predict_response(outputs, form):
    """The body TF Serving answers a predict request with.

    Args:
      outputs: output alias -> numpy array, as the signature returned them
        (DT_STRING outputs as arrays of bytes).
      form: the request's form, ``"row"`` or ``"columnar"`` (PredictRequest.form).

    Returns:
      The JSON text, a str.

    Raises:
      JsonTensorError: with TF Serving's message, e.g. outputs of different
        batch sizes in row form, or a dtype JSON cannot carry.
    """
    if form not in (_json_request.ROW, _json_request.COLUMNAR):
        raise ValueError(f"form must be 'row' or 'columnar' (PredictRequest.form); got {form!r}.")
    tensors = _validate_outputs(outputs)
    several = len(tensors) > 1
    writer = PrettyWriter()
    writer.start(False)
    if form == _json_request.COLUMNAR:
        writer.key("outputs")
        if several:
            writer.start(False)
        for alias, (array, write) in tensors.items():
            if several:
                writer.key(alias)
            _write_tensor(writer, array, write)
        if several:
            writer.end()
        writer.end()
        return writer.text()
    batch = None
    for alias, (array, _) in tensors.items():
        if array.ndim == 0:
            raise jt.JsonTensorError(f"Tensor name: {alias} has no shape information ")
        if batch is not None and array.shape[0] != batch:
            raise jt.JsonTensorError(f"Tensor name: {alias} has inconsistent batch size: "
                                     f"{array.shape[0]} expecting: {batch}")
        batch = array.shape[0]
    writer.key("predictions")
    writer.start(True)
    for row in range(batch):
        if several:
            writer.start(False)
        writer.single_line_arrays = True
        for alias, (array, write) in tensors.items():
            if several:
                writer.key(alias)
            _write_tensor(writer, array[row], write)
        writer.single_line_arrays = False
        if several:
            writer.end()
    writer.end()
    writer.end()
    return writer.text()


def make_classify_response(classes=None, scores=None):
    """The body of a classify answer: ``{"results": [[[label, score], ...], ...]}``.

    Args:
      classes: the signature's ``classes`` output, [batch, n] strings, or None
        (labels are then ``""``). Defaults to None.
      scores: the ``scores`` output, [batch, n] floats, or None (scores 0).
        Defaults to None.
    """
    if classes is None and scores is None:
        raise ValueError("make_classify_response needs classes, scores or both; got neither.")
    labels = None if classes is None else np.asarray(classes, dtype=object)
    values = None if scores is None else np.asarray(scores, dtype=np.float32)
    shape = (labels if labels is not None else values).shape
    if len(shape) != 2 or (labels is not None and values is not None and
                           labels.shape != values.shape):
        raise ValueError("classes and scores must be [batch, n] arrays of the same shape; got "
                         f"{None if labels is None else labels.shape} and "
                         f"{None if values is None else values.shape}.")
    if shape[0] == 0:
        raise jt.JsonTensorError("Cannot convert empty ClassificationResults to JSON")
    writer = PrettyWriter()
    writer.start(False)
    writer.key("results")
    writer.start(True)
    for row in range(shape[0]):
        writer.single_line_arrays = True
        writer.start(True)
        for column in range(shape[1]):
            writer.start(True)
            label = b"" if labels is None else _bytes(labels[row, column])
            writer.raw(format_string(label.decode("utf-8", "replace")))
            writer.raw(format_decimal(0.0 if values is None else values[row, column]))
            writer.end()
        writer.end()
        writer.single_line_arrays = False
    writer.end()
    writer.end()
    return writer.text()


def make_regress_response(values):
    """The body of a regress answer: ``{"results": [value, ...]}`` (values [batch] or [batch, 1])."""
    values = np.asarray(values, dtype=np.float32)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"regression values must be [batch] or [batch, 1]; got {values.shape}.")
    if values.size == 0:
        raise jt.JsonTensorError("Cannot convert empty RegressionResults to JSON")
    writer = PrettyWriter()
    writer.start(False)
    writer.key("results")
    writer.single_line_arrays = True
    writer.start(True)
    for value in values:
        writer.raw(format_decimal(value))
    writer.end()
    writer.end()
    return writer.text()


def make_error_body(message):
    """TF Serving's error body, ``{"error": message}``."""
    writer = PrettyWriter()
    writer.start(False)
    writer.key("error")
    writer.raw(format_string(str(message)))
    writer.end()
    return writer.text()
