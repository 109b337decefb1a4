"""Callbacks that drive pruning inside `fit`."""

import tensorflow as tf
import tf_keras as keras
from absl import logging

from tfopt.core import pruning_steps
from tfopt.pruning import _prune
from tfopt.pruning import _schedules


def pruned_groups(model):
    """[(leader, [followers])] for every pruned layer of the model."""
    return pruning_steps.pruned_groups(_prune.wrappers(model), lambda wrapper: wrapper.layer.name)


class UpdatePruningStep(keras.callbacks.Callback):
    """Updates masks at the steps the schedule names; required to train a pruned model.

    Required when training a model returned by `tfopt.pruning.prune`: without it
    `fit` stops with an error saying so. The step lives in the model's
    variables and is counted inside the training graph, once per training
    step, so it is exact for any ``compile(steps_per_execution=N)``, a model
    saved mid-training resumes its schedule where it stopped, and
    `keras.callbacks.BackupAndRestore` restores it in either callback order.

    With ``steps_per_execution=N`` Keras runs N steps per call and masks can
    only change between calls: a pruning step inside a call is applied at the
    start of that call (at most N - 1 steps early). Schedules whose pruning
    steps fall on multiples of N are followed exactly.

    At the end of `fit`, a warning says so if training stopped before the
    schedule reached its final sparsity.

    Example:
      >>> pruned.fit(x, y, epochs=2, callbacks=[UpdatePruningStep()])
    """

    def on_train_begin(self, logs=None):
        self._groups = pruned_groups(self.model)
        if not self._groups:
            raise ValueError(
                "UpdatePruningStep found no pruned layers in the model. Prune it first: "
                "model = tfopt.pruning.prune(model, schedule)."
            )
        self._leaders = [leader for leader, _ in self._groups]
        # A fresh wrapper holds -1 (no callback yet). Only that is raised to 0: a
        # step restored by BackupAndRestore (before or after this callback) or
        # loaded with the model is never overwritten.
        keras.backend.batch_set_value([(w.pruning_step, 0) for w in self._leaders
                                       if int(w.pruning_step.numpy()) < 0])
        for leader in self._leaders:
            leader.callback_attached = True
        execution = getattr(self.model, "_steps_per_execution", None)
        # Keras changes it only when it is above 1 (for an epoch's shorter last call).
        self._execution = (execution if execution is not None and int(execution.numpy()) > 1
                           else None)
        self._warn_if_updates_fall_inside_executions()

    def _steps_in_next_call(self):
        # Keras lowers _steps_per_execution for the shorter last call of an epoch.
        if self._execution is None:
            return 1
        return max(1, int(self._execution.numpy()))

    def _warn_if_updates_fall_inside_executions(self):
        schedules = {id(w.schedule): w.schedule for w in self._leaders}.values()
        for warning in pruning_steps.execution_warnings(schedules, self._steps_in_next_call()):
            logging.warning("tfopt.pruning: %s", warning)

    @property
    def step(self):
        """The next training step to run, read from the model."""
        return max(int(self._leaders[0].pruning_step.numpy()), 0)

    def on_train_batch_begin(self, batch, logs=None):
        step, steps = self.step, self._steps_in_next_call()
        for leader, followers in self._groups:
            unit_mask = leader.update_masks(step, steps)
            if unit_mask is not None:
                for follower in followers:
                    follower.apply_unit_mask(unit_mask)

    def on_train_end(self, logs=None):
        step = self.step
        for leader in self._leaders:
            warning = pruning_steps.stopped_early_warning(
                step, _schedules.final_update(leader.schedule), leader.layer.name,
                leader.sparsity())
            if warning is not None:
                logging.warning("tfopt.pruning: %s", warning)
                return


class PruningSummaries(keras.callbacks.Callback):
    """Writes each pruned layer's sparsity and the schedule's target to TensorBoard.

    Scalars ``pruning/<layer>/sparsity`` (zeros among the pruned weights) and
    ``pruning/<layer>/target_sparsity`` go to `log_dir` at the end of every
    epoch, or every `update_freq` steps when it is an integer.

    Args:
      log_dir: directory for the TensorBoard event files.
      update_freq: "epoch" or a number of steps. Defaults to "epoch".

    Example:
      >>> pruned.fit(x, y, callbacks=[UpdatePruningStep(), PruningSummaries("logs")])
    """

    def __init__(self, log_dir, update_freq="epoch"):
        super().__init__()
        self.log_dir = pruning_steps.validate_summaries(log_dir, update_freq)
        self.update_freq = update_freq
        self._writer = None

    def on_train_begin(self, logs=None):
        self._leaders = [leader for leader, _ in pruned_groups(self.model)]
        if not self._leaders:
            raise ValueError("PruningSummaries found no pruned layers in the model.")
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def _write(self):
        step = int(self._leaders[0].pruning_step.numpy())
        with self._writer.as_default():
            for leader in self._leaders:
                _, target = _schedules.schedule_at(leader.schedule, max(step - 1, 0))
                tf.summary.scalar(f"pruning/{leader.layer.name}/sparsity", leader.sparsity(), step)
                tf.summary.scalar(f"pruning/{leader.layer.name}/target_sparsity", target, step)
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if isinstance(self.update_freq, int):
            step = int(self._leaders[0].pruning_step.numpy())
            if step % self.update_freq == 0:
                self._write()

    def on_epoch_end(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._write()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
