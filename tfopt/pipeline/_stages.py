"""The pipeline's stages: each takes the last stage's model and returns a smaller one.

Every stage is ordinary ``fit`` training with tfopt's public API; the
pipeline adds no technique of its own. The float model teaches every stage
(`distillation.Distiller`), so each stage learns the float model's answers
as well as the labels. Pruning stages ramp their sparsity with
`pruning.PolynomialDecay` over the first 70% of the stage's steps and train
the rest at the final sparsity.
"""

import math

import tf_keras as keras

from tfopt import distillation
from tfopt import pruning
from tfopt import quantization

# A student learns from the teacher's softened logits and a little from the labels
# (distillation_benchmark.py measured alpha 0.1 at temperature 4 as the recipe).
_ALPHA = 0.1
_LEARNING_RATE = 1e-3
# The pruning schedule reaches its final sparsity at 70% of the stage's steps.
_RAMP_SHARE = 0.7


def run_stage(name, model, teacher, train, options, callbacks=()):
    """Runs stage `name` on `model`; returns the stage's model (plain, or QAT for "qat").

    `model` itself is left as it was: pruning and quantization work on copies.

    Args:
      name: a stage of `_recipe.STAGES`.
      model: the previous stage's model (plain Keras).
      teacher: the float model, which every stage distills from.
      train: ``(x, y)`` training arrays.
      options: the run's `_recipe.Options`.
      callbacks: more Keras callbacks for the stage's ``fit`` (progress, backup).
    """
    stage = _STAGES[name]
    return stage(model, teacher, train, options, list(callbacks))


def _distill(model, teacher, train, options, callbacks):
    student = distillation.make_student(model, width=options.width, weights="teacher")
    return _fit_distilled(teacher, student, train, options, callbacks)


def _channels(model, teacher, train, options, callbacks):
    pruned = pruning.prune(model, _schedule(options.channel_fraction, train, options),
                           criterion=options.criterion, structure="channels")
    trained = _fit_distilled(teacher, pruned, train, options,
                             callbacks + [pruning.UpdatePruningStep()])
    return pruning.shrink(trained)


def _unstructured(model, teacher, train, options, callbacks):
    pruned = pruning.prune(model, _schedule(options.sparsity, train, options),
                           criterion="magnitude", structure="unstructured")
    trained = _fit_distilled(teacher, pruned, train, options,
                             callbacks + [pruning.UpdatePruningStep()])
    return pruning.strip(trained)


def _qat(model, teacher, train, options, callbacks):
    scheme = quantization.FixedPoint(4) if options.qat_scheme == "fixed4" else options.qat_scheme
    quantized = quantization.quantize(model, scheme)
    return _fit_distilled(teacher, quantized, train, options, callbacks)


_STAGES = {"distill": _distill, "channels": _channels, "unstructured": _unstructured,
           "qat": _qat}


def _fit_distilled(teacher, student, train, options, callbacks):
    """Trains `student` against `teacher` and the labels; returns the student."""
    distiller = distillation.Distiller(teacher, student, temperature=options.temperature,
                                       alpha=_ALPHA)
    distiller.compile(keras.optimizers.Adam(_LEARNING_RATE), metrics=["accuracy"])
    x, y = train
    distiller.fit(x, y, batch_size=options.batch_size, epochs=options.epochs_per_stage,
                  shuffle=True, verbose=0, callbacks=callbacks)
    return distiller.student


def _schedule(target, train, options):
    steps = options.epochs_per_stage * math.ceil(len(train[0]) / options.batch_size)
    frequency = max(1, min(100, steps // 10))
    end = max(frequency, int(steps * _RAMP_SHARE) // frequency * frequency)
    return pruning.PolynomialDecay(0.0, target, begin_step=0, end_step=end, frequency=frequency)

