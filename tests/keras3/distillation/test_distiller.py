"""Distiller: the same loss, metrics, hints and checks on tf-keras and Keras 3 models."""

import numpy as np
import pytest

from tests.keras3.distillation.conftest import APIS
from tests.keras3.distillation.conftest import mlp


def _log_softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def _one_class_teacher(k, answer=3):
    """A teacher that always answers `answer`, whatever the input."""
    teacher = mlp(k, 16, 0, name="teacher")
    logits = teacher.get_layer("logits")
    bias = np.zeros(10, "float32")
    bias[answer] = 4.0
    logits.set_weights([np.zeros_like(logits.get_weights()[0]), bias])
    return teacher


@pytest.mark.parametrize("version", APIS)
def test_without_labels_the_student_learns_to_answer_what_the_teacher_answers(version, digits):
    k, distillation = APIS[version]
    x = digits[0][:768]
    distiller = distillation.Distiller(_one_class_teacher(k), mlp(k, 8, 1))
    distiller.compile(k.optimizers.Adam(1e-2))
    history = distiller.fit(x, epochs=2, batch_size=64, verbose=0).history
    assert np.mean(np.argmax(distiller.predict(x, verbose=0), axis=1) == 3) > 0.9
    # The soft targets alone: no student_loss, and loss is the distillation loss.
    assert set(history) == {"loss", "distillation_loss"}
    np.testing.assert_allclose(history["loss"], history["distillation_loss"], rtol=1e-6)


@pytest.mark.parametrize("version", APIS)
def test_loss_is_the_weighted_sum_and_only_the_student_trains(version, teachers, digits):
    k, distillation = APIS[version]
    x, y = digits
    teacher = teachers(version)
    distiller = distillation.Distiller(teacher, mlp(k, 8, 1, name="student"), temperature=3.0,
                                       alpha=0.25)
    distiller.compile(k.optimizers.Adam(1e-2), metrics=["accuracy"])
    t = np.asarray(teacher(x[:32])), np.asarray(distiller.student(x[:32]))
    pt, ps = _log_softmax(t[0] / 3.0), _log_softmax(t[1] / 3.0)
    soft = 9.0 * np.mean(np.sum(np.exp(pt) * (pt - ps), axis=-1))
    hard = np.mean(-_log_softmax(t[1])[np.arange(32), y[:32]])
    logs = distiller.evaluate(x[:32], y[:32], batch_size=32, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "student_loss", "distillation_loss", "accuracy"}
    assert logs["student_loss"] == pytest.approx(hard, rel=1e-4)
    assert logs["distillation_loss"] == pytest.approx(soft, rel=1e-4)
    assert logs["loss"] == pytest.approx(0.25 * hard + 0.75 * soft, rel=1e-4)

    before = [w.copy() for w in teacher.get_weights()], [w.copy() for w in
                                                         distiller.student.get_weights()]
    history = distiller.fit(x[:512], y[:512], validation_data=(x[512:640], y[512:640]),
                            epochs=2, batch_size=64, verbose=0).history
    for a, b in zip(before[0], teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(before[1],
                                                        distiller.student.get_weights()))
    assert history["distillation_loss"][-1] < history["distillation_loss"][0]
    # val_X is X on the validation data: val_loss is the combined loss, not the student's.
    assert set(history) == {prefix + name for prefix in ("", "val_") for name in logs}
    np.testing.assert_allclose(history["val_loss"], 0.25 * np.array(history["val_student_loss"])
                               + 0.75 * np.array(history["val_distillation_loss"]), rtol=1e-5)


def _count_calls(layer):
    """Counts the calls of `layer` (an eager fit calls it once per student forward pass)."""
    calls = []
    call = layer.call

    def counted(*args, **kwargs):
        calls.append(1)
        return call(*args, **kwargs)

    layer.call = counted
    return calls


