"""Callbacks that drive pruning inside a Keras 3 `fit`."""

import keras
import numpy as np
from absl import logging
from keras import ops

from tfopt.core import pruning_steps
from tfopt.keras3.pruning import _objects
from tfopt.keras3.pruning import _prune


def pruned_groups(model):
    """[(leader, [followers])] for every pruned layer of a Keras 3 model."""
    return pruning_steps.pruned_groups(_prune.pruned_layers(model), lambda layer: layer.name)


def _sync(model):
    """Under JAX, `fit` keeps the variables' values outside them; bring them back first."""
    if hasattr(model, "jax_state_sync"):
        model.jax_state_sync()


class UpdatePruningStep(keras.callbacks.Callback):
    """Updates masks at the steps the schedule names; required to train a pruned model.

    Required when training a model returned by `tfopt.keras3.pruning.prune`:
    without it `fit` stops with an error saying so. The step lives in the
    model's variables and is counted inside the training step, so a model
    saved mid-training resumes its schedule where it stopped. Works under the
    TensorFlow and JAX backends.

    With ``steps_per_execution=N`` Keras runs N steps per call and masks can
    only change between calls: a pruning step inside a call is applied at the
    start of that call (at most N - 1 steps early).

    Example:
      >>> pruned.fit(x, y, epochs=2, callbacks=[UpdatePruningStep()])
    """

    def on_train_begin(self, logs=None):
        _sync(self.model)
        self._groups = pruned_groups(self.model)
        if not self._groups:
            raise ValueError(
                "UpdatePruningStep found no pruned layers in the model. Prune it first: "
                "model = tfopt.keras3.pruning.prune(model, schedule).")
        self._leaders = [leader for leader, _ in self._groups]
        # A fresh layer holds -1 (no callback yet); a step loaded with the model is kept.
        for leader in self._leaders:
            if int(ops.convert_to_numpy(leader.pruning_step)) < 0:
                leader.pruning_step.assign(0)
            leader.callback_attached = True
        self._steps = max(1, int(getattr(self.model, "steps_per_execution", 1) or 1))
        schedules = {id(layer.schedule): layer.schedule for layer in self._leaders}.values()
        for warning in pruning_steps.execution_warnings(schedules, self._steps):
            logging.warning("tfopt.keras3.pruning: %s", warning)

    @property
    def step(self):
        """The next training step to run, read from the model."""
        return max(int(ops.convert_to_numpy(self._leaders[0].pruning_step)), 0)

    def on_train_batch_begin(self, batch, logs=None):
        _sync(self.model)
        step = self.step
        for leader, followers in self._groups:
            unit_mask = leader.update_masks(step, self._steps)
            if unit_mask is not None:
                for follower in followers:
                    follower.apply_unit_mask(unit_mask)

    def on_train_end(self, logs=None):
        _sync(self.model)
        step = self.step
        for leader in self._leaders:
            warning = pruning_steps.stopped_early_warning(
                step, _objects.final_update(leader.schedule), leader.name, leader.sparsity())
            if warning is not None:
                logging.warning("tfopt.keras3.pruning: %s", warning)
                return


class PruningSummaries(keras.callbacks.Callback):
    """Writes each pruned layer's sparsity and the schedule's target to TensorBoard.

    Scalars ``pruning/<layer>/sparsity`` (zeros among the pruned weights) and
    ``pruning/<layer>/target_sparsity`` go to `log_dir` at the end of every
    epoch, or every `update_freq` steps when it is an integer. The event files
    are written with TensorFlow's summary writer, under any Keras backend.

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
        import tensorflow as tf  # the summary writer; Keras 3 itself may run on JAX
        self._tf = tf
        self._leaders = [leader for leader, _ in pruned_groups(self.model)]
        if not self._leaders:
            raise ValueError("PruningSummaries found no pruned layers in the model.")
        self._writer = tf.summary.create_file_writer(self.log_dir)

    def _step(self):
        return int(ops.convert_to_numpy(self._leaders[0].pruning_step))

    def _write(self):
        _sync(self.model)
        step = self._step()
        with self._writer.as_default():
            for leader in self._leaders:
                _, target = leader.schedule.at(max(step - 1, 0))
                self._tf.summary.scalar(f"pruning/{leader.name}/sparsity",
                                        np.float32(leader.sparsity()), step)
                self._tf.summary.scalar(f"pruning/{leader.name}/target_sparsity",
                                        np.float32(target), step)
        self._writer.flush()

    def on_train_batch_end(self, batch, logs=None):
        if isinstance(self.update_freq, int):
            _sync(self.model)
            if self._step() % self.update_freq == 0:
                self._write()

    def on_epoch_end(self, epoch, logs=None):
        if self.update_freq == "epoch":
            self._write()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None
