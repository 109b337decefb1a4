"""Every Keras 3 Pruned* layer: masks applied in the call, config and .keras round trips."""

import json

import keras
import numpy as np
import pytest

from tfopt.keras3 import pruning

_SCHEDULE = pruning.ConstantSparsity(0.5, begin_step=0)


def _vectors(k):
    return keras.Input((8,)), np.random.default_rng(0).random((4, 8), dtype=np.float32)


def _images(k, shape=(6, 6, 4)):
    return keras.Input(shape), np.random.default_rng(0).random((4,) + shape, dtype=np.float32)


def _sequences(k):
    return _images(k, (5, 4))


# name -> (pruned layer, inputs); each layer is called on its inputs.
_CASES = {
    "Dense": lambda: (pruning.PrunedDense(6, schedule=_SCHEDULE), _vectors),
    "EinsumDense": lambda: (pruning.PrunedEinsumDense("ab,bc->ac", output_shape=6,
                                                      schedule=_SCHEDULE), _vectors),
    "Conv1D": lambda: (pruning.PrunedConv1D(4, 2, schedule=_SCHEDULE), _sequences),
    "Conv2D": lambda: (pruning.PrunedConv2D(4, 3, schedule=_SCHEDULE), _images),
    "Conv3D": lambda: (pruning.PrunedConv3D(4, 2, schedule=_SCHEDULE),
                       lambda k: _images(k, (3, 3, 3, 2))),
    "DepthwiseConv1D": lambda: (pruning.PrunedDepthwiseConv1D(2, schedule=_SCHEDULE),
                                _sequences),
    "DepthwiseConv2D": lambda: (pruning.PrunedDepthwiseConv2D(3, schedule=_SCHEDULE), _images),
    "SeparableConv1D": lambda: (pruning.PrunedSeparableConv1D(4, 2, schedule=_SCHEDULE),
                                _sequences),
    "SeparableConv2D": lambda: (pruning.PrunedSeparableConv2D(4, 3, schedule=_SCHEDULE),
                                _images),
    "Embedding": lambda: (pruning.PrunedEmbedding(10, 6, schedule=_SCHEDULE),
                          lambda k: (keras.Input((5,), dtype="int32"),
                                     np.arange(20).reshape(4, 5) % 10)),
    "LSTM": lambda: (pruning.PrunedLSTM(4, schedule=_SCHEDULE), _sequences),
    "GRU": lambda: (pruning.PrunedGRU(4, schedule=_SCHEDULE), _sequences),
    "SimpleRNN": lambda: (pruning.PrunedSimpleRNN(4, schedule=_SCHEDULE), _sequences),
    "Bidirectional": lambda: (pruning.PrunedBidirectional(keras.layers.LSTM(4),
                                                          schedule=_SCHEDULE), _sequences),
}


def _model(name):
    layer, inputs = _CASES[name]()
    x, data = inputs(keras)
    return keras.Model(x, layer(x)), layer, data


def _json(config):
    return json.loads(json.dumps(config))


def _assert_same_layer(loaded, layer):
    assert type(loaded) is type(layer)
    # As JSON: a nested layer's build shape comes back as a list, not a tuple.
    assert _json(loaded.get_config()) == _json(layer.get_config())
    for path, mask in layer.masks().items():
        np.testing.assert_array_equal(loaded.masks()[path], mask)
    assert len(loaded.weights) == len(layer.weights)
    for a, b in zip(loaded.weights, layer.weights):
        np.testing.assert_array_equal(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b))


@pytest.mark.parametrize("name", _CASES)
def test_pruned_layer_computes_with_masked_weights_and_round_trips(name, tmp_path):
    model, layer, data = _model(name)
    assert layer.__class__.__mro__[2].__name__ == name
    layer.prune_to(0.5)
    assert layer.sparsity() == pytest.approx(0.5, abs=0.05)
    # Weights pruned away are zero in the call: equal to the base layer with the
    # masked weights, whatever the stored values.
    for entry in layer._entries:
        entry.variable.assign(keras.ops.convert_to_numpy(entry.variable) + 1.0)
    expected_weights = layer.stripped_weights()
    plain = layer.__class__.__mro__[2].from_config(
        {k: v for k, v in layer.get_config().items()
         if k not in ("schedule", "criterion", "structure", "follow", "score_key")})
    x = keras.Input(model.inputs[0].shape[1:], dtype=model.inputs[0].dtype)
    plain_model = keras.Model(x, plain(x))
    plain.set_weights(expected_weights)
    np.testing.assert_allclose(model.predict(data, verbose=0), plain_model.predict(data, verbose=0),
                               rtol=1e-5, atol=1e-5)
    # Config round trip, then a .keras file: same layer, masks, variables and outputs.
    rebuilt = type(layer).from_config(layer.get_config())
    assert rebuilt.get_config() == layer.get_config()
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    _assert_same_layer(loaded.layers[-1], layer)
    np.testing.assert_array_equal(loaded.predict(data, verbose=0), model.predict(data, verbose=0))


def test_pruned_attention_and_batch_normalization_round_trip(tmp_path):
    query = keras.Input((4, 8))
    attention = pruning.PrunedMultiHeadAttention(2, 4, schedule=_SCHEDULE)
    h = attention(query, query)
    conv_in = keras.Input((5, 5, 3))
    conv = pruning.PrunedConv2D(6, 3, schedule=_SCHEDULE, structure="channels", name="conv")
    norm = pruning.PrunedBatchNormalization(structure="channels", follow="conv")
    model = keras.Model([query, conv_in], [h, norm(conv(conv_in))])
    attention.prune_to(0.5)
    unit = conv.prune_to(0.5)
    norm.apply_unit_mask(unit)
    assert set(attention.masks()) == {f"_{n}_dense.kernel" for n in
                                      ("query", "key", "value", "output")}
    np.testing.assert_array_equal(norm.masks()["gamma"], unit)
    rng = np.random.default_rng(0)
    data = [rng.random((2, 4, 8), dtype=np.float32), rng.random((2, 5, 5, 3), dtype=np.float32)]
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for a, b in zip(loaded.predict(data, verbose=0), model.predict(data, verbose=0)):
        np.testing.assert_array_equal(a, b)
    by_name = {layer.name: layer for layer in loaded.layers}
    for layer in (attention, conv, norm):
        _assert_same_layer(by_name[layer.name], layer)
    # Pruned channels are zero after the BatchNormalization that follows.
    out = loaded.predict(data, verbose=0)[1]
    assert np.all(out[..., unit == 0] == 0)


@pytest.mark.parametrize("obj", [
    pruning.ConstantSparsity(0.5, begin_step=3, frequency=7),
    pruning.PolynomialDecay(0.1, 0.8, 0, 100, power=2),
    pruning.OneShot(0.6, step=5),
    pruning.Iterative([(0.3, 10), (0.6, 20)]),
    pruning.Magnitude(), pruning.L2(), pruning.Random(7), pruning.Taylor(0.9),
])
def test_schedules_and_criteria_round_trip_through_keras3(obj):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj) and restored == obj