@pytest.mark.parametrize("version", APIS)
def test_hints_between_widths_train_a_projection_in_one_student_pass(version, teachers, digits):
    k, distillation = APIS[version]
    x, y = digits
    student = mlp(k, 8, 1, name="student")
    distiller = distillation.Distiller(teachers(version), student, hints=[("hidden", "hidden")],
                                       hint_weight=0.5)
    distiller.compile(k.optimizers.Adam(1e-2), run_eagerly=True)
    (projection,) = [p for p in distiller.hint_projections if p is not None]
    assert projection.get_weights()[0].shape == (8, 64)  # student width -> teacher width
    assert projection.name not in [layer.name for layer in distiller.student.layers]
    before = projection.get_weights()[0].copy()
    calls = _count_calls(student.get_layer("hidden"))
    history = distiller.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0).history
    assert len(calls) == 4  # 4 steps, one student pass each (Keras' own Distiller makes 2)
    assert not np.array_equal(before, projection.get_weights()[0])
    assert set(history) == {"loss", "student_loss", "distillation_loss", "hint_loss"}
    combined = 0.1 * history["student_loss"][0] + 0.9 * history["distillation_loss"][0] \
        + 0.5 * history["hint_loss"][0]
    assert history["loss"][0] == pytest.approx(combined, rel=1e-4)


@pytest.mark.parametrize("version", APIS)
def test_probability_teachers_need_saying_so_and_give_the_logits_loss(version, digits):
    k, distillation = APIS[version]
    x, y = digits
    # Untrained: no probability small enough to be clipped before its log is taken.
    teacher = mlp(k, 16, 0, name="teacher")
    softmax = k.Sequential([k.Input((8, 8, 1)), teacher, k.layers.Softmax()])
    with pytest.raises(ValueError, match=r"ends in a softmax.*teacher_outputs='probabilities'"):
        distillation.Distiller(softmax, mlp(k, 8, 1))
    losses = []
    for model, kind in ((teacher, "logits"), (softmax, "probabilities")):
        distiller = distillation.Distiller(model, mlp(k, 8, 1), teacher_outputs=kind)
        distiller.compile("adam")
        losses.append(distiller.evaluate(x[:64], y[:64], verbose=0, return_dict=True))
    assert losses[1]["distillation_loss"] == pytest.approx(losses[0]["distillation_loss"],
                                                           rel=1e-4)


@pytest.mark.parametrize("version", APIS)
@pytest.mark.parametrize("kwargs, error, match", [
    (dict(temperature=0), ValueError, r"temperature must be a finite number > 0, got 0"),
    (dict(alpha=1.5), ValueError, r"alpha must be in \[0, 1\], got 1.5"),
    (dict(teacher_outputs="softmax"), ValueError,
     r"teacher_outputs must be one of \['logits', 'probabilities'\]"),
    (dict(hints="hidden"), ValueError, r"hints must be a list of \(teacher layer name"),
    (dict(hints=[("hidden", "nope")]), ValueError, r"The student .* has no layer 'nope'"),
    (dict(hint_weight=2.0), ValueError, r"hint_weight=2.0 has no effect without hints"),
    (dict(temprature=2.0), TypeError, r"unexpected keyword argument\(s\) \['temprature'\] "
                                      r"\(did you mean \['temperature'\]\?\)"),
])
def test_bad_arguments_are_explained(version, kwargs, error, match):
    k, distillation = APIS[version]
    with pytest.raises(error, match=match):
        distillation.Distiller(mlp(k, 16, 0, name="teacher"), mlp(k, 8, 1, name="student"),
                               **kwargs)


@pytest.mark.parametrize("version", APIS)
def test_bad_data_and_losses_are_explained_before_training(version, teachers, digits):
    k, distillation = APIS[version]
    x, y = digits
    distiller = distillation.Distiller(teachers(version), mlp(k, 8, 1))
    with pytest.raises(ValueError, match=r"reads the student's outputs as probabilities"):
        distiller.compile("adam", loss=k.losses.SparseCategoricalCrossentropy())
    distiller.compile("adam")
    with pytest.raises(ValueError, match=r"y must hold integer class indices in \[0, 10\)"):
        distiller.fit(x[:8], y[:8] + 10, verbose=0)
    with pytest.raises(ValueError, match=r"x has shape \(8, 64\)"):
        distiller.fit(x[:8].reshape(8, 64), y[:8], verbose=0)
    with pytest.raises(ValueError, match=r"output shape .* differ"):
        distillation.Distiller(teachers(version), k.Sequential(
            [k.Input((8, 8, 1)), k.layers.Flatten(), k.layers.Dense(3)]))


