"""Models and trained teachers shared by the distillation tests of both Keras versions."""

import keras
import pytest
import tf_keras

from tfopt import distillation as tf_keras_distillation
from tfopt.keras3 import distillation as keras3_distillation

# Each Keras version's module and its tfopt distillation package.
APIS = {"tf_keras": (tf_keras, tf_keras_distillation),
        "keras3": (keras, keras3_distillation)}


def mlp(k, width, seed, softmax=False, name=None):
    """Flatten -> Dense(width) "hidden" -> Dense(10) "logits", seeded, in Keras module `k`."""
    k.utils.set_random_seed(seed)
    return k.Sequential([k.Input((8, 8, 1)), k.layers.Flatten(name="flat"),
                         k.layers.Dense(width, activation="relu", name="hidden"),
                         k.layers.Dense(10, activation="softmax" if softmax else None,
                                        name="logits")], name=name)


def small_cnn(k, seed=0):
    """Conv -> BatchNormalization -> Conv -> Flatten -> Dense -> Dense(10), seeded."""
    k.utils.set_random_seed(seed)
    return k.Sequential([
        k.Input((8, 8, 1)),
        k.layers.Conv2D(8, 3, activation="relu", name="conv_a"),
        k.layers.BatchNormalization(name="bn"),
        k.layers.Conv2D(8, 3, activation="relu", name="conv_b"),
        k.layers.Flatten(name="flatten"),
        k.layers.Dense(16, activation="relu", name="hidden"),
        k.layers.Dense(10, name="logits")])


@pytest.fixture(scope="package")
def teachers(digits):
    """{version: the mlp at width 64 trained 3 epochs on digits}, trained on first use."""
    made = {}

    def teacher(version):
        if version not in made:
            k, _ = APIS[version]
            x, y = digits
            model = mlp(k, 64, 0, name="teacher")
            model.compile(k.optimizers.Adam(1e-2),
                          k.losses.SparseCategoricalCrossentropy(from_logits=True))
            model.fit(x, y, epochs=3, batch_size=128, verbose=0)
            made[version] = model
        return made[version]

    return teacher
