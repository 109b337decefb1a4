"""Affine layers (Rescaling, Normalization, lone BatchNormalization) in Functional models."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfopt import export
from tfopt import quantization
from tests.conftest import max_abs_diff
from tests.export.conftest import tensor_dtypes
from tests.export.conftest import time_limit

L = keras.layers


def _functional_with_affine_layers(seed=0):
    """Rescaling first, a BatchNormalization after pooling (nothing folds it) and a
    residual branch around it: the shape of ResNet50V2 and DenseNet121."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 1))
    h = L.Rescaling(16.0, offset=-1.0, name="rescale")(inputs)
    h = L.Conv2D(8, 3, padding="same", activation="relu", name="conv")(h)
    h = L.MaxPooling2D(name="pool")(h)
    bn = L.BatchNormalization(name="lone_bn")(h)
    h = L.Add(name="residual")([h, L.Conv2D(8, 1, activation="relu", name="branch")(bn)])
    h = L.Flatten(name="flatten")(h)
    model = keras.Model(inputs, L.Dense(10, name="logits")(h), name="affine_functional")
    rng = np.random.default_rng(seed)  # statistics as after training
    model.get_layer("lone_bn").set_weights([rng.uniform(0.5, 2.0, 8), rng.normal(0, 0.5, 8),
                                            rng.normal(0, 0.5, 8), rng.uniform(0.5, 2.0, 8)])
    return model


def _wrapped(model):
    return {layer.layer.name: layer.layer for layer in model.layers
            if isinstance(layer, tfmot.quantization.keras.QuantizeWrapperV2)}


def test_functional_model_with_unfoldable_affine_layers_quantizes_and_converts(digits, tmp_path):
    x, _ = digits
    model = _functional_with_affine_layers()
    with time_limit(60):
        q = quantization.quantize(model, representative_data=x[:256])
    wrapped = _wrapped(q)
    for name in ("rescale", "lone_bn"):
        assert isinstance(wrapped[name], L.Rescaling)
        assert isinstance(wrapped[f"{name}_offset"], L.Rescaling)
    assert not any(isinstance(layer, keras.Model) for layer in q.layers)
    reference = model.predict(x[:256], verbose=0)
    assert max_abs_diff(q.predict(x[:256], verbose=0), reference) < 0.05 * np.abs(reference).max()
    path = export.tflite(q, str(tmp_path / "affine.tflite"), mode="int8")
    inputs, outputs, dtypes = tensor_dtypes(path)
    assert inputs == outputs == [np.dtype(np.int8)]
    assert not [d for d in dtypes if d.kind == "f"]
    assert export.verify_tflite(path, x[:256], reference=model, latency_runs=0)[
        "agreement"] >= 0.95


@pytest.mark.parametrize("layer,split", [
    (L.Rescaling(2.0, name="a"), False),  # a pure multiply needs no second layer
    (L.Rescaling(2.0, offset=1.0, name="a"), True),
    (L.Normalization(mean=0.0, variance=4.0, name="a"), False),
    (L.Normalization(mean=1.0, variance=4.0, name="a"), True),
])
def test_only_layers_with_an_offset_get_a_second_layer(layer, split):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, L.Dense(2, name="d")(layer(inputs)))
    x = np.random.default_rng(0).normal(size=(64, 4)).astype("float32")
    with time_limit(60):
        q = quantization.quantize(model, representative_data=x)
    assert ("a_offset" in _wrapped(q)) == split
    float_copy = keras.Model(q.inputs, q.get_layer("quant_a_offset" if split else "quant_a").output)
    np.testing.assert_allclose(float_copy(x), layer(x), atol=0.1)
