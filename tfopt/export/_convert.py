"""Running the TFLite converter, and saying in one line why it failed when it does."""

import contextlib
import os
import re
import sys
import tempfile
import warnings

import tensorflow as tf
from absl import logging
from tensorflow.lite.python import convert_phase

from tfopt import quiet
from tfopt.export import _keras3
from tfopt.export import _recurrent

# Modes whose file computes in integers only: their input/output dtype and ops set.
INTEGER = {
    "int8": (tf.int8, tf.lite.OpsSet.TFLITE_BUILTINS_INT8),
    "int16x8": (tf.int16,
                tf.lite.OpsSet.EXPERIMENTAL_TFLITE_BUILTINS_ACTIVATIONS_INT16_WEIGHTS_INT8),
}

# Calibration batches: larger ones give the same ranges, much faster than 1.
_CALIBRATION_BATCH = 32


def convert(model, mode, calibration, sparsity, quantization_aware):
    """The .tflite bytes of `model` in `mode`.

    Recurrent models are converted with a fixed batch size (see _recurrent
    and, for Keras 3 models, _keras3).

    Raises:
      ValueError: the converter failed; the message names the ops (and the
        layers holding them) it could not handle, and the converter's own
        error, MLIR and all, is the ValueError's ``__cause__``.
    """
    if _keras3.is_model(model):
        # The converter reads a Keras 3 model from a SavedModel (_keras3 says why).
        with tempfile.TemporaryDirectory() as directory:
            converter, batch = _keras3.converter(model, directory)
            return _converted(converter, model, mode, calibration, sparsity, quantization_aware,
                              batch)
    if _recurrent.recurrent_layers(model):
        converter, batch = _recurrent.fixed_batch_converter(model)
    else:
        converter, batch = tf.lite.TFLiteConverter.from_keras_model(model), None
    return _converted(converter, model, mode, calibration, sparsity, quantization_aware, batch)


def _converted(converter, model, mode, calibration, sparsity, quantization_aware, batch):
    """Sets the mode's options on `converter` (its batch size fixed, or None) and converts."""
    fixed = batch is not None
    batch = batch or _CALIBRATION_BATCH
    optimizations = [] if mode == "float32" else [tf.lite.Optimize.DEFAULT]
    if sparsity:
        optimizations.append(tf.lite.Optimize.EXPERIMENTAL_SPARSITY)
    converter.optimizations = optimizations
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if mode in INTEGER and calibration is not None:
        # A fixed batch size takes whole batches only.
        usable = len(calibration) - len(calibration) % batch if fixed else len(calibration)
        converter.representative_dataset = lambda: (
            [calibration[i:i + batch]] for i in range(0, usable, batch))
    if mode in INTEGER:
        dtype, ops = INTEGER[mode]
        converter.inference_input_type = converter.inference_output_type = dtype
        # With integer-only ops set and no data, the converter demands data even for
        # quantization-aware models (it checks before it has seen their fake-quant
        # ops). They convert fine without the setting; the file check then makes
        # sure nothing stayed float.
        if not (quantization_aware and calibration is None):
            converter.target_spec.supported_ops = [ops]
    try:
        with _quiet(), native_output_silenced():
            return converter.convert()
    except convert_phase.ConverterError as error:
        raise ValueError(_explained(error, model, mode)) from error


