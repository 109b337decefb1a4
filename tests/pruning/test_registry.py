"""Layers reached through sublayers: MultiHeadAttention, EinsumDense, Bidirectional RNNs."""

import numpy as np
import pytest

import tf_keras as keras
from tfopt import pruning
from tfopt.pruning import _registry

L = keras.layers


def _attention_block():
    inputs = keras.Input((6, 8))
    attended = L.MultiHeadAttention(2, 4, name="attention")(inputs, inputs)  # value positional
    x = L.LayerNormalization()(L.Add()([inputs, attended]))
    x = L.EinsumDense("abc,cd->abd", output_shape=(None, 8), bias_axes="d", name="einsum")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(L.GlobalAveragePooling1D()(x)))


def _bidirectional_text():
    inputs = keras.Input((7,), dtype="int32")
    x = L.Embedding(20, 8, name="embedding")(inputs)
    x = L.Bidirectional(L.GRU(6), name="bidirectional")(x)
    return keras.Model(inputs, L.Dense(3, name="logits")(x))


def _fit(model, structure):
    pruned = pruning.prune(model, pruning.ConstantSparsity(0.5, 0), structure=structure)
    pruned.compile("adam", "mse")
    rng = np.random.default_rng(0)
    if model.inputs[0].dtype.is_integer:
        x = rng.integers(0, 20, (4,) + model.input_shape[1:]).astype("int32")
    else:
        x = rng.normal(size=(4,) + model.input_shape[1:]).astype("float32")
    pruned.fit(x, np.zeros((4, 3), "float32"), verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    return pruned, x


def _zeros(array):
    return float(np.mean(np.asarray(array) == 0))


@pytest.mark.parametrize("name", ["attention", "einsum"])
def test_attention_and_einsum_layers_are_supported(name):
    assert _registry.is_supported(_attention_block().get_layer(name))


def test_multi_head_attention_kernels_are_pruned_and_strip_keeps_a_plain_layer():
    pruned, x = _fit(_attention_block(), "unstructured")
    wrapped = {layer.layer.name: layer for layer in pruned.layers
               if isinstance(layer, pruning.PruneWrapper)}
    assert {"attention", "einsum", "logits"} <= set(wrapped)
    stripped = pruning.strip(pruned)
    attention = stripped.get_layer("attention")
    assert type(attention) is L.MultiHeadAttention
    for path in ("_query_dense.kernel", "_key_dense.kernel", "_value_dense.kernel",
                 "_output_dense.kernel"):
        assert wrapped["attention"].masks()[path].mean() == 0.5
        owner, attr = _registry.resolve(attention, path)
        assert _zeros(getattr(owner, attr).numpy()) == 0.5
    assert _zeros(stripped.get_layer("einsum").kernel.numpy()) == 0.5
    np.testing.assert_allclose(stripped(x), pruned(x, training=False), atol=1e-6)


def test_bidirectional_rnn_kernels_are_pruned_in_both_directions():
    pruned, x = _fit(_bidirectional_text(), "unstructured")
    masks = pruned.get_layer("prune_bidirectional").masks()
    assert set(masks) == {f"{side}_layer.cell.{kernel}" for side in ("forward", "backward")
                          for kernel in ("kernel", "recurrent_kernel")}
    assert all(mask.mean() == 0.5 for mask in masks.values())
    np.testing.assert_allclose(pruning.strip(pruned)(x), pruned(x, training=False), atol=1e-6)


def test_bidirectional_rnn_consumes_channel_pruned_embeddings():
    pruned, x = _fit(_bidirectional_text(), "channels")
    small = pruning.shrink(pruned)
    assert small.get_layer("embedding").output_dim == 4
    forward = small.get_layer("bidirectional").forward_layer
    assert forward.cell.kernel.shape[0] == 4
    np.testing.assert_allclose(small(x), pruning.strip(pruned)(x), atol=1e-5)
