"""Resuming inside a stage (tfopt/pipeline/_resume.py, _stages.py, _run.py).

A stage interrupted after an epoch continues from its backup and ends with
the student, optimizer and pruning state of an uninterrupted stage; a run
SIGKILLed in its second stage and started again ends with the weights and
masks of an uninterrupted run; a kill never leaves a half-written stage.
"""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tf_keras as keras

from tests.conftest import compile_model
from tests.conftest import small_cnn
from tfopt import pipeline
from tfopt import quantization
from tfopt.pipeline import _figures
from tfopt.pipeline import _recipe
from tfopt.pipeline import _resume
from tfopt.pipeline import _run
from tfopt.pipeline import _stages

# Threaded CPU kernels sum in varying order: two uninterrupted runs differ by ~1e-6.
ATOL = 1e-4


class _Interrupt(keras.callbacks.Callback):
    """Stops ``fit`` at the end of an epoch, before that epoch is backed up."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


class _State(keras.callbacks.Callback):
    """Keeps the first epoch ``fit`` ran and, at its end, every weight and optimizer value."""

    def __init__(self):
        super().__init__()
        self.first_epoch = None
        self.weights = self.optimizer = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_train_end(self, logs=None):
        # The Distiller's weights: the student's (masks and pruning steps of its
        # wrappers, quantizer ranges included) and the teacher's.
        self.weights = [np.array(w) for w in self.model.get_weights()]
        self.optimizer = [np.array(v) for v in self.model.optimizer.variables]


def _step_of(weights, model):
    names = [w.name for w in model.weights]
    return [int(value) for name, value in zip(names, weights) if "pruning_step" in name]


@pytest.mark.parametrize("name", ["channels", "unstructured", "qat"])
def test_an_interrupted_stage_continues_to_the_state_of_an_uninterrupted_one(
        tmp_path, digits_data, name):
    (x, y), _ = digits_data
    train = (x[:512], y[:512])
    teacher = compile_model(small_cnn(seed=1))
    options = _recipe.Options(epochs_per_stage=3, batch_size=64, seed=7)

    def run(backup, callbacks):
        keras.utils.set_random_seed(9)  # as the pipeline seeds a stage
        start = small_cnn(seed=2)  # the previous stage's model, the same each time
        return _stages.run_stage(name, start, teacher, train, options, 2, str(backup),
                                 callbacks=callbacks)

    straight = _State()
    run(tmp_path / "straight", [straight])
    with pytest.raises(KeyboardInterrupt):
        run(tmp_path / "killed", [_Interrupt(1)])
    assert os.listdir(tmp_path / "killed")  # the backup of epoch 1 of 3
    resumed = _State()
    run(tmp_path / "killed", [resumed])

    assert (straight.first_epoch, resumed.first_epoch) == (0, 1)
    assert len(resumed.optimizer) == len(straight.optimizer) > 1  # step count and slots
    assert int(resumed.optimizer[0]) == int(straight.optimizer[0]) == 3 * 8
    for got, want in zip(resumed.optimizer, straight.optimizer):
        np.testing.assert_allclose(got, want, atol=ATOL)
    assert len(resumed.weights) == len(straight.weights)
    for got, want in zip(resumed.weights, straight.weights):
        np.testing.assert_allclose(got, want, atol=ATOL)
        if name != "qat":  # masks are exact: 0 or 1
            assert got.dtype == want.dtype
