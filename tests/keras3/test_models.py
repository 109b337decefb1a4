"""tfopt.keras3._models and _clone: Keras 3 models in, wrong-Keras models named, layers rebuilt."""

import keras
import numpy as np
import pytest
import tf_keras

from tfopt.keras3 import _clone
from tfopt.keras3 import _models


@pytest.mark.parametrize("action, counterpart", [
    ("prune", "tfopt.pruning.prune"),
    ("shrink", "tfopt.pruning.shrink"),
    ("quantize", "tfopt.quantization.quantize"),
    ("Distiller student", "tfopt.distillation.Distiller"),
])
def test_a_tf_keras_model_gets_the_name_of_the_tf_keras_function(action, counterpart):
    model = tf_keras.Sequential([tf_keras.Input((3,)), tf_keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=rf"^{action} needs a Keras 3 Model \(`import keras`\), "
                       rf"got tf_keras\.src\.engine\.sequential\.Sequential\. It looks like a "
                       rf"tf_keras \(Keras 2\) object: for tf_keras models use {counterpart}\. To "
                       rf"move it to Keras 3, convert it with tfopt\.keras3\.from_tf_keras\(model\)\.$"):
        _models.validate_keras3_model(model, action)


def test_other_objects_are_named_without_a_hint():
    with pytest.raises(ValueError, match=r"^prune needs a Keras 3 Model \(`import keras`\), got "
                       r"builtins\.str\.$"):
        _models.validate_keras3_model("model.keras", "prune")


class _Subclassed(keras.Model):
    def call(self, x):
        return x


@pytest.mark.parametrize("model, message", [
    (lambda: _Subclassed(), r"prune supports Sequential and Functional models; '\w+' is a "
                            r"subclassed model \(_Subclassed\)"),
    (lambda: keras.Sequential([keras.layers.Dense(2)]),
     r"prune needs a built model; 'sequential\w*' has no input shape yet"),
])
def test_graph_models_only(model, message):
    with pytest.raises(ValueError, match=message):
        _models.validate_graph_model(model(), "prune")


def test_rebuild_replaces_layers_in_nested_models_and_keeps_raw_ops():
    keras.utils.set_random_seed(0)
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5, name="d1"),
                              keras.layers.ReLU()], name="inner")
    x = keras.Input((4,))
    y = keras.layers.Dense(3, name="d2")(inner(x))
    model = keras.Model(x, keras.ops.add(y, keras.ops.multiply(y, y)))
    replaced = []

    def replace(layer):
        if layer.name == "d1":
            new = keras.layers.Dense.from_config({**layer.get_config(), "name": "d1_new"})
            replaced.append(layer.name)
            return new, new, layer.get_weights()
        return None

    rebuilt = _clone.rebuild(model, replace)
    data = np.random.default_rng(0).random((3, 4), dtype=np.float32)
    np.testing.assert_array_equal(rebuilt.predict(data, verbose=0), model.predict(data, verbose=0))
    assert replaced == ["d1"]
    names = [layer.name for layer in _clone.all_layers(rebuilt)]
    assert "d1_new" in names and "d1" not in names and "d2" in names
    assert rebuilt.get_layer("inner") is not inner  # a copy; the input model is untouched
    assert inner.get_layer("d1").name == "d1"
