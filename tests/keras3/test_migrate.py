"""from_tf_keras: tf-keras models rebuilt in Keras 3 compute the same outputs."""

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras

import tfopt.keras3
from tests.keras3 import twin_models


def _cnn():
    tf_keras.utils.set_random_seed(0)
    x = tf_keras.Input((8, 8, 3))
    h = tf_keras.layers.Conv2D(6, 3, padding="same", activation="relu")(x)
    h = tf_keras.layers.BatchNormalization()(h)
    h = tf_keras.layers.DepthwiseConv2D(3)(h)
    h = h + 0.5  # a TF op on a Keras tensor (TFOpLambda)
    h = tf.nn.relu6(h)
    h = tf_keras.layers.SeparableConv2D(4, 2)(h)
    h = tf_keras.layers.Flatten()(h)
    h = tf_keras.layers.Dropout(0.2)(h)
    return tf_keras.Model(x, tf_keras.layers.Dense(3)(h), name="cnn")


def _nested():
    inner = tf_keras.Sequential([tf_keras.Input((6,)), tf_keras.layers.Dense(5, activation="tanh"),
                                 tf_keras.layers.Dense(5)], name="inner")
    x = tf_keras.Input((6,))
    y = tf_keras.layers.Add()([inner(x), tf_keras.layers.Dense(5)(x)])
    return tf_keras.Model(x, y, name="nested")


def _recurrent():
    return tf_keras.Sequential([
        tf_keras.Input((5,), dtype="int32"), tf_keras.layers.Embedding(20, 4),
        tf_keras.layers.Bidirectional(tf_keras.layers.LSTM(3, return_sequences=True)),
        tf_keras.layers.GRU(3), tf_keras.layers.Dense(2)], name="recurrent")


def _run(model, data):
    # Eager calls: predict would trace each model once more.
    return np.asarray(model(data, training=False))


def _inputs(model):
    rng = np.random.default_rng(1)
    shape = [3] + list(model.inputs[0].shape[1:])
    if model.inputs[0].dtype.is_integer:
        return rng.integers(0, 20, shape).astype("int32")
    return rng.random(shape, dtype=np.float32)


@pytest.mark.parametrize("build", [_cnn, _nested, _recurrent, lambda: twin_models.residual(tf_keras)])
def test_the_keras3_copy_computes_what_the_tf_keras_model_computes(build):
    model = build()
    converted = tfopt.keras3.from_tf_keras(model)
    assert isinstance(converted, keras.Model)
    assert isinstance(converted, keras.Sequential) == isinstance(model, tf_keras.Sequential)
    data = _inputs(model)
    np.testing.assert_allclose(_run(converted, data), _run(model, data),
                               rtol=1e-5, atol=1e-5)
    assert converted.count_params() == model.count_params()


def test_a_saved_file_and_a_pruned_model_convert_with_their_zeros(tmp_path):
    from tfopt import pruning
    pruned = pruning.prune(_cnn(), pruning.OneShot(0.5))
    for wrapper in pruning._prune.wrappers(pruned):
        wrapper.prune_to(0.5)
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    converted = tfopt.keras3.from_tf_keras(path)
    plain = pruning.strip(pruned)
    data = _inputs(plain)
    np.testing.assert_allclose(_run(converted, data), _run(plain, data),
                               rtol=1e-5, atol=1e-5)
    dense = [layer for layer in converted.layers if isinstance(layer, keras.layers.Dense)][0]
    assert np.mean(keras.ops.convert_to_numpy(dense.kernel) == 0) == pytest.approx(0.5, abs=0.02)


def test_a_quantization_aware_model_gives_back_its_float_layers():
    import tensorflow_model_optimization as tfmot
    model = twin_models.plain_cnn(tf_keras)
    qat = tfmot.quantization.keras.quantize_model(model)
    converted = tfopt.keras3.from_tf_keras(qat)
    data = _inputs(model)
    np.testing.assert_allclose(_run(converted, data), _run(model, data),
                               rtol=1e-5, atol=1e-5)
    assert [type(layer).__name__ for layer in converted.layers] == [
        type(layer).__name__ for layer in model.layers]


@pytest.mark.parametrize("given, message", [
    (lambda: twin_models.plain_cnn(keras), r"is a Keras 3 model already"),
    (lambda: "missing.keras", r"'missing\.keras' does not exist"),
    (lambda: 3, r"takes a tf-keras model or a path, got builtins\.int"),
    (lambda: tf_keras.Model(*_sliced()), r"applies tf\.__operators__\.getitem, which has no "
                                         r"keras\.ops counterpart"),
])
def test_what_cannot_be_converted_is_named(given, message):
    with pytest.raises(ValueError, match=message):
        tfopt.keras3.from_tf_keras(given())


def _sliced():
    x = tf_keras.Input((4,))
    return x, tf_keras.layers.Dense(2)(x[:, :2])
