"""verify_tflite(): run a .tflite file on real examples and compare it with Keras."""

import os

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from tfopt import _data
from tfopt import measure
from tfopt.export import _convert
from tfopt.export import _inputs


def verify_tflite(path, x, y=None, reference=None, num_threads=1, latency_runs=100):
    """Runs a TFLite file through LiteRT, one example at a time, and measures it.

    Every example starts from a fresh state: the file's variable tensors (a
    converted LSTM's state) are reset before each one, as a stateless Keras
    model does. Inputs are given as the Keras model takes them; a file with int8 or
    int16 inputs gets them quantized with the file's own scale and zero point,
    and quantized outputs are dequantized the same way, so every figure is on
    the Keras model's scale. Accuracy and agreement are top-1 over the last
    axis, so they need a classifier output with at least two classes.

    Args:
      path: the `.tflite` file, with one input and one output.
      x: examples as the Keras model takes them, first axis counting examples:
        an array, or a tf.data.Dataset / iterable of batches (read up to 1,000
        examples). Checked before anything runs, like all example data in
        tfopt: shape, dtype, and finite values.
      y: labels, integer class ids (n,) or one-hot (n, classes), one per
        example; None skips `accuracy`. Defaults to None.
      reference: the Keras model to compare with, tf_keras or Keras 3; None
        skips `agreement` and `max_abs_diff`. Defaults to None.
      num_threads: interpreter threads, for every figure including latency.
        Defaults to 1, the per-example single-core latency of a phone.
      latency_runs: timed invocations (after 10 untimed ones) for
        `latency_ms`; 0 skips it. Defaults to 100.

    Returns:
      A dict with
      `examples` (int), `bytes` and `gzip_bytes` (file size raw and gzip -9),
      `latency_ms` (median of single-example invocations, unless
      ``latency_runs=0``), and when their inputs are given: `accuracy` (top-1
      of the file on `y`), `reference_accuracy` (the Keras model's, with `y`),
      `agreement` (share of examples where the file and `reference` pick the
      same class) and `max_abs_diff` (largest absolute difference between their
      outputs).

    Raises:
      TypeError: an argument of the wrong type (e.g. ``num_threads="2"``).
      ValueError: `path` is not a TFLite file LiteRT loads, or `x`, `y` or
        `reference` do not fit the file.

    Example:
      >>> figures = verify_tflite("model.tflite", x_test, y_test, reference=model)
      >>> figures["accuracy"], figures["agreement"], figures["latency_ms"]
    """
    validate_tflite_file(path)
    _validate_count(num_threads, "num_threads", 1, "1 or more")
    _validate_count(latency_runs, "latency_runs", 0, "0 (skip) or more")
    if reference is not None:
        _inputs.validate_keras_model(reference, "verify_tflite's reference")
    interpreter = _load(path, num_threads)
    source, target = _single_io(interpreter, path)
    x = _data.validate_examples(x, _file_input_spec(source), "x")
    labels = None if y is None else _data.validate_labels(y, len(x), "y")
    outputs = _run(interpreter, source, target, x)

    raw, compressed = measure.file_size(path)
    figures = {"examples": len(x), "bytes": raw, "gzip_bytes": compressed}
    if latency_runs:
        figures["latency_ms"] = measure.tflite_latency(interpreter, runs=latency_runs, warmup=10)
    classifier = outputs.ndim >= 2 and outputs.shape[-1] >= 2
    if labels is not None:
        labels = _class_ids(labels, outputs)
        if classifier:
            figures["accuracy"] = _top1(outputs, labels)
    if reference is not None:
        expected = np.asarray(reference.predict(x, batch_size=256, verbose=0), np.float32)
        if expected.shape != outputs.shape:
            raise ValueError(f"reference outputs shape {expected.shape}; the file outputs "
                             f"{outputs.shape}. Pass the Keras model the file was converted from.")
        figures["max_abs_diff"] = float(np.max(np.abs(outputs - expected)))
        if classifier:
            figures["agreement"] = _top1(outputs, np.argmax(expected, axis=-1))
            if labels is not None:
                figures["reference_accuracy"] = _top1(expected, labels)
    return figures


# Every TFLite file is a FlatBuffer whose identifier, "TFL3", sits at bytes 4-8.
_IDENTIFIER = b"TFL3"
_KNOWN_HEADERS = {b"PK\x03\x04": "a zip archive (a .keras file?)",
                  b"\x89HDF": "an HDF5 file (a .h5 Keras model?)"}


