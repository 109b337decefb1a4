"""The FLOP formulas on stand-in layers: only the attributes each formula reads."""

from types import SimpleNamespace as Layer

import numpy as np
import pytest

from tfopt.core import flops


def _weight(*shape):
    return np.zeros(shape)


@pytest.mark.parametrize("name,layer,inputs,outputs,expected", [
    ("Dense", Layer(use_bias=True), (None, 5, 4), (None, 5, 3), 5 * 3 * (2 * 4 + 1)),
    ("Conv2D", Layer(kernel=_weight(3, 3, 1, 4), use_bias=False), (None, 6, 6, 2),
     (None, 4, 4, 4), 4 * 4 * 4 * 2 * 9 * 1),
    ("Conv2DTranspose", Layer(kernel=_weight(2, 2, 3, 2), use_bias=True), (None, 4, 4, 2),
     (None, 5, 5, 3), 2 * 4 * 4 * 2 * (2 * 2 * 3) + 5 * 5 * 3),
    ("DepthwiseConv2D", Layer(kernel_size=(3, 3), use_bias=True),
     (None, 8, 8, 2), (None, 6, 6, 2), 6 * 6 * 2 * (2 * 9 + 1)),
    ("SeparableConv2D", Layer(kernel_size=(3, 3),
                              pointwise_kernel=_weight(1, 1, 4, 4), filters=4, use_bias=True),
     (None, 8, 8, 2), (None, 6, 6, 4), 6 * 6 * (2 * 4 * 9 + 2 * 4 * 4 + 4)),
    ("AveragePooling2D", Layer(pool_size=(2, 2)), (None, 4, 4, 2), (None, 2, 2, 2), 2 * 2 * 2 * 4),
    ("GlobalMaxPooling2D", Layer(), (None, 4, 4, 2), (None, 2), 32),
    ("LSTM", Layer(cell=Layer(kernel=_weight(2, 12)), units=3, use_bias=True), (None, 5, 2),
     (None, 3), 5 * (2 * (2 + 3) * 12 + 12)),
    ("GRU", Layer(cell=Layer(kernel=_weight(2, 9)), units=3, use_bias=True, reset_after=True),
     (None, 5, 2), (None, 3), 5 * (2 * (2 + 3) * 9 + 2 * 9)),
    ("Add", Layer(), [(None, 4), (None, 4), (None, 4)], (None, 4), 2 * 4),
    ("Average", Layer(), [(None, 4), (None, 4)], (None, 4), 2 * 4),
    ("LayerNormalization", Layer(scale=True, center=False), (None, 3, 4), (None, 3, 4), 6 * 12),
    (flops.ELEMENTWISE, Layer(), (None, 3, 4), (None, 3, 4), 12),
])
def test_formulas(name, layer, inputs, outputs, expected):
    assert flops.layer_flops(name, layer, inputs, outputs) == expected


def test_einsum_dense_reads_its_equation():
    layer = Layer(equation="abc,cd->abd", kernel=_weight(4, 3), bias=None)
    assert flops.layer_flops("EinsumDense", layer, (None, 5, 4), (None, 5, 3)) == 2 * 5 * 3 * 4


@pytest.mark.parametrize("name", ["ReLU", "Embedding", "Concatenate", "Flatten"])
def test_free_or_unknown_layers_have_no_formula(name):
    assert flops.layer_flops(name, Layer(), (None, 4), (None, 4)) is None


def test_per_example_flattens_nested_shapes_without_the_batch_axis():
    assert flops.per_example([(None, 2, 3), [(None, 4), (None, 5)]]) == [(2, 3), (4,), (5,)]
    assert flops.per_example((None, 7)) == [(7,)]
