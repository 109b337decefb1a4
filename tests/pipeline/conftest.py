"""A pipeline run on digits shared by the tests: a tiny CNN, every stage, one epoch each."""

import shutil

import pytest
import tf_keras as keras

from tests.conftest import compile_model
from tests.conftest import small_cnn
from tfopt import datasets
from tfopt import pipeline

# Small enough to run every stage in seconds; wide enough that the stages can narrow it.
EPOCHS_PER_STAGE = 1


@pytest.fixture(scope="session")
def digits_data():
    return datasets.load_digits()


@pytest.fixture(scope="session")
def float_model(digits_data):
    (x_train, y_train), _ = digits_data
    model = compile_model(small_cnn())
    model.fit(x_train, y_train, epochs=6, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, float_model, digits_data):
    """(the Result of a full run, its options as keyword arguments)."""
    kwargs = dict(epochs_per_stage=EPOCHS_PER_STAGE, min_steps_per_stage=0, width=0.75,
                  channel_fraction=0.25, sparsity=0.6, seed=3)
    output_dir = tmp_path_factory.mktemp("pipeline") / "run"
    return pipeline.optimize(float_model, digits_data, output_dir, **kwargs), kwargs


class KeepBackup(keras.callbacks.Callback):
    """Copies a stage's backup as `epoch` begins: what a kill during that epoch leaves."""

    def __init__(self, epoch, backup, copy):
        super().__init__()
        self.epoch, self.backup, self.copy = epoch, backup, copy

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            shutil.copytree(self.backup, self.copy)


class TrainingState(keras.callbacks.Callback):
    """Keeps the first epoch ``fit`` ran and, at its end, every weight and optimizer value.

    `weights` maps (place, kind) to values, kind being "mask", "pruning_step"
    or "": Keras numbers layer names by how many this process made, so places
    match across runs where names do not. Values are read with ``.numpy()``,
    which a distribution strategy's variables allow (``np.array`` refuses them).
    The Distiller's weights are the student's (masks, pruning steps and
    quantizer ranges of its wrappers included) and the teacher's.
    """

    def __init__(self):
        super().__init__()
        self.first_epoch = self.weights = self.optimizer = None

    def on_epoch_begin(self, epoch, logs=None):
        if self.first_epoch is None:
            self.first_epoch = epoch

    def on_train_end(self, logs=None):
        self.weights = {(index, _kind(weight.name)): weight.numpy()
                        for index, weight in enumerate(self.model.weights)}
        self.optimizer = [variable.numpy() for variable in self.model.optimizer.variables]


def straight_and_resumed(run, tmp_path):
    """The `TrainingState`s of a stage run through and of one continued after its first epoch.

    `run(backup_dir, callbacks)` trains the stage from the same start each
    time; the continued run starts from a copy of the first run's backup as
    its second epoch began, which is what a kill during that epoch leaves.
    """
    straight, resumed = TrainingState(), TrainingState()
    run(tmp_path / "straight", [straight, KeepBackup(1, tmp_path / "straight",
                                                     tmp_path / "killed")])
    run(tmp_path / "killed", [resumed])
    assert (straight.first_epoch, resumed.first_epoch) == (0, 1)
    return straight, resumed


def _kind(name):
    return next((kind for kind in ("pruning_step", "mask") if kind in name), "")