@contextlib.contextmanager
def _quiet():
    """Keeps the converter's INFO lines and its warning about input statistics out."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Statistics for quantized inputs")
            yield
    finally:
        logging.set_verbosity(verbosity)


@contextlib.contextmanager
def native_output_silenced():
    """Sends what the converter's (or LiteRT's) C++ code prints away from stdout and stderr.

    LiteRT prints "INFO: Created TensorFlow Lite XNNPACK delegate for CPU." to
    stderr when a process first builds an interpreter with its default
    delegate. The converter prints ``fully_quantize: 0, inference_type: 6, ...`` to
    stdout and MLIR notes to stderr from C++, through the file descriptors, so
    redirecting `sys.stdout` would not catch them: descriptors 1 and 2 point
    elsewhere for the block. Its errors are not lost: ConverterError carries
    them. With ``TFOPT_VERBOSE=1`` (the switch tfopt's tools use) stderr stays
    as it is and the stdout lines go to stderr, so a library call still
    prints nothing to stdout. Other threads' output to the two descriptors
    is redirected with it while the conversion runs.
    """
    try:
        sys.stdout.flush()
        sys.stderr.flush()
        saved = {fd: os.dup(fd) for fd in (1, 2)}
    except (OSError, ValueError, AttributeError):  # no usable descriptors: nothing to silence
        yield
        return
    with open(os.devnull, "wb") as devnull:
        loud = quiet.verbose()
        os.dup2(saved[2] if loud else devnull.fileno(), 1)
        if not loud:
            os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    stream.flush()
            for fd, copy in saved.items():
                os.dup2(copy, fd)
                os.close(copy)


# MLIR locations name the op by its TensorFlow scope: "<model>/<layer>/.../<op>@<function>".
_SCOPE = re.compile(r'"([^"/@\s]+)/([^"/@\s]+)/[^"@\s]*@')
_ERROR_LINE = re.compile(r"error: (.+)")


def _problems(error):
    """``[(message, layer or None)]``: each distinct failure, in the converter's order."""
    found = []
    for item in getattr(error, "errors", None) or []:
        message = item.error_message.split("\n")[0].strip()
        scopes = [call.name for call in item.location.call if "/" in call.name]
        match = _SCOPE.search(f'"{scopes[0]}') if scopes else None
        found.append((message, match.group(2) if match else None))
    if not found:  # errors the converter reports only as text
        text = str(error)
        match = _SCOPE.search(text)
        found = [(line.strip(), match.group(2) if match else None)
                 for line in _ERROR_LINE.findall(text)
                 if not line.startswith("failed while converting")]
    unique = []
    for problem in found:
        if problem not in unique:
            unique.append(problem)
    return unique or [(str(error).split("\n")[0].strip(), None)]


def _hint(text, mode):
    if "neither a custom op nor a flex op" in text or "ERROR_NEEDS_FLEX_OPS" in text:
        return ("TFLite's built-in ops do not include it: build that layer from ops TFLite runs "
                "(see TensorFlow's 'TFLite and TensorFlow operator compatibility' guide) or "
                "leave it out of the exported model.")
    if "element_shape to be static" in text:
        return ("A recurrent layer with a free batch size: rebuild the model with a fixed "
                "batch size (keras.Input(shape, batch_size=1)) and copy the weights over.")
    if "mismatched quantized axes" in text:
        return ("A per-channel fake-quant on a Dense (or EinsumDense) kernel: the converter "
                "takes only per-tensor ranges there. Fake-quantize that kernel per-tensor "
                "(no axis); convolution kernels may stay per-channel.")
    if "same scale constraint" in text:
        return ("int8 needs this op's input and output on one scale, and the model's ranges "
                "differ; mode='dynamic' or 'float16' convert it without int8 activations.")
    if mode != "float32":
        return ("Try mode='float32' to see whether the model converts at all, or "
                "mode='dynamic' / 'float16', which keep float activations.")
    return "Replace the layer named above with ops TFLite supports."


def _explained(error, model, mode):
    problems = _problems(error)
    if _keras3.is_model(model):
        problems = [(message, _keras3.layer_name(model, layer)) for message, layer in problems]
    described = "; ".join(f"{message} (layer {layer!r})" if layer else message
                          for message, layer in problems[:3])
    more = f" (and {len(problems) - 3} more)" if len(problems) > 3 else ""
    return (f"The TFLite converter cannot convert {model.name!r} (mode={mode!r}): "
            f"{described}{more}. {_hint(str(error), mode)} The converter's full message is "
            "this error's __cause__.")
