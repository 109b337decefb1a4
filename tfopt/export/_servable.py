"""Which Keras model a server should run, given what a user hands to export.

A server runs a plain inference model. Users hand in what training left them
with: a `Distiller` (whose student is the model to serve), a pruned model
still wrapped for training (its wrappers only matter to `fit`), a shrunk or a
quantization-aware model (served as they are). This module picks the model to
serve, says in the log what it did, and refuses what no server can run.

Keras 3 models (``import keras``) are served as they are: a
`keras.distillation.Distiller` gives its student; tfopt's Keras 3 layers
compute through their masks and fake-quant ops, so nothing is stripped.
"""

from absl import logging

from tfopt import _models
from tfopt.export import _inputs
from tfopt.export import _keras3


def validate_model(model, action):
    """The model to serve (a Distiller's student), checked; nothing slow runs.

    Raises:
      ValueError: anything that is not a tf_keras or Keras 3 Model, or a
        subclassed model whose input signature is unknown.
    """
    student = _keras3.student(model) if _keras3.is_model(model) else _tf_keras_student(model)
    if student is not None:
        logging.info("tfopt.export: %s is given a Distiller; it exports its student %r, the "
                     "model the Distiller trained.", action, student.name)
        model = student
    _inputs.validate_model(model, action)
    if _keras3.is_model(model):
        _keras3.validate_backend(model, action)
    return model


def _tf_keras_student(model):
    from tfopt.distillation import Distiller
    return model.student if isinstance(model, Distiller) else None


def for_serving(model):
    """`model` without pruning wrappers (an unchanged model otherwise), logged."""
    if not _keras3.is_model(model):
        model = _stripped(model)
    if quantization_aware(model):
        logging.info("tfopt.export: %r is quantization-aware; the SavedModel runs it as "
                     "trained, with float fake-quantization ops. Integer kernels come from "
                     "export.tflite(model, path, mode='int8').", model.name)
    return model


def _stripped(model):
    """A tf_keras `model` without tfmot's or tfopt's pruning wrappers, logged."""
    import tensorflow_model_optimization as tfmot

    from tfopt import pruning
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
    return model


def quantization_aware(model):
    """Whether `model` holds tfmot quantization layers (Keras 3: FakeQuant ops in its graph)."""
    if _keras3.is_model(model):
        return _keras3.quantization_aware(model)
    return bool(_models._layers_where(model, _models._quantization_aware))


def _is_tfmot_pruning(layer):
    from tensorflow_model_optimization.python.core.sparsity.keras import pruning_wrapper
    return isinstance(layer, pruning_wrapper.PruneLowMagnitude)
