"""Which Keras model a server should run, given what a user hands to export.

A server runs a plain inference model. Users hand in what training left them
with: a `Distiller` (whose student is the model to serve), a pruned model
still wrapped for training (its wrappers only matter to `fit`), a shrunk or a
quantization-aware model (served as they are). This module picks the model to
serve, says in the log what it did, and refuses what no server can run.
"""

import tensorflow_model_optimization as tfmot
import tf_keras as keras
from absl import logging
from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper

from tfopt import _models
from tfopt import pruning
from tfopt.distillation import Distiller
from tfopt.export import _inputs


def validate_model(model, action):
    """The model to serve (a Distiller's student), checked; nothing slow runs.

    Raises:
      ValueError: a Keras 3 model, anything else that is not a tf_keras
        Model, or a subclassed model whose input signature is unknown.
    """
    if isinstance(model, Distiller):
        logging.info("tfopt.export: %s is given a Distiller; it exports its student %r, the "
                     "model the Distiller trained.", action, model.student.name)
        model = model.student
    if not isinstance(model, keras.Model) and type(model).__module__.startswith("keras"):
        raise ValueError(
            f"{action} needs a tf_keras (Keras 2) model, got a Keras 3 "
            f"{type(model).__name__} ({type(model).__module__}). Build the model with "
            "`import tf_keras as keras`, or save this one with its own "
            "model.export(path, format='tf_saved_model') and serve that directory.")
    _inputs.validate_model(model, action)
    return model


def for_serving(model):
    """`model` without pruning wrappers (an unchanged model otherwise), logged."""
    if _models._layers_where(model, _is_tfmot_pruning):
        logging.info("tfopt.export: %r holds tfmot pruning wrappers; exporting "
                     "tfmot.sparsity.keras.strip_pruning(model).", model.name)
        model = tfmot.sparsity.keras.strip_pruning(model)
    pruned = _models._layers_where(model, _models._pruning)
    if pruned:
        logging.info("tfopt.export: %r holds %d PruneWrapper layers; exporting "
                     "tfopt.pruning.strip(model) (same predictions, no wrappers).",
                     model.name, len(pruned))
        model = pruning.strip(model)
    if quantization_aware(model):
        logging.info("tfopt.export: %r is quantization-aware; the SavedModel runs it as "
                     "trained, with float fake-quantization ops. Integer kernels come from "
                     "export.tflite(model, path, mode='int8').", model.name)
    return model


def quantization_aware(model):
    """Whether `model` holds tfmot quantization layers."""
    return bool(_models._layers_where(model, _models._quantization_aware))


def _is_tfmot_pruning(layer):
    return isinstance(layer, pruning_wrapper.PruneLowMagnitude)