@pytest.mark.parametrize("version, other", [("tf_keras", "keras3"), ("keras3", "tf_keras")])
def test_a_model_of_the_other_keras_gets_the_right_import(version, other):
    _, distillation = APIS[version]
    k, _ = APIS[other]
    package = "tfopt.distillation" if other == "tf_keras" else "tfopt.keras3.distillation"
    with pytest.raises(ValueError, match=rf"Distiller teacher needs .*{package}\.Distiller"):
        distillation.Distiller(mlp(k, 16, 0), mlp(k, 8, 1))


# Keras 3 only: saving, pruned students and export.

def test_keras_file_round_trip_keeps_the_projection_and_the_optimizer_state(teachers, digits,
                                                                         tmp_path):
    import keras
    from tests.conftest import max_abs_diff
    from tfopt.keras3 import distillation
    x, y = digits
    teacher = teachers("keras3")
    distiller = distillation.Distiller(teacher, mlp(keras, 8, 1, name="student"),
                                       temperature=2.5, alpha=0.3, hints=[("hidden", "hidden")])
    distiller.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    distiller.fit(x, y, epochs=1, batch_size=256, verbose=0)
    config = distiller.get_config()
    assert type(distiller).from_config(config).get_config() == config
    path = str(tmp_path / "distiller.keras")
    distiller.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, distillation.Distiller)
    assert (loaded.temperature, loaded.alpha, loaded.hints) == (2.5, 0.3, (("hidden", "hidden"),))
    assert max_abs_diff(loaded.predict(x[:32], verbose=0), distiller.predict(x[:32], verbose=0)) \
        == 0.0
    np.testing.assert_array_equal(loaded.hint_projections[0].get_weights()[0],
                                  distiller.hint_projections[0].get_weights()[0])
    np.testing.assert_array_equal(loaded.teacher.get_weights()[0], teacher.get_weights()[0])
    # The optimizer's state came back too, so training resumes where it stopped.
    assert int(loaded.optimizer.iterations) == int(distiller.optimizer.iterations) == 8
    for restored, saved in zip(loaded.optimizer.variables, distiller.optimizer.variables):
        np.testing.assert_array_equal(restored, saved)
    student_path = str(tmp_path / "student.keras")
    distiller.student.save(student_path)  # a plain model: no projection, no teacher
    student = keras.models.load_model(student_path)
    assert [layer.name for layer in student.layers] == ["flat", "hidden", "logits"]
    assert max_abs_diff(student.predict(x[:32], verbose=0),
                        distiller.student.predict(x[:32], verbose=0)) == 0.0


def test_a_pruned_student_trains_with_update_pruning_step_and_exports(teachers, digits,
                                                                       tmp_path):
    import keras
    from tfopt import export
    from tfopt.keras3 import distillation
    from tfopt.keras3.pruning import _callbacks
    from tfopt.keras3.pruning import _objects
    from tfopt.keras3.pruning import _prune
    x, y = digits
    student = _prune.prune(mlp(keras, 16, 1, name="student"),
                           _objects.ConstantSparsity(0.5, begin_step=0, frequency=1))
    with pytest.raises(ValueError, match=r"UpdatePruningStep"):  # it finds the student's layers
        unattended = distillation.Distiller(teachers("keras3"), student)
        unattended.compile("adam")
        unattended.fit(x, y, epochs=1, batch_size=256, verbose=0)
    distiller = distillation.Distiller(teachers("keras3"), student, temperature=2.0, alpha=0.5,
                                       hints=[("hidden", "hidden")])
    # The callback finds each pruned layer of the student once (the hint extractor that
    # shares them is not among the Distiller's layers).
    assert [leader.name for leader, _ in _callbacks.pruned_groups(distiller)] == \
        [leader.name for leader, _ in _callbacks.pruned_groups(student)] == ["hidden", "logits"]
    distiller.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    history = distiller.fit(x, y, epochs=2, batch_size=96, verbose=0,
                            callbacks=[_callbacks.UpdatePruningStep()]).history
    hidden = distiller.student.get_layer("hidden")
    assert hidden.sparsity() == pytest.approx(0.5, abs=0.01)
    assert history["accuracy"][0] < history["accuracy"][1]
    assert history["distillation_loss"][1] < history["distillation_loss"][0]
    plain = _prune.strip(distiller.student)
    path = str(tmp_path / "student.tflite")
    export.tflite(plain, path, verify=(x[:200], y[:200]))
    assert (tmp_path / "student.tflite").stat().st_size > 0


