"""shrink: the same units removed, and the same predictions as strip, on tf-keras and Keras 3."""

import functools

import keras
import numpy as np
import pytest
import tf_keras

from tests.keras3 import conftest
from tests.keras3 import twin_models
from tfopt import pruning as tf_keras_pruning
from tfopt.keras3 import pruning as keras3_pruning

_APIS = {"tf_keras": (tf_keras, tf_keras_pruning), "keras3": (keras, keras3_pruning)}


def dense_block(k):
    """A BatchNormalization after a Concatenate (DenseNet): removed channels become
    constants there, which the 1x1 convolution after it takes into its bias."""
    inputs = k.Input((6, 6, 3))
    a = k.layers.Conv2D(4, 3, padding="same", name="a")(inputs)
    b = k.layers.Conv2D(6, 3, padding="same", name="b")(inputs)
    x = k.layers.Concatenate(name="concat")([a, b])
    # beta = 1: removed channels leave the BatchNormalization as 1, not 0.
    x = k.layers.BatchNormalization(beta_initializer="ones", name="bn")(x)
    x = k.layers.ReLU(name="relu")(x)
    x = k.layers.Conv2D(5, 1, use_bias=False, name="transition")(x)
    x = k.layers.GlobalAveragePooling2D(name="gap")(x)
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


def nested(k):
    """A Sequential inside a Functional model: its inner layers are shrunk too."""
    inner = k.Sequential([k.Input((6, 6, 3)), k.layers.Conv2D(8, 3, activation="relu", name="c1"),
                          k.layers.BatchNormalization(name="bn"), k.layers.Conv2D(6, 1, name="c2")],
                         name="inner")
    inputs = k.Input((6, 6, 3))
    x = k.layers.GlobalAveragePooling2D(name="gap")(inner(inputs))
    return k.Model(inputs, k.layers.Dense(3, name="logits")(x))


_ARCHITECTURES = [twin_models.plain_cnn, twin_models.residual,
                  twin_models.depthwise_separable, twin_models.concatenated,
                  twin_models.squeeze_excite, twin_models.raw_ops, dense_block, nested]


@functools.lru_cache(maxsize=None)
def _pruned(version, build):
    """A twin model channel-pruned to half its units in one training step, and its inputs."""
    k, pruning = _APIS[version]
    k.utils.set_random_seed(0)
    model = build(k)
    pruned = pruning.prune(model, pruning.OneShot(0.5), structure="channels")
    pruned.compile(k.optimizers.SGD(1e-2),
                   k.losses.SparseCategoricalCrossentropy(from_logits=True))
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16,) + tuple(model.inputs[0].shape[1:])).astype(np.float32)
    # One step prunes; BatchNormalization's moving statistics move away from 0 and 1 too.
    pruned.fit(x, rng.integers(0, 3, 16), batch_size=16, epochs=1, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    return pruned, x


def _predict(model, x):
    return np.asarray(model(x, training=False))


@pytest.mark.parametrize("version", _APIS)
@pytest.mark.parametrize("build", _ARCHITECTURES, ids=lambda b: b.__name__)
def test_shrink_removes_units_and_predicts_as_strip(version, build):
    k, pruning = _APIS[version]
    pruned, x = _pruned(version, build)
    stripped, small = pruning.strip(pruned), pruning.shrink(pruned)
    assert small.count_params() < stripped.count_params()
    assert pruning.count_flops(small) < pruning.count_flops(stripped)
    np.testing.assert_allclose(_predict(small, x), _predict(stripped, x), atol=1e-5)
    assert all(type(layer).__module__.startswith(k.__name__) or
               not isinstance(layer, k.layers.Layer) for layer in small.layers)


@pytest.mark.parametrize("build", _ARCHITECTURES, ids=lambda b: b.__name__)
def test_both_kerases_shrink_the_twins_to_the_same_widths(build):
    widths = {}
    for version, (_, pruning) in _APIS.items():
        small = pruning.shrink(_pruned(version, build)[0])
        widths[version] = _widths(small)
    assert widths["keras3"] == widths["tf_keras"]


def _widths(model):
    """{layer: filters or units}, nested models entered."""
    widths = {}
    for layer in model.layers:
        if hasattr(layer, "layers"):
            widths.update(_widths(layer))
        elif "filters" in layer.get_config() or "units" in layer.get_config():
            config = layer.get_config()
            widths[layer.name] = config.get("filters", config.get("units"))
    return widths


def test_shrunk_keras3_model_round_trips_through_a_keras_file(tmp_path):
    pruned, x = _pruned("keras3", twin_models.residual)
    small = keras3_pruning.shrink(pruned)
    conftest.assert_keras3_file_round_trip(small, x, str(tmp_path / "small.keras"))


def test_shrink_absorbs_constant_channels_into_a_bias_it_creates():
    small = keras3_pruning.shrink(_pruned("keras3", dense_block)[0])
    transition = small.get_layer("transition")
    assert transition.use_bias
    assert np.any(keras.ops.convert_to_numpy(transition.bias) != 0)


@pytest.mark.parametrize("version", _APIS)
def test_shrink_rejects_unstructured_pruning(version):
    k, pruning = _APIS[version]
    pruned = pruning.prune(twin_models.sequential(k), pruning.OneShot(0.5))
    with pytest.raises(ValueError, match=r"structure='channels'.*'unstructured'"):
        pruning.shrink(pruned)


@pytest.mark.parametrize("version", _APIS)
def test_shrink_rejects_a_model_that_was_not_pruned(version):
    k, pruning = _APIS[version]
    with pytest.raises(ValueError, match=r"structure='channels'; '[^']+' has no .*strip"):
        pruning.shrink(twin_models.sequential(k))


@pytest.mark.parametrize("version", _APIS)
def test_shrink_before_any_pruning_step_says_it_removes_nothing(version, caplog):
    k, pruning = _APIS[version]
    model = twin_models.plain_cnn(k)
    pruned = pruning.prune(model, pruning.OneShot(0.5, step=10), structure="channels")
    plain = pruning.shrink(pruned)
    assert "found no pruned units, so it removes nothing (pruning step 0)" in caplog.text
    assert plain.count_params() == model.count_params()


def test_keras3_shrink_names_the_tf_keras_function_for_a_tf_keras_model():
    with pytest.raises(ValueError, match=r"tfopt\.pruning"):
        keras3_pruning.shrink(twin_models.sequential(tf_keras))
