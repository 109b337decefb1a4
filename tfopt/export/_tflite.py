"""tflite(): a Keras model to a .tflite file that is checked before it appears."""

import os

import numpy as np
import tensorflow as tf
from absl import logging
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType

from tfopt import _data
from tfopt import _files
from tfopt.export import _convert
from tfopt.export import _inputs
from tfopt.export import _keras3
from tfopt.export import _recurrent
from tfopt.export._verify import verify_tflite

TFLITE_MODES = ("float32", "dynamic", "float16", "int8", "int16x8")


def tflite(model, path, mode="float32", representative_data=None, sparsity=False, verify=None,
           agreement_threshold=0.98):
    """Converts a Keras model to a TFLite file, checks it, and writes it atomically.

    The file is converted, checked (it loads in LiteRT; integer modes leave no
    float tensor behind), optionally verified against the Keras model on real
    examples, and only then renamed to `path`. If anything fails, nothing is
    left at `path` (an existing file there stays as it was). Everything written
    on the way, the converter's temporary SavedModel included, stays in one
    hidden ``.tfopt-*`` directory beside `path`, removed when the export ends;
    if the process is killed, the next export into that directory removes it.

    The call prints nothing: the converter's own lines (its
    ``fully_quantize: ...`` line on stdout, MLIR notes on stderr) are
    silenced while it runs. Set the environment variable ``TFOPT_VERBOSE=1``
    to see them (on stderr), as for tfopt's command-line tools.

    Modes:
      - "float32": plain conversion.
      - "dynamic": int8 weights, float activations (no data needed).
      - "float16": float16 weights, about half the float32 file.
      - "int8": integer only, int8 input and output, about a quarter of the
        float32 file. Needs `representative_data` to calibrate activation
        ranges, unless the model was trained quantization-aware, whose ranges
        are learned: a tf_keras model from tfmot's `quantize_model` or tfopt's
        `quantize`, a Keras 3 model whose graph holds FakeQuant ops
        (`keras.quantizers.fake_quant_with_min_max_vars`, which tfopt's Keras 3
        quantization layers use). Such a file has builtin ops only.
      - "int16x8": int16 activations, int8 weights, int16 input and output;
        closer to float than int8. Needs `representative_data`.

    Recurrent models (LSTM, GRU, SimpleRNN, Bidirectional) are converted with
    a fixed batch size (the model's own, else 1) and calibrated one example at
    a time: with a free batch size the converter fails on them. An LSTM becomes
    TFLite's fused LSTM op and converts in every mode but "int16x8"; the other
    recurrent layers convert in "float32", "dynamic" and "float16" (in "int8"
    the converter crashes on them, so it is refused). Integer inputs of the
    Keras model (token ids) stay integer inputs in "int8" files. A converted
    LSTM keeps its state between invocations: call the interpreter's
    ``reset_all_variables()`` before each sequence, as `verify_tflite` does.

    Keras 3 models (``import keras``) take the same path, read by the
    converter from a SavedModel of the model. Keras 3 runs LSTM, GRU and
    SimpleRNN as a loop: they convert in the float modes with a fixed batch
    size of 1, and in "int8" only with ``unroll=True``. A model quantized by
    Keras itself (``model.quantize``) does not convert and is refused. A
    per-channel fake-quant on a Dense kernel fails in the converter (it wants
    per-tensor there; convolutions may be per-channel): the error says so.

    Args:
      model: a built Keras model, tf_keras or Keras 3 (Sequential,
        Functional, or subclassed and called once), with one input if data is
        passed (tf_keras pruned models: pass `pruning.strip(model)`).
      path: the file to write; missing parent directories are created.
      mode: one of "float32", "dynamic", "float16", "int8", "int16x8".
        Defaults to "float32".
      representative_data: calibration inputs as the model takes them: an
        array (a few hundred examples), or a tf.data.Dataset / iterable of
        batches (``(x, y)`` pairs are fine; read up to 1,000 examples). Always
        checked against the model's input (shape, dtype, finite values);
        used by "int8" and "int16x8" only
        (given to "dynamic", the converter would silently switch to int8
        activations). Defaults to None.
      sparsity: store weights that are mostly zeros in a sparse format, which
        shrinks pruned models' files (about 3x at 80% sparsity). Use it with
        "float32" or "float16": LiteRT's default XNNPACK delegate cannot load
        sparse int8 weights, so "dynamic" and "int8" files fail the load check.
        Defaults to False.
      verify: ``(x, y)`` examples (`y` may be None) to run the file on before
        writing it; the export fails unless its top-1 agreement with `model`
        reaches `agreement_threshold`. Defaults to None (no verification).
      agreement_threshold: the share of `verify` examples, in [0, 1], on which
        the file must pick the Keras model's class. Defaults to 0.98.

    Returns:
      `path`, as a string.

    Raises:
      TypeError: an argument of the wrong type (``sparsity="yes"``,
        ``agreement_threshold="0.9"``, data that is not arrays).
      ValueError: for an unknown mode, missing, misshapen or non-finite
        representative or verify data, a path that cannot be written, an
        object that is not a Keras model, a model the converter cannot convert (the
        message names the op and layer; the converter's full error is its
        ``__cause__``), a converted file that does not load or is not
        integer-only, or failed verification. Path and argument problems are
        found before converting. A Keras 3 model that Keras quantized
        (``model.quantize``) is refused before converting.

    Example:
      >>> tflite(model, "model.tflite", mode="int8", representative_data=x_train[:300],
      ...        verify=(x_test, y_test))
      'model.tflite'
    """
    _inputs.validate_model(model, "export.tflite")
    keras3 = _keras3.is_model(model)
    if keras3:
        _keras3.validate_convertible(model)
    _validate_mode(mode)
    _validate_flag(sparsity, "sparsity")
    _validate_threshold(agreement_threshold)
    _inputs.validate_path(path, "export.tflite")
    calibration = None
    if representative_data is not None:
        spec = _inputs.input_spec(model, "representative_data")
        calibration = _data.validate_examples(representative_data, spec, "representative_data")
    # Only an integer mode without data asks (tracing a Keras 3 model takes a while).
    quantization_aware = (mode in _convert.INTEGER and calibration is None
                          and _is_quantization_aware(model))
    _validate_calibration(mode, calibration, quantization_aware, model)
    if keras3:
        _keras3.validate_mode(model, mode, _convert.INTEGER)
    else:
        _recurrent.validate_mode(model, mode)
    if verify is not None:
        verify = _validate_verify(verify, model)

    with _files.atomic_path(path) as temporary:
        # The converter's temporary SavedModel goes to the staging directory too,
        # so an export killed mid-way leaves one directory, which the next
        # export into this directory removes.
        with _files.temporary_files_in(os.path.dirname(temporary)):
            content = _convert.convert(model, mode, calibration, sparsity, quantization_aware)
        _validate_file(content, mode, sparsity, _integer_inputs(model))
        with open(temporary, "wb") as f:
            f.write(content)
        if verify is not None:
            _check_agreement(temporary, verify, model, mode, agreement_threshold, path)
    logging.info("tfopt.export: wrote %s (%s, %d bytes).", path, mode, len(content))
    return os.fspath(path)


