"""pruning._clone.flatten, which quantize uses to hand tfmot models without nesting."""

import numpy as np
import tf_keras as keras

from tfopt import _clone

L = keras.layers


def test_flatten_inlines_nested_models_keeping_names_weights_and_sharing():
    keras.utils.set_random_seed(0)
    features = keras.Sequential([keras.Input((6,)), L.Dense(5, name="shared_name")],
                                name="features")
    block_in = keras.Input((5,))
    block = keras.Model(block_in, L.Dense(4, name="block_dense")(block_in), name="block")
    inputs = keras.Input((6,), name="x")
    tied = L.Dense(5, name="tied")
    h = tied(features(inputs))
    h = L.Dense(5, name="shared_name")(h)  # the outer name wins; the nested one is renamed
    outputs = block(tied(h))
    model = keras.Model(inputs, outputs)

    flat = _clone.flatten(model)

    names = [layer.name for layer in flat.layers]
    assert names == ["x", "features_shared_name", "tied", "shared_name", "block_dense"]
    assert not any(_clone.is_graph_model(layer) for layer in flat.layers)
    assert flat.get_layer("tied") is not tied  # copied, used twice, still one layer
    assert len(flat.get_layer("tied")._inbound_nodes) == 2
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    np.testing.assert_array_equal(flat.predict(x, verbose=0), model.predict(x, verbose=0))
    assert len(tied._inbound_nodes) == 2  # the input model's layers gained no nodes


def test_flatten_can_call_several_layers_in_place_of_one_shared_layer():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="x")
    tied = L.Dense(4, name="tied")
    h = tied(L.Dense(4, name="first")(tied(inputs)))
    model = keras.Model(inputs, L.Add(name="sum")([h, inputs]))
    replacements = {"tied": lambda: [L.Rescaling(2.0, name="tied"),
                                     L.Rescaling(1.0, offset=1.0, name="tied_offset")]}

    flat = _clone.flatten(model, lambda layer: replacements.get(layer.name, lambda: None)())

    assert [layer.name for layer in flat.layers] == ["x", "tied", "tied_offset", "first",
                                                     "sum"]
    assert len(flat.get_layer("tied")._inbound_nodes) == 2  # shared like the layer it replaces
    np.testing.assert_array_equal(flat.get_layer("first").kernel.numpy(),
                                  model.get_layer("first").kernel.numpy())
    x = np.random.default_rng(0).normal(size=(3, 4)).astype("float32")
    first = model.get_layer("first")
    expected = first(x * 2.0 + 1.0) * 2.0 + 1.0 + x
    np.testing.assert_allclose(flat.predict(x, verbose=0), expected, rtol=1e-5)
