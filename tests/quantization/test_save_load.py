"""Quantization-aware models: `.keras` save/load for every scheme, and MirroredStrategy."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfopt import quantization
from tests.conftest import compile_model, small_cnn

SCHEMES = ["int8", "int8_prune_preserving", "binary", "ternary", quantization.FixedPoint(4)]


@pytest.mark.parametrize("scheme", SCHEMES, ids=str)
def test_keras_file_round_trip_keeps_predictions(scheme, digits, tmp_path):
    x, y = digits
    q = compile_model(quantization.quantize(small_cnn(), scheme, representative_data=x[:128]))
    path = str(tmp_path / "qat.keras")
    q.save(path)
    loaded = quantization.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x[:64], verbose=0), q.predict(x[:64], verbose=0))
    if scheme == "binary":  # test_prune_preserving trains a reloaded int8 model
        history = loaded.fit(x[:64], y[:64], batch_size=32, verbose=0)
        assert np.isfinite(history.history["loss"][0])


def test_load_model_also_loads_tfmot_quantize_model_files(tmp_path):
    model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    q = tfmot.quantization.keras.quantize_model(model)
    path = str(tmp_path / "tfmot.keras")
    q.save(path)
    # Within tfmot's own scope this file does not load in tf-keras 2.21.
    with tfmot.quantization.keras.quantize_scope(), pytest.raises(ValueError,
                                                                  match="expected 5 variables"):
        keras.models.load_model(path)
    x = np.random.default_rng(0).normal(size=(4, 6)).astype("float32")
    np.testing.assert_array_equal(quantization.load_model(path).predict(x, verbose=0),
                                  q.predict(x, verbose=0))


def test_trains_under_mirrored_strategy(digits, mirrored_strategy):
    x, y = digits
    with mirrored_strategy.scope():
        q = compile_model(quantization.quantize(small_cnn(), "binary", representative_data=x[:128]))
    before = q.get_layer("quant_conv_b").get_weights()[0].copy()
    history = q.fit(x[:128], y[:128], batch_size=32, verbose=0)
    assert all(np.isfinite(history.history["loss"]))
    assert not np.array_equal(before, q.get_layer("quant_conv_b").get_weights()[0])
