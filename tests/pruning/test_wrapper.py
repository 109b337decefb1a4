"""PruneWrapper: config round trips, .keras save/load, resuming, summaries."""

import glob
import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfopt import pruning
from tests.conftest import assert_config_round_trip, compile_model, max_abs_diff, small_cnn

L = keras.layers


@keras.utils.register_keras_serializable(package="tfopt_tests")
def smallest_first(weights, gradients):
    return -np.abs(weights)


WRAPPERS = {
    "magnitude": lambda: pruning.PruneWrapper(L.Dense(4), pruning.ConstantSparsity(0.5, 0, 100, 5)),
    "l2-channels": lambda: pruning.PruneWrapper(L.Conv2D(4, 3), pruning.OneShot(0.3, 2), "l2",
                                                "channels"),
    "random-2:4": lambda: pruning.PruneWrapper(L.Dense(4), pruning.Iterative([(0.5, 3)]),
                                               pruning.Random(5), (2, 4)),
    "taylor": lambda: pruning.PruneWrapper(L.Dense(4), pruning.PolynomialDecay(0.0, 0.6, 0, 10),
                                           pruning.Taylor(0.9)),
    "custom": lambda: pruning.PruneWrapper(L.Dense(4), pruning.OneShot(0.5), smallest_first),
    "follower": lambda: pruning.PruneWrapper(L.BatchNormalization(), structure="channels",
                                             follow="conv"),
}


@pytest.mark.parametrize("name", sorted(WRAPPERS))
def test_config_round_trip(name):
    wrapper = WRAPPERS[name]()
    restored = assert_config_round_trip(wrapper)
    assert restored.criterion == wrapper.criterion
    assert restored.schedule == wrapper.schedule
    assert restored.structure == wrapper.structure and restored.follow == wrapper.follow


def test_tfmot_schedule_survives_config_round_trip():
    import tensorflow_model_optimization as tfmot
    schedule = tfmot.sparsity.keras.PolynomialDecay(0.1, 0.7, 0, 50, frequency=5)
    wrapper = pruning.PruneWrapper(L.Dense(3), schedule)
    restored = pruning.PruneWrapper.from_config(wrapper.get_config())
    assert isinstance(restored.schedule, tfmot.sparsity.keras.PolynomialDecay)
    assert restored.schedule.get_config() == schedule.get_config()


@pytest.mark.parametrize("criterion,structure", [
    ("magnitude", "unstructured"), ("taylor", "channels"), (smallest_first, (2, 4)),
    (pruning.Random(3), "unstructured")])
def test_keras_file_round_trip_mid_training(tmp_path, digits, criterion, structure):
    x, y = digits
    pruned = compile_model(pruning.prune(small_cnn(), pruning.PolynomialDecay(0.0, 0.8, 0, 12, frequency=2),
                                         criterion=criterion, structure=structure))
    pruned.fit(x[:192], y[:192], batch_size=32, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    path = str(tmp_path / "pruned.keras")
    pruned.save(path)
    loaded = keras.models.load_model(path)
    assert max_abs_diff(loaded.predict(x[:64], verbose=0), pruned.predict(x[:64], verbose=0)) < 1e-6
    for a, b in zip(pruning._prune.wrappers(pruned), pruning._prune.wrappers(loaded)):
        if not b.follow:
            assert int(b.pruning_step.numpy()) == int(a.pruning_step.numpy()) == 6
        for path_name, mask in a.masks().items():
            np.testing.assert_array_equal(mask, b.masks()[path_name])
        assert b.criterion == a.criterion and b.structure == a.structure


def test_resumed_training_continues_the_schedule(tmp_path, digits):
    """Train 6 steps, save, load, train 6 more == train 12 steps straight."""
    x, y = digits
    schedule = pruning.PolynomialDecay(0.0, 0.8, 0, 10, frequency=2)
    straight = compile_model(pruning.prune(small_cnn(), schedule))
    straight.fit(x[:384], y[:384], batch_size=32, shuffle=False, verbose=0,
                 callbacks=[pruning.UpdatePruningStep()])

    first = compile_model(pruning.prune(small_cnn(), schedule))
    first.fit(x[:192], y[:192], batch_size=32, shuffle=False, verbose=0,
              callbacks=[pruning.UpdatePruningStep()])
    first.save(str(tmp_path / "half.keras"))
    resumed = keras.models.load_model(str(tmp_path / "half.keras"))
    callback = pruning.UpdatePruningStep()
    resumed.fit(x[192:384], y[192:384], batch_size=32, shuffle=False, verbose=0, callbacks=[callback])
    assert callback.step == 12
    for a, b in zip(pruning._prune.wrappers(straight), pruning._prune.wrappers(resumed)):
        assert abs(a.sparsity() - b.sparsity()) < 1e-6
        assert abs(b.sparsity() - 0.8) < 0.01


def test_step_is_counted_inside_every_training_batch(digits):
    """A checkpoint saved mid-epoch sees the current step, not the last epoch's."""
    x, y = digits
    pruned = compile_model(pruning.prune(small_cnn(), pruning.ConstantSparsity(0.5, 0, frequency=3)))
    seen = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(
        [int(w.pruning_step.numpy()) for w in pruning._prune.wrappers(pruned)]))
    pruned.fit(x[:160], y[:160], batch_size=32, epochs=2, verbose=0,
               callbacks=[pruning.UpdatePruningStep(), record])
    assert seen == [[step] * 4 for step in range(1, 11)]


