"""The Keras 3 benchmark's models, training arms and file checks, for both Kerases.

The reference CNN is built twice, as a Keras 3 model (``import keras``) and as
the tf-keras model of `_common.reference_cnn`; the fine-tuning arms of both
Kerases take turns in one rotation, so load from other processes hits them
alike.
"""

import os
import re
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
import tf_keras
from absl import logging

from benchmarks import _common
from benchmarks import _timers
from tfopt.export import _convert


def is_keras3(model):
    return _common.keras_of(model) is keras


def epoch_order(seed, n, epoch):
    """The same shuffled order for every arm in a given epoch."""
    return np.random.default_rng([seed, epoch]).permutation(n)


# Timing ------------------------------------------------------------------------------

Keras3StepTimer = _timers.step_timer(keras.callbacks.Callback)
TfKerasStepTimer = _timers.step_timer(tf_keras.callbacks.Callback)
_HOOK_TIMERS = {True: _timers.hook_timer(keras.callbacks.Callback),
                False: _timers.hook_timer(tf_keras.callbacks.Callback)}


class Arm:
    """One model fine-tuned from the float weights, with its callbacks and step timer."""

    def __init__(self, name, model, epochs, warmup, learning_rate=1e-3, callback=None):
        self.name, self.epochs = name, epochs
        self.model = _common.compile_model(model, learning_rate)
        timer = Keras3StepTimer if is_keras3(model) else TfKerasStepTimer
        self.timer = timer(warmup)
        self.hooks = None if callback is None else _HOOK_TIMERS[is_keras3(model)](callback)
        self.callbacks = [self.timer] + ([self.hooks] if callback is not None else [])
        self.seconds = 0.0

    def fit_chunk(self, x, y, batch_size):
        start = time.perf_counter()
        self.model.fit(x, y, batch_size=batch_size, shuffle=False, epochs=1, verbose=0,
                       callbacks=self.callbacks)
        self.seconds += time.perf_counter() - start


def train_together(arms, x, y, batch_size, rotate_every, seed, log=print):
    """Trains each arm for its epochs in turns of `rotate_every` batches, same batches for all.

    Epoch e trains the arms that have more than e epochs; the order of the arms
    rotates every turn.
    """
    chunk = rotate_every * batch_size
    # Every turn is a fit of its own, at whose end the pruning callbacks warn that the
    # schedule has not reached its target yet: true of every turn but the last ones.
    verbosity = logging.get_verbosity()
    logging.set_verbosity(logging.ERROR)
    try:
        _rotate(arms, x, y, batch_size, chunk, seed, log)
    finally:
        logging.set_verbosity(verbosity)


def _rotate(arms, x, y, batch_size, chunk, seed, log):
    turn = 0
    for epoch in range(max(arm.epochs for arm in arms)):
        active = [arm for arm in arms if arm.epochs > epoch]
        order = epoch_order(seed, len(x), epoch)
        x_epoch, y_epoch = x[order], y[order]
        for begin in range(0, len(x), chunk):
            shift = turn % len(active)
            for arm in active[shift:] + active[:shift]:
                arm.fit_chunk(x_epoch[begin:begin + chunk], y_epoch[begin:begin + chunk],
                              batch_size)
            turn += 1
        log(f"fine-tune epoch {epoch + 1}: " + ", ".join(
            f"{arm.name} {arm.seconds:.0f} s" for arm in active))


def train_float(model, x, y, epochs, batch_size, seed):
    """Plain training on the shared epoch orders (the float model of both Kerases)."""
    _common.compile_model(model)
    for epoch in range(epochs):
        order = epoch_order(seed, len(x), epoch)
        model.fit(x[order], y[order], batch_size=batch_size, shuffle=False, epochs=1,
                  verbose=0)
    return model


# Keras' own int8 quantization --------------------------------------------------------

def first_line(error):
    """The error's type and the first line that says what failed.

    The converter's MLIR diagnostics read ``<unknown>:0: error: loc(...): 'tfl.op' op
    ...``: the message is what follows the location.
    """
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    line = next((l for l in lines if "error: " in l), lines[0] if lines else "")
    line = re.sub(r"^loc\(.*\):\s+", "", line.rsplit("error: ", 1)[-1])
    if len(line) > 300:  # whole sentences, so a cut message still reads
        line = line[:line.rfind(". ", 0, 300) + 1 or 300] + " ..."
    return f"{type(error).__name__}: {line}"


def variable_bytes(model):
    """Bytes of the model's variables as stored (int8 kernels count one byte a weight)."""
    return int(sum(np.prod(v.shape) * np.dtype(v.dtype).itemsize for v in model.weights))


def keras_file_bytes(model):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "model.keras")
        model.save(path)
        return os.path.getsize(path)


def try_conversions(model, directory):
    """{route: {"ok": bool, "bytes" or "error"}} for the ways to TFLite a user would try."""
    def converter():
        with _common.quiet():
            return tf.lite.TFLiteConverter.from_keras_model(model).convert()

    def litert():
        path = os.path.join(directory, "core_int8_litert.tflite")
        with _common.quiet():
            model.export(path, format="litert", verbose=False)
        with open(path, "rb") as f:
            return f.read()

    routes = {}
    for name, convert in (("TFLiteConverter.from_keras_model", converter),
                          ('model.export(format="litert")', litert)):
        try:
            # Keras prints the export's endpoints and the converter its MLIR errors from
            # C++; the ConverterError carries the errors.
            with _convert.native_output_silenced():
                content = convert()
        except Exception as error:  # pylint: disable=broad-except  # recorded, not hidden
            routes[name] = {"ok": False, "error": first_line(error)}
        else:
            routes[name] = {"ok": True, "bytes": len(content), "content": content}
    return routes
