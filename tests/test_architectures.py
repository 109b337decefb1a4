"""The shared architecture builders (benchmarks/architectures.py) build, fit and repeat."""

import numpy as np
import pytest
import tf_keras as keras

from benchmarks import architectures

# 130-770 layers each: building and one eager step take 15-40 s on 2 shared CPUs.
_SLOW = ("MobileNetV2", "EfficientNetB0", "EfficientNetV2B0", "ResNet50", "ResNet50V2",
         "NASNetMobile", "DenseNet121", "Xception", "ConvNeXtTiny")


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in _SLOW else name
    for name in architectures.NAMES])
def test_builds_and_trains_one_step(name):
    model = architectures.build(name)
    x, y = architectures.example_batch(name, n=2)

    assert model.input_shape == (None,) + architectures.input_shape(name)
    assert model.output_shape == (None, architectures.NUM_CLASSES)
    assert x.shape == (2,) + architectures.input_shape(name)
    assert model.layers[-1].activation is keras.activations.softmax
    before = [w.copy() for w in model.get_weights()]
    # Eager: tracing the training graph of e.g. NASNetMobile takes minutes here.
    architectures.compile_model(model, run_eagerly=True)
    history = model.fit(x, y, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    probabilities = model(x, training=False).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("name", ["MobileNetV3Small", "TransformerEncoder"])
def test_same_seed_same_weights(name):
    first, second = architectures.build(name, seed=3), architectures.build(name, seed=3)
    other = architectures.build(name, seed=4)
    for a, b in zip(first.get_weights(), second.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first.get_weights(), other.get_weights())
               if a.size > 1 and a.std() > 0)


def test_text_batch_is_tokens_of_the_vocabulary():
    x, y = architectures.example_batch("TextLSTM", n=8, seed=1)
    assert x.dtype == np.int32 and x.min() >= 0 and x.max() < architectures.VOCABULARY
    assert y.dtype == np.int32 and 0 <= y.min() and y.max() < architectures.NUM_CLASSES


def test_unknown_name_is_refused():
    with pytest.raises(ValueError, match="`name` must be one of MobileNet"):
        architectures.build("ResNet18")
