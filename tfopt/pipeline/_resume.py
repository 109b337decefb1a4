"""Training a stage so that a killed run continues from its last finished epoch.

Keras' `BackupAndRestore` saves everything the stage's ``fit`` holds at each
epoch end (student and teacher weights, masks, pruning steps, quantizer
ranges, the optimizer's slots and step) and restores it when ``fit`` starts
again. Two more things make the continued run end where an uninterrupted one
ends:

- the data order of an epoch is a permutation drawn from (seed, stage,
  epoch) alone, so it does not depend on how many epochs this process ran
  (``fit(shuffle=True)`` draws from a random state that restarts with the
  process);
- the backup stays until the stage's directory is written (the pipeline
  removes it then), so a run killed after ``fit`` but before its files are
  written does not train the stage again.
"""

import math
import time

import tensorflow as tf
import tf_keras as keras
from absl import logging


def epoch_data(train, batch_size, seed, stage, iterations):
    """One epoch of `train` in batches, in an order drawn from (seed, stage, epoch).

    The epoch is read when Keras starts the epoch's iterator: the optimizer's
    step count (restored with it by `BackupAndRestore`) divided by the steps
    of an epoch. Keras makes a new iterator each epoch for a dataset of known
    length, after the previous epoch's steps have all run.

    Args:
      train: ``(x, y)`` arrays.
      batch_size: examples a batch (the global batch, split among the replicas
        of a distribution strategy); the last batch of an epoch may be smaller.
      seed: the run's seed.
      stage: the stage's index in the recipe.
      iterations: the optimizer's step counter (a scalar integer variable).
    """
    x, y = train
    examples = len(x)
    steps = math.ceil(examples / batch_size)
    base = tf.constant([seed, stage], tf.int64)

    def epoch_order(_):
        epoch = tf.cast(iterations, tf.int64) // steps
        order = tf.random.experimental.stateless_shuffle(
            tf.range(examples, dtype=tf.int64), tf.random.experimental.stateless_fold_in(
                base, epoch))
        return tf.data.Dataset.from_tensor_slices(order)

    x, y = tf.constant(x), tf.constant(y)
    dataset = tf.data.Dataset.range(1).flat_map(epoch_order).batch(batch_size)
    dataset = dataset.map(lambda rows: (tf.gather(x, rows), tf.gather(y, rows)))
    # Under MultiWorkerMirroredStrategy every worker draws the same order and keeps
    # its replicas' share of each batch: a step trains on the batch a single process
    # trains on, batch_size examples in all. (Keras' default, AUTO, finds no files to
    # shard here and falls back to the same with a warning.)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    dataset = dataset.with_options(options)
    return dataset.apply(tf.data.experimental.assert_cardinality(steps))


def backup(directory):
    """`BackupAndRestore` into `directory`, kept after ``fit``: the pipeline removes it."""
    return keras.callbacks.BackupAndRestore(directory, save_freq="epoch",
                                            delete_checkpoint=False)


class Progress(keras.callbacks.Callback):
    """One log line an epoch: the stage, the epoch, loss and accuracy, time left.

    The first epoch of a continued stage says that the stage continues from
    its backup.
    """

    def __init__(self, stage):
        super().__init__()
        self.stage = stage
        self._began = None
        self._first = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._first is None:
            self._first, self._began = epoch, time.perf_counter()
            if epoch:
                logging.info("tfopt.pipeline: stage %s continues from its backup at epoch "
                             "%d/%d", self.stage, epoch + 1, self.params["epochs"])

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        total = self.params["epochs"]
        done = epoch + 1 - self._first
        seconds = time.perf_counter() - self._began
        logging.info("tfopt.pipeline: stage %s: epoch %d/%d, loss %.4f, accuracy %.4f, "
                     "%.1f s, ETA %.1f s", self.stage, epoch + 1, total,
                     logs.get("loss", math.nan), logs.get("accuracy", math.nan), seconds,
                     seconds / done * (total - epoch - 1))
