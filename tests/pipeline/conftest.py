"""A pipeline run on digits shared by the tests: a tiny CNN, every stage, one epoch each."""

import pytest

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
