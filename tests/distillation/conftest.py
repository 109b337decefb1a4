"""Models shared by the distillation tests."""

import pytest
import tf_keras as keras

L = keras.layers


def mlp(width, seed, softmax=False, name=None):
    """Flatten -> Dense(width) "hidden" -> Dense(10) "logits", seeded."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(name="flat"),
                             L.Dense(width, activation="relu", name="hidden"),
                             L.Dense(10, activation="softmax" if softmax else None,
                                     name="logits")], name=name)


@pytest.fixture(scope="module")
def teacher(digits):
    """The mlp at width 64, trained 5 epochs on digits (once per test module)."""
    x, y = digits
    model = mlp(64, 0, name="teacher")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=5, verbose=0)
    return model
