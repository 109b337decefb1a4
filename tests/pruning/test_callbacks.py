"""UpdatePruningStep: exact steps, resuming, and saying so when something is off."""

import numpy as np
import pytest
import tf_keras as keras

from tfopt import pruning
from tests.conftest import compile_model, small_cnn

L = keras.layers


def _leaders(model):
    return [w for w in pruning._prune.wrappers(model) if w.follow is None]


def _state(model):
    """(step, per-layer sparsity, masks) of a pruned model."""
    leaders = _leaders(model)
    steps = {int(w.pruning_step.numpy()) for w in leaders}
    assert len(steps) == 1, steps
    return steps.pop(), [round(w.sparsity(), 6) for w in leaders], [w.masks() for w in leaders]


def _pruned(schedule, steps_per_execution=1):
    model = pruning.prune(small_cnn(), schedule)
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  steps_per_execution=steps_per_execution)
    return model


class _Interrupt(keras.callbacks.Callback):
    """Stops the run at the end of an epoch the way a killed process would."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if epoch == self.epoch:
            raise KeyboardInterrupt


@pytest.mark.parametrize("pruning_first", [True, False], ids=["pruning-first", "backup-first"])
def test_backup_and_restore_resumes_the_schedule_in_either_callback_order(
        tmp_path, digits, pruning_first):
    x, y = digits[0][:160], digits[1][:160]
    schedule = pruning.PolynomialDecay(0.0, 0.8, 0, 18, frequency=2)  # 5 steps an epoch, 4 epochs
    fit = dict(batch_size=32, epochs=4, shuffle=False, verbose=0)

    straight = _pruned(schedule)
    straight.fit(x, y, callbacks=[pruning.UpdatePruningStep()], **fit)

    def callbacks():
        backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"))
        update = pruning.UpdatePruningStep()
        return [update, backup] if pruning_first else [backup, update]

    first = _pruned(schedule)
    with pytest.raises(KeyboardInterrupt):
        first.fit(x, y, callbacks=callbacks() + [_Interrupt(1)], **fit)
    resumed = _pruned(schedule)
    resumed.fit(x, y, callbacks=callbacks(), **fit)

    step, sparsity, masks = _state(resumed)
    want_step, want_sparsity, want_masks = _state(straight)
    assert step == want_step == 20
    assert sparsity == want_sparsity
    assert all(abs(s - 0.8) < 0.02 for s in sparsity)
    for got, want in zip(masks, want_masks):
        for name in want:
            np.testing.assert_array_equal(got[name], want[name])


@pytest.mark.parametrize("frequency", [4, 3], ids=["aligned", "unaligned"])
def test_steps_per_execution_follows_the_schedule_like_single_steps(digits, frequency, caplog):
    x, y = digits[0][:256], digits[1][:256]  # 8 batches an epoch: calls of 4 start at 0, 4, ...
    schedule = pruning.PolynomialDecay(0.0, 0.75, 0, 12, frequency=frequency)
    states = []
    for steps_per_execution in (1, 4):
        model = _pruned(schedule, steps_per_execution)
        model.fit(x, y, batch_size=32, epochs=2, shuffle=False, verbose=0,
                  callbacks=[pruning.UpdatePruningStep()])
        states.append(_state(model))
    (step_1, sparsity_1, masks_1), (step_4, sparsity_4, masks_4) = states
    assert step_1 == step_4 == 16
    assert sparsity_4 == sparsity_1
    assert all(abs(s - 0.75) < 0.02 for s in sparsity_4)
    warned = "steps_per_execution=4" in caplog.text
    if frequency == 4:  # every pruning step starts a call: the same masks, no warning
        assert not warned
        for got, want in zip(masks_4, masks_1):
            for name in want:
                np.testing.assert_array_equal(got[name], want[name])
    else:
        assert warned and "up to 3 steps early" in caplog.text


def test_shared_layer_counts_each_training_step_once(digits):
    shared = L.Dense(8, name="shared")
    inputs = keras.Input((8,))
    outputs = L.Dense(2, name="head")(L.Concatenate()([shared(inputs), shared(inputs * 2.0)]))
    model = pruning.prune(keras.Model(inputs, outputs),
                          pruning.PolynomialDecay(0.0, 0.5, 0, 8, frequency=2))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = digits[0][:96].reshape(96, -1)[:, :8]
    model.fit(x, digits[1][:96] % 2, batch_size=16, verbose=0,
              callbacks=[pruning.UpdatePruningStep()])
    assert sorted(int(w.pruning_step.numpy()) for w in _leaders(model)) == [6, 6]


def test_training_without_the_callback_fails_with_one_sentence(digits):
    model = compile_model(pruning.prune(small_cnn(), pruning.ConstantSparsity(0.5, 0)))
    with pytest.raises(ValueError) as error:
        model.fit(digits[0][:32], digits[1][:32], verbose=0)
    assert str(error.value).startswith("A tfopt-pruned model is training without the "
                                       "tfopt.pruning.UpdatePruningStep callback")
    assert len(str(error.value)) < 300


@pytest.mark.parametrize("end_step,warns", [(40, True), (8, False)])
def test_warns_when_fit_ends_before_the_schedule_reaches_its_target(digits, caplog, end_step,
                                                                    warns):
    model = compile_model(pruning.prune(small_cnn(), pruning.PolynomialDecay(0.0, 0.8, 0, end_step,
                                                                             frequency=4)))
    model.fit(digits[0][:320], digits[1][:320], batch_size=32, verbose=0,
              callbacks=[pruning.UpdatePruningStep()])
    message = "training stopped at step 10, before the schedule's pruning step 40"
    assert (message in caplog.text) == warns
    if warns:
        assert "reaches sparsity 0.80" in caplog.text and "Train for at least 31 more steps" \
            in caplog.text
