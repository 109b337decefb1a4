"""tfmot's best recipe, the peer a pipeline run is compared with: prune 80%, then PQAT.

`tfmot_recipe` builds the smallest int8 file tensorflow-model-optimization
alone makes from a trained classifier, as its guides compose it: magnitude
pruning (`prune_low_magnitude`), `strip_pruning`, prune-preserving
quantization-aware training (``Default8BitPrunePreserveQuantizeScheme``),
then the TFLite converter with ``Optimize.DEFAULT``. Every step is tfmot's or
TensorFlow's own API, none of tfopt's: this arm is the reference tfopt's
pipeline is measured against (the headline benchmark and the report's
reference points). The file is measured as the pipeline measures its stages,
with `tfopt.export.verify_tflite`, so both sides count bytes, accuracy and
latency the same way.
"""

import json
import math
import os
import time

import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from absl import logging
from ai_edge_litert.interpreter import Interpreter

from tfopt import _files
from tfopt import _models
from tfopt import export
from tfopt.pipeline import _figures

TFLITE_FILE = "tfmot_prune_pqat.tflite"
# A run's reference point is pruned this much (the final sparsity of tfmot's documented example).
REFERENCE_SPARSITY = 0.8
# As the pipeline's pruning stages: the schedule reaches its final sparsity at 70% of the
# pruning steps and the rest train at that sparsity.
_RAMP_SHARE = 0.7
_LEARNING_RATE = 1e-3
_LATENCY_RUNS = 100
# The ops whose second input is the weight tensor prune-preserving QAT keeps sparse.
_WEIGHT_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED")


def tfmot_recipe(model, train, test, epochs, workdir, batch_size=64, sparsity=0.8, seed=0):
    """Runs tfmot's prune + prune-preserving QAT recipe on a copy of `model`; measures its file.

    The epoch budget is split in two: the first half (rounded down) prunes,
    the rest trains the prune-preserving QAT model, at least one epoch each.
    The pruning schedule is tfmot's `PolynomialDecay` from 0 to `sparsity` over
    the first 70% of the pruning steps; tfmot's `UpdatePruningStep` drives it.
    Both phases train with Adam (1e-3) on sparse categorical cross entropy
    from logits, so `model` must output logits.

    Args:
      model: the trained float tf_keras classifier, outputting logits. Not
        changed: the recipe works on a clone.
      train: ``(x, y)`` training examples and integer class ids.
      test: ``(x, y)`` the held-out split every figure is measured on.
      epochs: the total training epochs, 2 or more.
      workdir: the directory the TFLite file is written into (created).
      batch_size: training batch size. Defaults to 64, the pipeline's.
      sparsity: the share of weights pruned, in (0, 1). Defaults to 0.8.
      seed: seed of the clone's training (weights, data order). Defaults to 0.

    Returns:
      A dict: ``tflite_path``, ``tflite_bytes``, ``tflite_gzip_bytes``,
      ``latency_ms`` (single-thread LiteRT, batch 1), ``tflite_accuracy`` and
      ``keras_accuracy`` (of the QAT model) on `test`, ``sparsity`` (share of
      zeros in the file's convolution and dense weights), ``epochs``,
      ``pruning_epochs``, ``qat_epochs`` and ``wall_seconds`` (training,
      conversion and measuring).

    Raises:
      ValueError, TypeError: a bad argument, named, or a model tfmot's QAT
        cannot wrap (e.g. a BatchNormalization it cannot fold), before any
        training.

    Example:
      >>> reference = tfmot_recipe(model, (x_train, y_train), (x_test, y_test), 4, "work")
      >>> reference["tflite_gzip_bytes"], reference["tflite_accuracy"]
    """
    _models.validate_tf_keras_model(model, "tfmot_recipe")
    train, test = _validate_split(train, "train", model), _validate_split(test, "test", model)
    _validate_int("epochs", epochs, 2, "the recipe prunes for half of them and trains the "
                  "QAT model for the rest, at least one each")
    _validate_int("batch_size", batch_size, 1, "a training batch size")
    _validate_int("seed", seed, 0, "a random seed")
    if (isinstance(sparsity, bool) or not isinstance(sparsity, (int, float))
            or not 0 < sparsity < 1):
        raise ValueError(f"tfmot_recipe: sparsity must be a number in (0, 1), the share of "
                         f"weights pruned; got {sparsity!r}. Use e.g. 0.8.")
    if not isinstance(workdir, (str, os.PathLike)):
        raise TypeError(f"tfmot_recipe: workdir must be a directory path; got {workdir!r}.")
    _validate_quantizable(model)

    began = time.perf_counter()
    keras.utils.set_random_seed(seed)
    pruning_epochs = epochs // 2
    pruned = _prune(model, train, pruning_epochs, batch_size, sparsity)
    qat = _prune_preserving_qat(pruned, train, epochs - pruning_epochs, batch_size)

    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(os.fspath(workdir), TFLITE_FILE)
    converter = tf.lite.TFLiteConverter.from_keras_model(qat)
    # A QAT model carries its own ranges: the converter writes int8 weights and activations
    # from them without representative data.
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    with open(path, "wb") as stream:
        stream.write(converter.convert())

    x_test, y_test = test
    figures = export.verify_tflite(path, x_test, y_test, latency_runs=_LATENCY_RUNS)
    keras_predictions = np.argmax(qat.predict(x_test, batch_size=256, verbose=0), axis=-1)
    return {
        "tflite_path": path,
        "tflite_bytes": figures["bytes"], "tflite_gzip_bytes": figures["gzip_bytes"],
        "latency_ms": float(figures["latency_ms"]),
        "tflite_accuracy": float(figures["accuracy"]),
        "keras_accuracy": float(np.mean(keras_predictions == y_test)),
        "sparsity": weight_sparsity(path),
        "epochs": epochs, "pruning_epochs": pruning_epochs,
        "qat_epochs": epochs - pruning_epochs,
        "wall_seconds": round(time.perf_counter() - began, 2),
    }


