"""Callbacks that drive pruning inside `fit`."""

import tensorflow as tf
import tf_keras as keras

from tfopt.pruning import _prune
from tfopt.pruning import _schedules


def pruned_groups(model):
    """[(leader, [followers])] for every pruned layer of the model."""
    all_wrappers = _prune.wrappers(model)
    leaders = [w for w in all_wrappers if w.follow is None]
    by_name = {w.layer.name: w for w in leaders}
    followers = {w.layer.name: [] for w in leaders}
    for wrapper in all_wrappers:
        if wrapper.follow is not None:
            if wrapper.follow not in by_name:
                raise ValueError(f"{wrapper.name!r} follows {wrapper.follow!r}, which is not a "
                                 "pruned layer of this model.")
            followers[wrapper.follow].append(wrapper)
    return [(leader, followers[leader.layer.name]) for leader in leaders]


class UpdatePruningStep(keras.callbacks.Callback):
    """Advances the pruning step and updates masks when the schedule says so.

    Required when training a model returned by `tfopt.pruning.prune`: without it
    `fit` stops with an error. The step is stored in the model, so a model saved
    mid-training resumes its schedule where it stopped.

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
        self._step = max(0, max(int(w.pruning_step.numpy()) for w in self._leaders))
        self._set_step()

    def _set_step(self):
        keras.backend.batch_set_value([(w.pruning_step, self._step) for w in self._leaders])

    def on_train_batch_begin(self, batch, logs=None):
        for leader, followers in self._groups:
            unit_mask = leader.update_masks(self._step)
            if unit_mask is not None:
                for follower in followers:
                    follower.apply_unit_mask(unit_mask)

    def on_train_batch_end(self, batch, logs=None):
        # Each wrapper counts its own step inside the training graph; writing
        # them from here every batch would cost an eager assign per layer.
        self._step += 1

    def on_epoch_end(self, epoch, logs=None):
        self._set_step()  # re-sync (a layer shared by two calls counts twice)

    def on_train_end(self, logs=None):
        self._set_step()

    @property
    def step(self):
        """The next training step to run."""
        return self._step


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
        if update_freq != "epoch" and not (isinstance(update_freq, int) and update_freq > 0):
            raise ValueError(f"update_freq must be 'epoch' or a positive number of steps, "
                             f"got {update_freq!r}.")
        self.log_dir = str(log_dir)
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
