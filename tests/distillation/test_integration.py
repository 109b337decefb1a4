"""The Distiller with the rest of Keras and tfopt: callbacks, tf.data, strategies, pruning, QAT."""

import os

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfopt import distillation
from tfopt import pruning
from tfopt import quantization
from tests.distillation.conftest import mlp

L = keras.layers


def _teacher(x, y):
    model = mlp(64, 0, name="teacher")
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=3, verbose=0)
    return model


def test_ordinary_callbacks_and_tf_data(digits, tmp_path):
    x, y = digits
    teacher = _teacher(x, y)
    d = distillation.Distiller(teacher, mlp(8, 1, name="student"))
    d.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    train = tf.data.Dataset.from_tensor_slices((x[:1400], y[:1400])).shuffle(1400).batch(64)
    val = tf.data.Dataset.from_tensor_slices((x[1400:], y[1400:])).batch(64)
    best = str(tmp_path / "best.keras")
    history = d.fit(train, validation_data=val, epochs=4, verbose=0, callbacks=[
        keras.callbacks.EarlyStopping(monitor="val_accuracy", patience=1, mode="max",
                                      restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(best, monitor="val_accuracy", mode="max",
                                        save_best_only=True),
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
        keras.callbacks.TensorBoard(str(tmp_path / "logs")),
    ])
    assert {"val_loss", "val_accuracy", "val_student_loss"} <= set(history.history)
    assert os.path.exists(best) and os.listdir(tmp_path / "logs")
    restored = keras.models.load_model(best)
    assert max(history.history["val_accuracy"]) == restored.evaluate(
        val, verbose=0, return_dict=True)["accuracy"]


def _distill_losses(strategy, x, y):
    with strategy.scope():  # Keras wants every variable, the teacher's too, in scope
        teacher = _teacher(x, y)
        # Mostly hard-label loss: Keras pre-scales it per replica, the soft term is ours.
        d = distillation.Distiller(teacher, mlp(8, 1, name="student"), alpha=0.9)
        d.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    return d.fit(x, y, epochs=3, batch_size=64, verbose=0).history["loss"]


def test_mirrored_strategy_follows_the_single_device_loss_curve(digits, mirrored_strategy):
    """Two replicas must scale hard and soft losses like one device (same seeds, same data)."""
    x, y = digits
    single = _distill_losses(tf.distribute.get_strategy(), x, y)
    mirrored = _distill_losses(mirrored_strategy, x, y)
    assert mirrored[-1] < 0.7 * mirrored[0]
    np.testing.assert_allclose(mirrored, single, rtol=0.03)


def test_student_being_pruned_at_the_same_time(digits):
    x, y = digits
    teacher = _teacher(x, y)
    student = pruning.prune(mlp(32, 1, name="student"), pruning.OneShot(0.5, step=2))
    d = distillation.Distiller(teacher, student)
    d.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    d.fit(x, y, epochs=2, batch_size=64, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip(d.student)
    assert abs(pruning.sparsity_report(stripped).layers[0].sparsity - 0.5) < 0.01
    assert np.mean(np.argmax(stripped.predict(x, verbose=0), axis=1) == y) > 0.8


def test_quantization_aware_student(digits):
    x, y = digits
    teacher = _teacher(x, y)
    student = quantization.quantize(mlp(32, 1, name="student"), representative_data=x[:128])
    d = distillation.Distiller(teacher, student)
    d.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    d.fit(x, y, epochs=2, batch_size=64, verbose=0)
    assert np.mean(np.argmax(d.predict(x, verbose=0), axis=1) == y) > 0.8