def _validate_mode(mode):
    if mode not in TFLITE_MODES:
        allowed = ", ".join(map(repr, TFLITE_MODES))
        raise ValueError(f"Unknown mode {mode!r}; use one of {allowed}.")


def _validate_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")


def _validate_threshold(threshold):
    if isinstance(threshold, (bool, np.bool_)) or not isinstance(threshold, (int, float)):
        raise TypeError(f"agreement_threshold must be a number in [0, 1], got "
                        f"{type(threshold).__name__} {threshold!r}.")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"agreement_threshold is a share of examples in [0, 1], got "
                         f"{threshold!r}.")


def _validate_calibration(mode, calibration, quantization_aware, model):
    if mode not in _convert.INTEGER or calibration is not None:
        return
    uncalibrated = [] if _keras3.is_model(model) else _uncalibrated(model)
    if mode == "int8" and quantization_aware and uncalibrated:
        raise ValueError(
            f"mode='int8' needs representative_data for this quantization-aware model: the "
            f"tensors inside its layers {uncalibrated} (normalization statistics, attention "
            "scores, recurrent gates) have no trained ranges, so the converter calibrates "
            "them. Pass a few hundred training inputs, e.g. representative_data=x_train[:300].")
    if mode == "int8" and quantization_aware:
        return
    how = ("with fake-quant ops (tfopt.keras3.quantization, or keras.quantizers."
           "fake_quant_with_min_max_vars in your layers)" if _keras3.is_model(model) else
           "(tfmot.quantization.keras.quantize_model)")
    qat = (f" or train the model quantization-aware first {how}, which learns the ranges"
           if mode == "int8" else "")
    raise ValueError(
        f"mode={mode!r} needs representative_data: it calibrates the range of every activation. "
        f"Pass a few hundred training inputs, e.g. representative_data=x_train[:300]{qat}; "
        "mode='dynamic' or 'float16' need no data.")


def _validate_verify(verify, model):
    if not isinstance(verify, (tuple, list)) or len(verify) != 2:
        raise ValueError(f"verify must be a pair (x, y) with y possibly None, got "
                         f"{type(verify).__name__}.")
    x, y = verify
    x = _data.validate_examples(x, _inputs.input_spec(model, "verify"), "verify x")
    if y is not None:
        y = _data.validate_labels(y, len(x), "verify y")
    return x, y


