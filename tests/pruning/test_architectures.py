"""Pruning the real architectures of issue 9: channels + shrink, and unstructured.

Each model from benchmarks/architectures.py (and a Bidirectional GRU text model)
is pruned to 50%, trained one step on four examples, then stripped and shrunk.
The shrunk model must predict what the stripped one does, with far fewer
parameters where the graph allows it: residual stages, squeeze-excite blocks
and separable convolutions are cut, not left whole.
"""

import functools

import numpy as np
import pytest

import tf_keras as keras
from benchmarks import architectures
from tfopt import pruning

L = keras.layers

# Shrunk / stripped parameters at 50% channel sparsity: a group of channels at half
# width leaves about a quarter of the weights between two groups. Measured: 0.25-0.28,
# except where channels meet what cannot be cut: NASNetMobile (a few cells merge
# differently concatenated channels or pad constant ones: 0.33), ConvNeXtTiny
# (LayerNormalization on the residual stream: only the MLPs shrink, 0.54), TextLSTM
# (the LSTM's units are not pruned: 0.66), TransformerEncoder (LayerNormalization and
# attention: 0.77), BidirectionalGRU (0.70).
_MAX_PARAMETER_RATIO = {
    "NASNetMobile": 0.35, "ConvNeXtTiny": 0.55, "TextLSTM": 0.7, "TransformerEncoder": 0.8,
    "BidirectionalGRU": 0.75,
}
# Each test of these takes 12-40 s on 2 shared CPUs: Keras clones 150-800 layers
# for prune, strip and shrink. The others take 1-12 s.
_SLOW = ("MobileNetV2", "MobileNetV3Small", "EfficientNetB0", "EfficientNetV2B0", "ResNet50", "ResNet50V2",
         "DenseNet121", "NASNetMobile", "Xception", "ConvNeXtTiny")
_NAMES = architectures.NAMES + ("BidirectionalGRU",)


def _bidirectional_gru():
    inputs = keras.Input((architectures.SEQUENCE_LENGTH,), dtype="int32")
    x = L.Embedding(architectures.VOCABULARY, 16)(inputs)
    x = L.Bidirectional(L.GRU(16))(x)
    return keras.Model(inputs, L.Dense(architectures.NUM_CLASSES, activation="softmax")(x))


@functools.lru_cache(maxsize=1)  # both tests of one architecture run one after the other
def _model(name):
    if name == "BidirectionalGRU":
        keras.utils.set_random_seed(0)
        return _bidirectional_gru()
    return architectures.build(name)


def _batch(name):
    return architectures.example_batch("TextLSTM" if name == "BidirectionalGRU" else name, n=4)


def _params(names):
    return [pytest.param(name, marks=pytest.mark.slow) if name in _SLOW else name
            for name in names]


def _pruned(name, structure):
    pruned = pruning.prune(_model(name), pruning.ConstantSparsity(0.5, 0), structure=structure)
    x, y = _batch(name)
    architectures.compile_model(pruned, run_eagerly=True)
    pruned.fit(x, y, batch_size=4, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    return pruned, x


def _relative_difference(a, b):
    a, b = np.asarray(a), np.asarray(b)
    return float(np.max(np.abs(a - b)) / max(np.max(np.abs(a)), 1e-12))


@pytest.mark.parametrize("name", _params(_NAMES))
def test_channels_shrink_matches_strip_with_far_fewer_parameters(name):
    pruned, x = _pruned(name, "channels")
    stripped, small = pruning.strip(pruned), pruning.shrink(pruned)

    assert _relative_difference(stripped(x, training=False), small(x, training=False)) < 1e-4
    ratio = small.count_params() / stripped.count_params()
    assert ratio <= _MAX_PARAMETER_RATIO.get(name, 0.3), f"{name}: {ratio:.3f}"
    assert pruning.count_flops(small) < 0.8 * pruning.count_flops(stripped)


@pytest.mark.parametrize("name", _params(_NAMES))
def test_unstructured_prunes_nearly_every_weight(name):
    pruned, x = _pruned(name, "unstructured")
    stripped = pruning.strip(pruned)

    np.testing.assert_allclose(stripped(x, training=False), pruned(x, training=False),
                               rtol=1e-5, atol=1e-6)
    # Half of the scored weights are zero; only normalization layers and biases
    # are left out, a few percent of the weights (MultiHeadAttention included).
    zeros = pruning.sparsity_report(stripped).zeros
    assert zeros >= 0.47 * stripped.count_params(), f"{name}: {zeros / stripped.count_params()}"
