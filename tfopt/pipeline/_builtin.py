"""Built-in float models, trained on the spot, so that a run needs no model file.

``builtin:reference_cnn`` is the CNN of tfopt's benchmarks (Conv32-Pool-
Conv64-Pool-Flatten-Dense128-Dense(classes), logits). Its convolutions use
"valid" padding, as in the benchmarks, when the images are large enough for
both pools to leave a map of at least 2x2 (12x12 and up; Fashion-MNIST's 28x28
gives the benchmarks' model exactly); on smaller images (scikit-learn's 8x8
digits) they use "same" padding, so the two pools still fit (8 -> 4 -> 2).
"""

import math

import numpy as np
import tf_keras as keras
from absl import logging

PREFIX = "builtin:"
NAMES = ("reference_cnn",)
# The smallest side on which "valid" convolutions leave a 2x2 map after both pools.
_VALID_PADDING_MIN_SIDE = 12
# Training steps the built-in model gets at least (digits: 14 epochs of 23 steps, ~5 s),
# and epochs at least (Fashion-MNIST: 4 epochs, as in the benchmarks' float model).
_MIN_STEPS = 300
_MIN_EPOCHS = 4
_BATCH_SIZE = 64


def reference_cnn(input_shape, classes):
    """The benchmarks' reference CNN for images of `input_shape`, with `classes` logits.

    Args:
      input_shape: one example's shape, ``(height, width)`` or
        ``(height, width, channels)``.
      classes: the number of classes, at least 2.

    Returns:
      An uncompiled tf_keras Sequential model named "reference_cnn".

    Raises:
      ValueError: `input_shape` is not an image shape, or `classes` < 2.
    """
    shape = tuple(input_shape)
    if len(shape) not in (2, 3) or not all(isinstance(d, (int, np.integer)) and d >= 1
                                           for d in shape):
        raise ValueError(f"reference_cnn takes images of shape (height, width) or (height, "
                         f"width, channels); got examples of shape {shape}.")
    if isinstance(classes, bool) or not isinstance(classes, (int, np.integer)) or classes < 2:
        raise ValueError(f"reference_cnn needs at least 2 classes; got {classes!r}.")
    layers = keras.layers
    padding = "valid" if min(shape[:2]) >= _VALID_PADDING_MIN_SIDE else "same"
    head = [keras.Input(shape)]
    if len(shape) == 2:
        head.append(layers.Reshape(shape + (1,)))
    return keras.Sequential(head + [
        layers.Conv2D(32, 3, padding=padding, activation="relu"), layers.MaxPool2D(),
        layers.Conv2D(64, 3, padding=padding, activation="relu"), layers.MaxPool2D(),
        layers.Flatten(), layers.Dense(128, activation="relu"), layers.Dense(int(classes)),
    ], name="reference_cnn")


def default_epochs(examples, batch_size=_BATCH_SIZE):
    """Epochs for `examples` training examples: at least 4, and at least 300 steps in all."""
    steps_per_epoch = max(1, math.ceil(examples / batch_size))
    return max(_MIN_EPOCHS, math.ceil(_MIN_STEPS / steps_per_epoch))


def train_builtin(name, train, epochs=None, seed=0):
    """Builds the built-in model `name` for the data `train` and trains it.

    Args:
      name: one of `NAMES`, with or without the "builtin:" prefix.
      train: ``(x_train, y_train)``, integer class labels from 0; the model
        gets ``max(y_train) + 1`` classes.
      epochs: training epochs. Defaults to None: `default_epochs`.
      seed: seed of the weights and the data order.

    Returns:
      The trained model, compiled (Adam, sparse categorical cross entropy on
      logits, accuracy).

    Raises:
      ValueError: an unknown name, or data the model cannot take.
    """
    short = name[len(PREFIX):] if name.startswith(PREFIX) else name
    if short not in NAMES:
        raise ValueError(f"unknown built-in model {name!r}; use one of "
                         f"{[PREFIX + known for known in NAMES]}.")
    x, y = np.asarray(train[0]), np.asarray(train[1])
    model = _build(x, y, seed)
    epochs = default_epochs(len(x)) if epochs is None else epochs
    logging.info("tfopt.pipeline: training %s%s on %d examples: %d epoch(s)", PREFIX, short,
                 len(x), epochs)
    model.fit(x, y, batch_size=_BATCH_SIZE, epochs=epochs, verbose=0)
    return model


def _build(x, y, seed):
    if not len(y) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
        raise ValueError("the built-in model needs integer class labels 0, 1, 2, ...")
    keras.utils.set_random_seed(seed)
    model = reference_cnn(x.shape[1:], max(2, int(y.max()) + 1))
    model.compile(keras.optimizers.Adam(),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model
