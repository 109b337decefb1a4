"""The pipeline's stages: each takes the last stage's model and returns a smaller one.

Every stage is ordinary ``fit`` training with tfopt's public API; the
pipeline adds no technique of its own. The float model teaches every stage
(`distillation.Distiller`), so each stage learns the float model's answers
as well as the labels. Pruning stages ramp their sparsity with
`pruning.PolynomialDecay` over the first 70% of the stage's steps and train
the rest at the final sparsity.
"""


import tf_keras as keras

from tfopt import distillation
from tfopt.distillation import _outputs as distillation_outputs
from tfopt import pruning
from tfopt import quantization
from tfopt.pipeline import _resume
from tfopt.pipeline import _strategy

# A student learns from the teacher's softened logits and a little from the labels. A sweep of
# the default recipe on Fashion-MNIST found alpha 0.5 no better than 0.1, and temperature 2
# (the default of Options) 0.7 points better than 4.
_ALPHA = 0.1
# Adam at 3e-3, constant: on Fashion-MNIST (benchmarks/headline_benchmark.py's setting) it ended
# the default recipe 0.8 points above 1e-3; a cosine decay to 0 over each stage lost 1.6 points
# (the pruned weights need the step size late in the stage to recover).
_LEARNING_RATE = 3e-3
# The pruning schedule reaches its final sparsity at 70% of the stage's steps.
_RAMP_SHARE = 0.7


def run_stage(name, model, teacher, train, options, index, backup_dir, callbacks=(),
              strategy=None):
    """Runs stage `name` on `model`; returns the stage's model (plain, or QAT for "qat").

    `model` itself is left as it was: pruning and quantization work on copies.
    The stage continues from the last epoch backed up in `backup_dir` and
    leaves its backup there (see `_resume`). Under a `strategy` everything
    the stage trains is made in its scope (the student, the Distiller, the
    optimizer and a copy of the teacher), and the stage returns a copy with
    plain variables of this process (`_strategy.local_copy`).

    Args:
      name: a stage of `_recipe.STAGES`.
      model: the previous stage's model (plain Keras).
      teacher: the float model, which every stage distills from.
      train: ``(x, y)`` training arrays.
      options: the run's `_recipe.Options`.
      index: the stage's place in the recipe (1 for the first), which with
        the seed and the epoch draws each epoch's data order.
      backup_dir: the directory of the stage's `BackupAndRestore` backup.
      callbacks: more Keras callbacks for the stage's ``fit`` (progress).
      strategy: a `tf.distribute.Strategy`, or None to train as plain Keras.
    """
    teacher = _strategy.into_scope(teacher, strategy)

    def fit_distilled(student, more=()):
        return _fit_distilled(teacher, student, train, options, index,
                              [*callbacks, *more, _resume.backup(backup_dir)])

    with _strategy.scope(strategy):
        trained = _STAGES[name](model, train, options, fit_distilled)
    return _strategy.local_copy(trained, strategy)


def _distill(model, train, options, fit_distilled):
    return fit_distilled(distillation.make_student(model, width=options.width,
                                                   weights="teacher"))


def _channels(model, train, options, fit_distilled):
    pruned = pruning.prune(model, _schedule(options.channel_fraction, train, options),
                           criterion=options.criterion, structure="channels")
    return pruning.shrink(fit_distilled(pruned, [pruning.UpdatePruningStep()]))


def _unstructured(model, train, options, fit_distilled):
    pruned = pruning.prune(model, _schedule(options.sparsity, train, options),
                           criterion="magnitude", structure="unstructured")
    return pruning.strip(fit_distilled(pruned, [pruning.UpdatePruningStep()]))


def _qat(model, train, options, fit_distilled):
    scheme = quantization.FixedPoint(4) if options.qat_scheme == "fixed4" else options.qat_scheme
    return fit_distilled(quantization.quantize(model, scheme))


_STAGES = {"distill": _distill, "channels": _channels, "unstructured": _unstructured,
           "qat": _qat}


def _fit_distilled(teacher, student, train, options, index, callbacks):
    """Trains `student` against `teacher` and the labels; returns the student."""
    distiller = distillation.Distiller(teacher, student, temperature=options.temperature,
                                       alpha=_ALPHA, teacher_outputs=outputs_kind(teacher),
                                       student_outputs=outputs_kind(student))
    examples = len(train[0])
    epochs = options.stage_epochs(examples)
    optimizer = keras.optimizers.Adam(_LEARNING_RATE)
    distiller.compile(optimizer, metrics=["accuracy"])
    data = _resume.epoch_data(train, options.batch_size, options.seed, index,
                              optimizer.iterations)
    distiller.fit(data, epochs=epochs, verbose=0, callbacks=callbacks)
    return distiller.student


def outputs_kind(model):
    """"probabilities" for a model whose last layer is a softmax, else "logits".

    A float model ending in a softmax (keras.applications' default) gives
    students that end in one too; the Distiller softens either correctly
    when told which it gets.
    """
    found = distillation_outputs.final_activation(model)
    return "probabilities" if found and found[0] == "softmax" else "logits"


def _schedule(target, train, options):
    examples = len(train[0])
    steps = options.stage_epochs(examples) * options.steps_per_epoch(examples)
    frequency = max(1, min(100, steps // 10))
    end = max(frequency, int(steps * _RAMP_SHARE) // frequency * frequency)
    return pruning.PolynomialDecay(0.0, target, begin_step=0, end_step=end, frequency=frequency)