def test_loaded_model_keeps_masks_fixed_between_pruning_steps(tmp_path, digits):
    x, y = digits
    pruned = compile_model(pruning.prune(small_cnn(), pruning.OneShot(0.6)))
    pruned.fit(x[:64], y[:64], batch_size=32, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    pruned.save(str(tmp_path / "m.keras"))
    loaded = keras.models.load_model(str(tmp_path / "m.keras"))
    before = {w.name: w.masks() for w in pruning._prune.wrappers(loaded)}
    loaded.fit(x[:128], y[:128], batch_size=32, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    for wrapper in pruning._prune.wrappers(loaded):
        for path_name, mask in wrapper.masks().items():
            np.testing.assert_array_equal(mask, before[wrapper.name][path_name])
        assert np.all(wrapper.masked_weights()["kernel"][wrapper.masks()["kernel"] == 0] == 0)


def test_pruning_summaries_write_sparsity_and_target(tmp_path, digits):
    x, y = digits
    pruned = compile_model(pruning.prune(small_cnn(), pruning.PolynomialDecay(0.0, 0.5, 0, 4, frequency=2)))
    pruned.fit(x[:256], y[:256], batch_size=32, epochs=2, verbose=0,
               callbacks=[pruning.UpdatePruningStep(), pruning.PruningSummaries(str(tmp_path))])
    values = {}
    for event_file in glob.glob(os.path.join(str(tmp_path), "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(event_file):
            for value in event.summary.value:
                values.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
    assert set(values) == {f"pruning/{n}/{kind}" for n in ["conv_a", "conv_b", "hidden", "logits"]
                           for kind in ["sparsity", "target_sparsity"]}
    assert [step for step, _ in values["pruning/hidden/sparsity"]] == [8, 16]
    assert abs(values["pruning/hidden/sparsity"][-1][1] - 0.5) < 0.01
    assert values["pruning/hidden/target_sparsity"][-1][1] == pytest.approx(0.5)


def test_pruning_summaries_validate_update_freq():
    with pytest.raises(ValueError, match="update_freq must be 'epoch' or a positive number"):
        pruning.PruningSummaries("logs", update_freq=0)


def test_wrapper_needs_a_layer():
    with pytest.raises(TypeError, match="PruneWrapper wraps a tf_keras layer, got 'dense'"):
        pruning.PruneWrapper("dense", pruning.OneShot(0.5))


@pytest.mark.parametrize("log_dir", [None, "", 3])
def test_pruning_summaries_need_a_log_dir(log_dir):
    with pytest.raises(ValueError, match="log_dir must be a directory path"):
        pruning.PruningSummaries(log_dir)


def test_unsupported_layer_cannot_be_wrapped():
    with pytest.raises(ValueError, match="Layer 'norm' of type LayerNormalization cannot be pruned"):
        pruning.PruneWrapper(L.LayerNormalization(name="norm"), pruning.OneShot(0.5))


def test_training_under_mirrored_strategy(digits, mirrored_strategy):
    x, y = digits
    with mirrored_strategy.scope():
        pruned = compile_model(pruning.prune(small_cnn(), pruning.PolynomialDecay(0.0, 0.7, 0, 6, frequency=2),
                                             criterion="taylor", structure="channels"))
    pruned.fit(x[:320], y[:320], batch_size=32, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    wrappers = {w.layer.name: w for w in pruning._prune.wrappers(pruned)}
    assert int(wrappers["hidden"].pruning_step.numpy()) == 10
    units = wrappers["hidden"].unit_mask()
    assert units.sum() == round(len(units) * 0.3)
    statistic = next(e.statistic for e in wrappers["hidden"]._entries if e.statistic is not None)
    assert np.count_nonzero(statistic.numpy()) > 0
    plain = pruning.strip(pruned)
    # Replicas sum in a different order than one device: allow float32 round-off.
    assert max_abs_diff(plain.predict(x[:64], verbose=0), pruned.predict(x[:64], verbose=0)) < 1e-4
