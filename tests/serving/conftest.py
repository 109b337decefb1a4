"""Request logs written from the digits data set, with and without a drift injected on purpose.

The logged responses stand in for a classifier's logits: the true class
scores 5 above normal noise, so the predicted classes follow the images'
classes. The monitor reads only the logs, so no model needs to be trained.
"""

import numpy as np
import pytest

from tfopt import datasets
from tfopt.serving import _request_logs

MODEL = "digits"
INPUT = "input_1"
OUTPUT = "output_0"
BATCH = 4


def logits(labels, seed):
    rng = np.random.default_rng(seed)
    return (5 * np.eye(10, dtype=np.float32)[labels]
            + rng.normal(0, 1, (len(labels), 10)).astype(np.float32))


def write_log(path, x, y, model_name=MODEL, seed=0, responses=True, version=None):
    """A request log of `x` in batches of 4, with logits of `y` as responses."""
    outputs = logits(y, seed)
    batches = [({INPUT: x[i:i + BATCH]}, {OUTPUT: outputs[i:i + BATCH]} if responses else None)
               for i in range(0, len(x), BATCH)]
    _request_logs.write(str(path), model_name, batches, version=version)
    return str(path)


def drifted(kind, x, y):
    """(x, y) of the test split with the drift `kind` injected; "none" leaves it as it is."""
    if kind == "none":
        return x, y
    if kind == "resampled":  # another draw from the same distribution: still no drift
        rows = np.random.default_rng(1).choice(len(x), 250, replace=False)
        return x[rows], y[rows]
    if kind == "brighter":  # a camera exposure change
        return np.clip(x + 0.15, 0, 1).astype(np.float32), y
    if kind == "inverted":  # a client that sends white-on-black digits inverted
        return (1 - x).astype(np.float32), y
    if kind == "classes_0_to_4":  # traffic from one population only
        keep = y < 5
        return x[keep], y[keep]
    raise ValueError(kind)


@pytest.fixture(scope="session")
def digits_logs(tmp_path_factory):
    """{"reference": train .npz, kind: log file} for every kind of `drifted`."""
    directory = tmp_path_factory.mktemp("digits_logs")
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    paths = {"reference": str(directory / "train.npz")}
    np.savez(paths["reference"], x_train=x_train, y_train=y_train)
    for kind in ("none", "resampled", "brighter", "inverted", "classes_0_to_4"):
        x, y = drifted(kind, x_test, y_test)
        paths[kind] = write_log(directory / f"{kind}.log", x, y)
    return paths


@pytest.fixture(scope="session")
def half_plus_two_base(tmp_path_factory):
    """Base path holding TF Serving's half_plus_two as version 123 (tests/serving/half_plus_two.py)."""
    from tests.serving import half_plus_two
    base = tmp_path_factory.mktemp("half_plus_two_models") / "half_plus_two"
    half_plus_two.write(base, 123)
    return str(base)
