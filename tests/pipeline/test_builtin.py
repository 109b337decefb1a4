"""Tests of the built-in float models: the reference CNN's shapes and its training."""

import numpy as np
import pytest

from tfopt.pipeline import _builtin


@pytest.mark.parametrize("shape,padding,parameters", [
    ((28, 28, 1), "valid", 225_034),  # the benchmarks' model (benchmarks/results/export.md)
    ((8, 8, 1), "same", 53_002),      # digits: both pools still fit (8 -> 4 -> 2)
    ((8, 8), "same", 53_002),         # images without a channel axis get one
])
def test_reference_cnn_fits_the_images(shape, padding, parameters):
    model = _builtin.reference_cnn(shape, 10)
    convolutions = [layer for layer in model.layers if "conv" in layer.name]
    assert [layer.padding for layer in convolutions] == [padding, padding]
    assert model.count_params() == parameters and model.output_shape == (None, 10)
    assert min(model.layers[-4].input_shape[1:3]) >= 1  # the map the second pool leaves


@pytest.mark.parametrize("shape,classes,message", [
    ((64,), 10, "takes images of shape (height, width)"),
    ((8, 8, 1, 1), 10, "takes images"),
    ((8, 8, 1), 1, "needs at least 2 classes"),
])
def test_reference_cnn_refuses_what_it_cannot_take(shape, classes, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        _builtin.reference_cnn(shape, classes)


def test_train_builtin_learns_and_names_unknown_models():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 90)
    x = np.zeros((90, 8, 8, 1), np.float32)
    x[np.arange(90), y, y, 0] = 1.0  # a bright pixel on the diagonal says the class
    model = _builtin.train_builtin("builtin:reference_cnn", (x, y), epochs=5, seed=0)
    assert model.output_shape == (None, 3)
    assert np.mean(np.argmax(model.predict(x, verbose=0), -1) == y) > 0.9
    assert _builtin.default_epochs(1437) == 14 and _builtin.default_epochs(60000) == 4
    with pytest.raises(ValueError, match="unknown built-in model 'builtin:resnet'"):
        _builtin.train_builtin("builtin:resnet", (x, y))