def weight_sparsity(path):
    """The share of zeros in the weight tensors of a TFLite file's convolution and dense ops."""
    interpreter = Interpreter(model_path=os.fspath(path))
    interpreter.allocate_tensors()
    # LiteRT has no public list of ops; the weights are the second input of these ops.
    weights = [interpreter.get_tensor(op["inputs"][1])
               for op in interpreter._get_ops_details()  # pylint: disable=protected-access
               if op["op_name"] in _WEIGHT_OPS]
    total = sum(w.size for w in weights)
    return float(sum(np.count_nonzero(w == 0) for w in weights) / total) if total else 0.0


def _prune(model, train, epochs, batch_size, sparsity):
    """tfmot magnitude pruning on a clone of `model`; returns the stripped model."""
    steps = epochs * math.ceil(len(train[0]) / batch_size)
    frequency = max(1, min(100, steps // 10))
    end = max(frequency, int(steps * _RAMP_SHARE) // frequency * frequency)
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    pruned = tfmot.sparsity.keras.prune_low_magnitude(
        clone, pruning_schedule=tfmot.sparsity.keras.PolynomialDecay(
            0.0, sparsity, begin_step=0, end_step=end, frequency=frequency))
    _fit(pruned, train, epochs, batch_size, [tfmot.sparsity.keras.UpdatePruningStep()])
    return tfmot.sparsity.keras.strip_pruning(pruned)


def _prune_preserving_qat(pruned, train, epochs, batch_size):
    annotated = tfmot.quantization.keras.quantize_annotate_model(pruned)
    qat = tfmot.quantization.keras.quantize_apply(annotated, _scheme())
    _fit(qat, train, epochs, batch_size)
    return qat


def _fit(model, train, epochs, batch_size, callbacks=()):
    model.compile(keras.optimizers.Adam(_LEARNING_RATE),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    model.fit(*train, batch_size=batch_size, epochs=epochs, shuffle=True, verbose=0,
              callbacks=list(callbacks))


def _validate_quantizable(model):
    """Raises ValueError if tfmot's QAT cannot wrap `model`, before hours of pruning do."""
    try:
        tfmot.quantization.keras.quantize_apply(
            tfmot.quantization.keras.quantize_annotate_model(model), _scheme())
    except (RuntimeError, ValueError) as error:
        raise ValueError(f"tfmot_recipe: tfmot's prune-preserving QAT cannot quantize "
                         f"{model.name!r}: {error} tfmot's recipe is not available for this "
                         "model; compare without it.") from error


def _scheme():
    return tfmot.experimental.combine.Default8BitPrunePreserveQuantizeScheme()


def _validate_int(name, value, least, meaning):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
        raise ValueError(f"tfmot_recipe: {name} must be an int >= {least} ({meaning}); got "
                         f"{value!r}.")


def _validate_split(split, name, model):
    try:
        x, y = split
    except (TypeError, ValueError):
        raise ValueError(f"tfmot_recipe: {name} must be (x, y) arrays; got "
                         f"{type(split).__name__}.") from None
    x, y = np.asarray(x, np.float32), np.asarray(y)
    if x.shape[1:] != tuple(model.input_shape[1:]) or not len(x):
        raise ValueError(f"tfmot_recipe: {name} x has shape {x.shape}; the model takes "
                         f"examples of shape {tuple(model.input_shape[1:])} (at least one).")
    if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
        raise ValueError(f"tfmot_recipe: {name} y must be {len(x)} integer class ids; got "
                         f"shape {y.shape}, dtype {y.dtype}.")
    return x, y


def reference_point(directory, model, train, test, options, epochs):
    """{label: figures} of tfmot's recipe at `epochs`, run once into `directory` (kept)."""
    label = f"tfmot prune {REFERENCE_SPARSITY:.0%} + PQAT"
    if os.path.isdir(directory):
        return {label: _figures.read_figures(directory)}
    logging.info("tfopt.pipeline: tfmot's recipe for comparison: %d epoch(s)", max(2, epochs))
    try:
        with _files.atomic_path(directory, replace=False) as staging:
            figures = tfmot_recipe(
                model, train, test, max(2, epochs), staging, batch_size=options.batch_size,
                sparsity=REFERENCE_SPARSITY, seed=options.seed)
            figures.pop("tflite_path")
            with open(os.path.join(staging, _figures.FIGURES_FILE), "w",
                      encoding="utf-8") as stream:
                json.dump(figures, stream, indent=2, sort_keys=True)
    except ValueError as error:  # a model tfmot cannot quantize: no reference point
        logging.warning("tfopt.pipeline: no tfmot reference point: %s", error)
        return {}
    return {label: figures}