@pytest.mark.parametrize("version", APIS)
def test_a_named_loss_on_a_softmax_student_takes_sample_weights(version, digits):
    k, distillation = APIS[version]
    x, y = digits
    student = mlp(k, 8, 1, softmax=True)
    distiller = distillation.Distiller(mlp(k, 16, 0), student, student_outputs="probabilities")
    distiller.compile("adam", loss="sparse_categorical_crossentropy")
    weights = np.tile(np.array([0.0, 2.0], "float32"), 16)
    logs = distiller.evaluate(x[:32], y[:32], sample_weight=weights, batch_size=32, verbose=0,
                              return_dict=True)
    p = np.asarray(student(x[:32]))
    expected = np.sum(weights * -np.log(p[np.arange(32), y[:32]])) / 32
    assert logs["student_loss"] == pytest.approx(expected, rel=1e-4)


def _subclassed(k):
    """A subclassed student, called once so its shapes are known."""

    class Net(k.Model):
        def __init__(self):
            super().__init__(name="net")
            self.flat, self.dense = k.layers.Flatten(), k.layers.Dense(10)

        def call(self, inputs):
            return self.dense(self.flat(inputs))

    net = Net()
    net(np.zeros((2, 8, 8, 1), "float32"))
    return net


@pytest.mark.parametrize("version", APIS)
def test_a_subclassed_student_distills_from_its_outputs_only(version, digits):
    k, distillation = APIS[version]
    x, y = (a[:256] for a in digits)
    student = _subclassed(k)
    before = student.get_weights()[0].copy()
    distiller = distillation.Distiller(mlp(k, 16, 0), student)
    distiller.compile("adam")
    distiller.fit(x, y, batch_size=128, verbose=0)
    assert not np.array_equal(before, student.get_weights()[0])
    with pytest.raises(ValueError, match=r"needs a Sequential or Functional student; 'net' is a "
                                         r"subclassed model"):
        distillation.Distiller(mlp(k, 16, 0), student, hints=[("hidden", "dense")])
    with pytest.raises(ValueError, match=r"x has shape \(8, 64\)"):
        distiller.fit(x[:8].reshape(8, 64), y[:8], verbose=0)


# Slow (10 s: QAT tracing and a conversion), so it runs with `make test-slow`.
@pytest.mark.slow
def test_a_qat_student_distills_and_converts_to_a_fully_int8_file_without_data(teachers, digits,
                                                                                tmp_path):
    import keras
    from ai_edge_litert.interpreter import Interpreter
    from tfopt import export
    from tfopt.keras3 import distillation
    from tfopt.keras3 import quantization
    x, y = digits
    student = quantization.quantize(mlp(keras, 16, 1, name="student"), "int8")
    ranges = list(student.non_trainable_variables)
    before = [np.array(v) for v in ranges]
    distiller = distillation.Distiller(teachers("keras3"), student, temperature=2.0, alpha=0.5,
                                       hints=[("hidden", "hidden")])
    distiller.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    history = distiller.fit(x, y, epochs=2, batch_size=96, verbose=0).history
    assert history["distillation_loss"][1] < history["distillation_loss"][0]
    assert history["accuracy"][1] > history["accuracy"][0]
    # The fake-quant ranges learned in the Distiller's steps (one student pass each).
    assert any(not np.array_equal(np.array(v), b) for v, b in zip(ranges, before))
    path = export.tflite(distiller.student, str(tmp_path / "student.tflite"), mode="int8")
    interpreter = Interpreter(model_path=path)
    assert {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()} <= {
        "int8", "int32"}
    figures = export.verify_tflite(path, x[:300], y[:300], reference=distiller.student,
                                   latency_runs=0)
    assert figures["agreement"] >= 0.97, figures
    assert figures["accuracy"] >= 0.5, figures  # ten classes: chance is 0.1