def validate_tflite_file(path, action="verify_tflite"):
    """Raises TypeError/ValueError, naming `action`, unless `path` is a TFLite file."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{action} needs the path of a .tflite file, got "
                        f"{type(path).__name__} {path!r}.")
    if os.path.isdir(path):
        raise ValueError(f"{action}: {os.fspath(path)!r} is a directory (a SavedModel?); "
                         "give the .tflite file, e.g. one written by tfopt.export.tflite.")
    if not os.path.isfile(path):
        raise ValueError(f"{action}: no file at {os.fspath(path)!r}.")
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] != _IDENTIFIER:
        kind = ("an empty file" if not head else
                next((name for magic, name in _KNOWN_HEADERS.items() if head.startswith(magic)),
                     f"a file starting with {head!r}"))
        raise ValueError(f"{action}: {os.fspath(path)!r} is not a TFLite model: it is "
                         f"{kind}, and a .tflite file carries {_IDENTIFIER!r} at byte 4. "
                         "Convert the Keras model with tfopt.export.tflite first.")


def _validate_count(value, name, least, allowed):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an int, {allowed}, got {type(value).__name__} "
                        f"{value!r}.")
    if value < least:
        raise ValueError(f"{name} must be {allowed}, got {value!r}.")


def _load(path, num_threads):
    try:
        with _convert.native_output_silenced():  # LiteRT's once-per-process XNNPACK INFO line
            interpreter = Interpreter(model_path=os.fspath(path), num_threads=int(num_threads))
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"verify_tflite: LiteRT cannot load {os.fspath(path)!r}: "
                         f"{str(error).strip()}. The file may be truncated or corrupt; export "
                         "it again.") from error
    return interpreter


def _single_io(interpreter, path):
    inputs, outputs = interpreter.get_input_details(), interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
        raise ValueError(f"verify_tflite supports files with one input and one output; {path!r} "
                         f"has {len(inputs)} inputs and {len(outputs)} outputs.")
    source = inputs[0]
    if source["shape"][0] != 1:
        # Files from models with a fixed batch size: examples still run one at a time.
        interpreter.resize_tensor_input(source["index"], [1, *source["shape"][1:]])
        interpreter.allocate_tensors()
        source = interpreter.get_input_details()[0]
    return source, interpreter.get_output_details()[0]


def _file_input_spec(source):
    """The file's input as the Keras model took it: float where the file quantizes it."""
    scale, _ = source["quantization"]
    dtype = np.float32 if scale else np.dtype(source["dtype"])
    return tf.TensorSpec([None, *(int(d) for d in source["shape"][1:])], dtype,
                         name=source["name"])


def _class_ids(labels, outputs):
    if labels.ndim == 2 and labels.shape[1] == outputs.shape[-1] and labels.shape[1] > 1:
        return np.argmax(labels, axis=-1)  # one-hot
    return labels.reshape(len(labels))


def _run(interpreter, source, target, x):
    """Outputs for every example, batch 1, on the float scale of the Keras model."""
    outputs = []
    for example in x:
        # A converted LSTM keeps its state in variable tensors from one call to the
        # next; the Keras model starts every sequence from zeros. (No-op elsewhere.)
        interpreter.reset_all_variables()
        interpreter.set_tensor(source["index"], quantize(example[np.newaxis], source))
        interpreter.invoke()
        outputs.append(dequantize(interpreter.get_tensor(target["index"]), target))
    return np.concatenate(outputs)


def quantize(values, detail):
    """Float values in the dtype a tensor takes, with its scale and zero point if it has them."""
    scale, zero_point = detail["quantization"]
    dtype = np.dtype(detail["dtype"])
    if scale == 0.0 or dtype.kind not in "iu":
        return np.asarray(values).astype(dtype)
    info = np.iinfo(dtype)
    return np.clip(np.round(values / scale + zero_point), info.min, info.max).astype(dtype)


def dequantize(values, detail):
    """A tensor's values as float32 (quantized ones mapped back to the real scale)."""
    scale, zero_point = detail["quantization"]
    if scale == 0.0:
        return values.astype(np.float32)
    return ((values.astype(np.float32) - zero_point) * scale).astype(np.float32)


def _top1(outputs, labels):
    return float(np.mean(np.argmax(outputs, axis=-1) == labels))
