"""Shared test setup: two logical CPUs (for MirroredStrategy) and small helpers."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # keep TensorFlow C++ start-up noise out of test output

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

# As in a user's process: tf.keras bound to Keras 3 before a test module imports tfmot.
from tfopt import _keras2  # noqa: F401,E402

# Must run before TensorFlow initializes its devices, i.e. before any op runs.
_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(
    _cpu, [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])


def assert_config_round_trip(obj):
    """get_config -> from_config and Keras (de)serialization give an equal object."""
    config = obj.get_config()
    rebuilt = type(obj).from_config(config)
    assert rebuilt.get_config() == config
    serialized = keras.saving.serialize_keras_object(obj)
    restored = keras.saving.deserialize_keras_object(serialized)
    assert type(restored) is type(obj)
    assert restored.get_config() == config
    return restored


@pytest.fixture(scope="session")
def mirrored_strategy():
    """One MirroredStrategy over the two logical CPUs for the whole session.

    Several strategy objects in one process reuse collective instance keys, and
    their all-reduces then collide ("Shape mismatch in the collective instance").
    """
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    assert strategy.num_replicas_in_sync == 2
    return strategy


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits
    data = load_digits()
    x = (data.images[..., None] / 16.0).astype("float32")
    return x, data.target.astype("int32")


def compile_model(model, lr=1e-2):
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


def small_cnn(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv_a"),
        keras.layers.BatchNormalization(name="bn"),
        keras.layers.Conv2D(8, 3, activation="relu", name="conv_b"),
        keras.layers.Flatten(name="flatten"),
        keras.layers.Dense(16, activation="relu", name="hidden"),
        keras.layers.Dense(10, name="logits"),
    ])


def subclassed_model():
    """A built subclassed model, which graph transforms cannot clone."""

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    net = Net()
    net(np.zeros((1, 3), "float32"))
    return net


def max_abs_diff(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