def _uncalibrated(model):
    """A tf_keras QAT model's layers whose inner tensors the converter must calibrate."""
    from tfopt.quantization import _layer_configs
    return sorted({layer.name for layer in _recurrent.recurrent_layers(model)}
                  | set(_layer_configs.needs_calibration(model)))


def _is_quantization_aware(model):
    """Whether the converter finds trained ranges in `model`: tfmot QAT layers, or for a
    Keras 3 model FakeQuant ops in its graph."""
    if _keras3.is_model(model):
        return _keras3.quantization_aware(model)
    import tensorflow_model_optimization as tfmot
    return any(isinstance(layer, tfmot.quantization.keras.QuantizeWrapper)
               for layer in model.submodules)


def _integer_inputs(model):
    """The integer dtypes among the model's inputs (token ids stay integers in any mode)."""
    return {np.dtype(spec.dtype.as_numpy_dtype) for spec in tf.nest.flatten(
        _inputs.input_specs(model)) if spec.dtype.is_integer}


def _validate_file(content, mode, sparsity, integer_inputs):
    """Raises ValueError unless the file loads in LiteRT and keeps the mode's promise.

    The promise of an integer mode: inputs and outputs of its integer type, and
    no float tensor read or written by an op. Integer tensors of other widths
    are fine: a free batch dimension leaves shape arithmetic in the file
    (SHAPE, PACK; in a Keras 3 squeeze-excite block a GATHER with int64
    indices), which computes on shapes, not activations. Fixing the batch
    would remove it but make the file take one example per call.
    """
    try:
        with _convert.native_output_silenced():
            interpreter = Interpreter(model_content=content)
            interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
        hint = (" LiteRT's default XNNPACK delegate cannot run sparse int8 weights: use "
                "sparsity=True with mode='float32' or 'float16', or sparsity=False."
                if sparsity and mode in ("dynamic", "int8") else "")
        raise ValueError(f"The converted {mode} file does not load in LiteRT: "
                         f"{str(error).strip()}.{hint}") from error
    if mode not in _convert.INTEGER:
        return
    want = np.dtype(_convert.INTEGER[mode][0].as_numpy_dtype)
    wrong_ends = [f"{d['name']} ({np.dtype(d['dtype']).name})" for d, allowed in (
        [(d, {want} | integer_inputs) for d in interpreter.get_input_details()]
        + [(d, {want}) for d in interpreter.get_output_details()])
        if np.dtype(d["dtype"]) not in allowed]
    floats = _float_tensors(content)
    if wrong_ends or floats:
        raise ValueError(
            f"mode={mode!r} promises an integer-only file with {want.name} inputs and outputs "
            "(integer inputs of the Keras model, such as token ids, stay as they are), "
            f"but the converter left inputs/outputs {wrong_ends} and float tensors {floats[:10]}"
            f"{' ...' if len(floats) > 10 else ''}. A layer it cannot quantize is the usual "
            "cause: use mode='dynamic' or 'float16', or replace that layer.")


def _float_tensors(content):
    """Names of the float tensors the file's ops read or write.

    Listed without LiteRT's default delegate, which would hide the ops it takes
    over. A quantized LSTM also lists float "intermediate" tensors that only
    carry scales; no op reads or writes them, so they do not count.
    """
    interpreter = Interpreter(model_content=content, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interpreter.allocate_tensors()
    used = {i for op in interpreter._get_ops_details() for i in (*op["inputs"], *op["outputs"])}
    return [d["name"] for d in interpreter.get_tensor_details()
            if d["index"] in used and np.dtype(d["dtype"]).kind == "f"]


def _check_agreement(file, verify, model, mode, threshold, path):
    x, y = verify
    figures = verify_tflite(file, x, y, reference=model, latency_runs=0)
    if "agreement" not in figures:
        raise ValueError("verify compares top-1 classes, so it needs a classifier whose output "
                         "has at least two classes; leave verify=None for other models and "
                         "call export.verify_tflite for max_abs_diff.")
    logging.info("tfopt.export: %s file verified on %d examples: %s", mode, len(x), figures)
    if figures["agreement"] < threshold:
        accuracy = (f"; accuracy {figures['accuracy']:.2%} against the Keras model's "
                    f"{figures['reference_accuracy']:.2%}" if "accuracy" in figures else "")
        raise ValueError(
            f"The {mode} file picks the Keras model's class on {figures['agreement']:.2%} of "
            f"{len(x)} verify examples, below agreement_threshold={threshold:.2%} (largest "
            f"output difference {figures['max_abs_diff']:.4g}{accuracy}). Nothing was written "
            f"to {str(path)!r}. Try more representative_data, mode='int16x8' or 'float16', or "
            "quantization-aware training.")
