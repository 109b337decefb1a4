"""prune / strip / UpdatePruningStep: the same behaviour on tf-keras and Keras 3 models."""

import keras
import numpy as np
import pytest
import tf_keras

from tests.keras3 import twin_models
from tfopt import pruning as tf_keras_pruning
from tfopt.keras3 import pruning as keras3_pruning

# Each Keras version's module, its tfopt pruning package, and the pruned layers of a model
# with, for each, (name, masks, unit mask).
_APIS = {
    "tf_keras": (tf_keras, tf_keras_pruning,
                 lambda m: [(w.layer.name, w) for w in tf_keras_pruning._prune.wrappers(m)]),
    "keras3": (keras, keras3_pruning,
               lambda m: [(layer.name, layer) for layer in
                          keras3_pruning._prune.pruned_layers(m)]),
}


def _data(shape, count=64, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((count,) + shape, dtype=np.float32), rng.integers(0, 3, count)


def _trained(version, structure, criterion, sparsity=0.5):
    k, pruning, pruned_layers = _APIS[version]
    k.utils.set_random_seed(0)
    model = twin_models.residual(k)
    pruned = pruning.prune(model, pruning.ConstantSparsity(sparsity, begin_step=0, frequency=2),
                           criterion=criterion, structure=structure)
    pruned.compile(k.optimizers.Adam(1e-2),
                   k.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data((8, 8, 3))
    pruned.fit(x, y, batch_size=16, epochs=1, verbose=0,
               callbacks=[pruning.UpdatePruningStep()])
    return pruned, dict(pruned_layers(pruned)), x


# One criterion per structure keeps the run short; every criterion has its own tests.
@pytest.mark.parametrize("version", _APIS)
@pytest.mark.parametrize("structure, criterion", [
    ("unstructured", "taylor"), ("channels", "magnitude"), ((2, 4), "random")])
def test_masks_take_the_structure_and_strip_keeps_the_predictions(version, structure, criterion):
    pruned, layers, x = _trained(version, structure, criterion)
    assert layers, "nothing was pruned"
    for name, layer in layers.items():
        for path, mask in layer.masks().items():
            assert set(np.unique(mask)) <= {0.0, 1.0}
            if structure == "unstructured":
                assert np.mean(mask == 0) == pytest.approx(0.5, abs=0.02), (name, path)
            elif structure == (2, 4):  # two of every four inputs of each output
                groups = np.moveaxis(mask, -2 if mask.ndim > 2 else 0, -1)
                groups = groups.reshape(-1, groups.shape[-1] // 4, 4)
                assert np.all(groups.sum(-1) == 2), (name, path)
        if structure == "channels":
            unit = layer.unit_mask()
            if unit is not None and layer.follow is None:
                assert np.mean(unit == 0) == pytest.approx(0.5, abs=0.13), name
    if structure == "channels":
        # The stem's BatchNormalization follows the stem: same channels removed.
        followers = {n: l for n, l in layers.items() if l.follow is not None}
        assert "stem_bn" in followers
        np.testing.assert_array_equal(followers["stem_bn"].masks()["gamma"],
                                      layers[followers["stem_bn"].follow].unit_mask())
    k, pruning, pruned_layers = _APIS[version]
    # The report counts what strip gives: the masked zeros of every pruned layer.
    report = {row.name: row for row in pruning.sparsity_report(pruned).layers}
    for name, layer in layers.items():
        zeros = sum(int(np.sum(w == 0)) for w in layer.stripped_weights())
        assert report[name].zeros == zeros and report[name].parameters == sum(
            w.size for w in layer.stripped_weights())
    assert "total" in str(pruning.sparsity_report(pruned))
    plain = pruning.strip(pruned)
    assert not pruned_layers(plain)
    np.testing.assert_allclose(plain.predict(x, verbose=0), pruned.predict(x, verbose=0),
                               atol=1e-6)
    for name, layer in layers.items():
        stripped = plain.get_layer(name).get_weights()
        assert len(stripped) == len(layer.stripped_weights())
        for got, want in zip(stripped, layer.stripped_weights()):
            np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("version", _APIS)
def test_training_without_the_callback_is_refused(version):
    k, pruning, _ = _APIS[version]
    model = twin_models.plain_cnn(k)
    pruned = pruning.prune(model, pruning.ConstantSparsity(0.5, begin_step=0))
    pruned.compile("sgd", k.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = _data((8, 8, 1), count=8)
    with pytest.raises(ValueError, match="UpdatePruningStep"):
        pruned.fit(x, y, verbose=0)


def test_keras3_taylor_statistics_follow_the_gradients():
    pruned, layers, _ = _trained("keras3", "unstructured", keras3_pruning.Taylor(decay=0.5))
    for layer in layers.values():
        statistics = [e.statistic for e in layer._entries if e.statistic is not None]
        assert statistics
        for statistic in statistics:
            values = keras.ops.convert_to_numpy(statistic)
            assert np.all(values >= 0) and np.count_nonzero(values) > values.size // 4
    # The statistics are variables of the model, not trained weights: the optimizer
    # writes them, and they are saved with the model.
    assert all(np.isfinite(keras.ops.convert_to_numpy(v)).all() for v in pruned.weights)


def test_keras3_schedule_resumes_from_a_saved_model(tmp_path):
    pruned, layers, x = _trained("keras3", "unstructured", "magnitude")
    steps = int(keras.ops.convert_to_numpy(next(iter(layers.values())).pruning_step))
    assert steps == 4  # 64 examples in batches of 16
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), pruned.predict(x, verbose=0))
    reloaded = dict(_APIS["keras3"][2](loaded))
    for name, layer in layers.items():
        for path_, mask in layer.masks().items():
            np.testing.assert_array_equal(reloaded[name].masks()[path_], mask)
        assert reloaded[name].schedule == layer.schedule
        assert reloaded[name].criterion == layer.criterion
    loaded.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loaded.fit(x[:16], np.zeros(16), batch_size=16, verbose=0,
               callbacks=[keras3_pruning.UpdatePruningStep()])
    assert int(keras.ops.convert_to_numpy(reloaded[name].pruning_step)) == steps + 1


def test_keras3_prune_takes_tf_keras_schedules_but_not_tfmot_ones():
    model = twin_models.plain_cnn(keras)
    pruned = keras3_pruning.prune(model, tf_keras_pruning.PolynomialDecay(0.1, 0.6, 0, 10))
    schedule = keras3_pruning._prune.pruned_layers(pruned)[0].schedule
    assert type(schedule) is keras3_pruning.PolynomialDecay
    assert schedule.get_config() == tf_keras_pruning.PolynomialDecay(0.1, 0.6, 0, 10).get_config()
    import tensorflow_model_optimization as tfmot
    with pytest.raises(ValueError, match=r"tfopt\.keras3\.pruning\.ConstantSparsity.*tfmot's "
                                         r"schedules are tf-keras only"):
        keras3_pruning.prune(model, tfmot.sparsity.keras.ConstantSparsity(0.5, 0))


@pytest.mark.parametrize("call, message", [
    (lambda m: keras3_pruning.prune(keras3_pruning.prune(
        m, keras3_pruning.ConstantSparsity(0.5)), keras3_pruning.ConstantSparsity(0.5)),
     r"already being pruned"),
    (lambda m: keras3_pruning.prune(m, keras3_pruning.ConstantSparsity(0.5), layers=["pool"]),
     r"Layer 'pool' of type MaxPooling2D cannot be pruned"),
    (lambda m: keras3_pruning.prune(m, keras3_pruning.ConstantSparsity(0.5), layers=["nope"]),
     r"No layer named \['nope'\]"),
    (lambda m: keras3_pruning.prune(m, 0.5), r"schedule must be a tfopt pruning schedule"),
    (lambda m: keras3_pruning.prune(m, keras3_pruning.ConstantSparsity(0.5), structure="rows"),
     r"structure"),
    (lambda m: keras3_pruning.prune(twin_models.plain_cnn(tf_keras),
                                    keras3_pruning.ConstantSparsity(0.5)),
     r"for tf_keras models use tfopt\.pruning\.prune"),
])
def test_keras3_prune_errors(call, message):
    with pytest.raises((ValueError, TypeError), match=message):
        call(twin_models.plain_cnn(keras))
