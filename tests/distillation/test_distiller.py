"""Distiller: loss, frozen teacher, label-free fit, evaluation, config and .keras round trips."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfopt import distillation
from tfopt import quantization
from tests.conftest import assert_config_round_trip, max_abs_diff
from tests.distillation.conftest import mlp

L = keras.layers


def _distiller(teacher, **kwargs):
    distiller = distillation.Distiller(teacher, mlp(8, 1, name="student"), **kwargs)
    distiller.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    return distiller


def test_loss_is_the_weighted_sum_of_hard_and_soft_terms(teacher, digits):
    x, y = digits
    d = _distiller(teacher, temperature=3.0, alpha=0.25)
    t, s = teacher(x[:32]).numpy(), d.student(x[:32]).numpy()

    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    pt, ls = log_softmax(t / 3.0), log_softmax(s / 3.0)
    expected_soft = 9.0 * np.mean(np.sum(np.exp(pt) * (pt - ls), axis=-1))
    np.testing.assert_allclose(np.mean(d.distillation_loss(t, s).numpy()), expected_soft,
                               rtol=1e-5)
    hard = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y[:32], s))
    logs = d.evaluate(x[:32], y[:32], batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["student_loss"], hard, rtol=1e-5)
    np.testing.assert_allclose(logs["distillation_loss"], expected_soft, rtol=1e-5)
    # The loss training minimizes, in evaluation too: val_loss compares like with like.
    assert logs["loss"] == pytest.approx(0.25 * hard + 0.75 * expected_soft, rel=1e-5)


def test_only_the_student_trains_and_the_teacher_stays_bit_identical(teacher, digits):
    x, y = digits
    d = _distiller(teacher)
    before_teacher = [w.copy() for w in teacher.get_weights()]
    before_student = [w.copy() for w in d.student.get_weights()]
    history = d.fit(x, y, epochs=2, batch_size=64, verbose=0)
    for a, b in zip(before_teacher, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(before_student, d.student.get_weights()))
    assert set(history.history) == {"loss", "student_loss", "distillation_loss", "accuracy"}
    assert history.history["distillation_loss"][-1] < history.history["distillation_loss"][0]


def test_validation_reports_the_quantities_training_reports(teacher, digits):
    """val_X is X on the validation data, for every X; val_loss is not the student's loss."""
    x, y = digits
    d = _distiller(teacher, alpha=0.3)
    stopper = keras.callbacks.EarlyStopping(monitor="val_loss", patience=0)
    history = d.fit(x[:1200], y[:1200], validation_data=(x[1200:], y[1200:]), epochs=2,
                    batch_size=64, verbose=0, callbacks=[stopper]).history
    names = {"loss", "student_loss", "distillation_loss", "accuracy"}
    assert set(history) == names | {f"val_{name}" for name in names}
    combined = 0.3 * np.array(history["val_student_loss"]) + 0.7 * np.array(
        history["val_distillation_loss"])
    np.testing.assert_allclose(history["val_loss"], combined, rtol=1e-5)
    assert not np.allclose(history["val_loss"], history["val_student_loss"])
    logs = d.evaluate(x[1200:], y[1200:], batch_size=64, verbose=0, return_dict=True)
    assert logs["loss"] == pytest.approx(history["val_loss"][-1], rel=1e-5)


def test_distilled_student_learns_the_task(teacher, digits):
    x, y = digits
    d = _distiller(teacher, temperature=2.0, alpha=0.5)
    d.fit(x, y, epochs=6, batch_size=64, verbose=0)
    accuracy = np.mean(np.argmax(d.predict(x, verbose=0), axis=1) == y)
    assert accuracy > 0.85
    np.testing.assert_array_equal(d.predict(x[:16], verbose=0), d.student.predict(x[:16], verbose=0))


def test_label_free_fit_learns_from_the_teacher_alone(teacher, digits):
    x, _ = digits
    d = _distiller(teacher)
    history = d.fit(x, epochs=6, batch_size=64, verbose=0)
    assert set(history.history) == {"loss", "distillation_loss"}
    assert history.history["loss"] == history.history["distillation_loss"]
    agreement = np.mean(np.argmax(d.predict(x, verbose=0), axis=1)
                        == np.argmax(teacher.predict(x, verbose=0), axis=1))
    assert agreement > 0.8


def test_probability_outputs_give_the_same_loss_as_logits(teacher, digits):
    x, _ = digits
    probabilities = keras.Sequential([keras.Input((8, 8, 1)), teacher, L.Softmax()])
    logits_student = mlp(8, 1)
    softmax_student = keras.Sequential([keras.Input((8, 8, 1)), logits_student, L.Softmax()])
    a = distillation.Distiller(teacher, logits_student, temperature=4.0)
    b = distillation.Distiller(probabilities, softmax_student, temperature=4.0,
                               teacher_outputs="probabilities", student_outputs="probabilities")
    t, s = teacher(x[:16]), logits_student(x[:16])
    np.testing.assert_allclose(b.distillation_loss(tf.nn.softmax(t), tf.nn.softmax(s)).numpy(),
                               a.distillation_loss(t, s).numpy(), rtol=1e-3, atol=1e-5)


def test_config_round_trip(teacher):
    # An uncompiled copy: a compiled teacher's config also carries its compile settings.
    d = distillation.Distiller(keras.models.clone_model(teacher), mlp(8, 1, name="student"),
                               temperature=2.5, alpha=0.3,
                               student_outputs="logits")
    restored = assert_config_round_trip(d)
    assert (restored.temperature, restored.alpha) == (2.5, 0.3)
    assert [l.units for l in restored.student.layers[1:]] == [8, 10]


def test_keras_file_round_trip_and_resumed_training(teacher, digits, tmp_path):
    x, y = digits
    d = _distiller(teacher, temperature=2.0)
    d.fit(x, y, epochs=1, batch_size=64, verbose=0)
    path = str(tmp_path / "distiller.keras")
    d.save(path)
    loaded = keras.models.load_model(path)
    assert isinstance(loaded, distillation.Distiller) and loaded.temperature == 2.0
    assert max_abs_diff(loaded.predict(x[:32], verbose=0), d.predict(x[:32], verbose=0)) < 1e-6
    np.testing.assert_array_equal(loaded.teacher.get_weights()[0], teacher.get_weights()[0])
    loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)  # resumes with its optimizer


@pytest.mark.parametrize("kwargs,match", [
    (dict(temperature=0), r"temperature must be a finite number > 0, got 0"),
    (dict(temperature=-1.0), r"temperature must be a finite number > 0"),
    (dict(alpha=1.5), r"alpha must be in \[0, 1\], got 1.5"),
    (dict(alpha=-0.1), r"alpha must be in \[0, 1\]"),
    (dict(teacher_outputs="softmax"), r"teacher_outputs must be one of \['logits', 'probabilities'\]"),
])
def test_bad_arguments_are_explained(teacher, kwargs, match):
    with pytest.raises(ValueError, match=match):
        distillation.Distiller(teacher, mlp(8, 1), **kwargs)



def _ending_in(last, activation=None):
    """A teacher-shaped model whose output comes from `last`, one of several softmax forms."""
    inputs = keras.Input((8, 8, 1))
    hidden = L.Dense(16, activation="relu")(L.Flatten()(inputs))
    if last == "dense":
        return keras.Model(inputs, L.Dense(10, activation=activation)(hidden))
    logits = L.Dense(10)(hidden)
    if last == "activation":
        return keras.Model(inputs, L.Activation(activation)(logits))
    if last == "softmax_layer":
        return keras.Model(inputs, L.Softmax()(logits))
    if last == "tf.nn.softmax":
        return keras.Model(inputs, tf.nn.softmax(logits))
    if last == "nested":
        return keras.Sequential([inputs, keras.Model(inputs, L.Softmax()(logits))])
    if last == "quantized":
        return quantization.quantize(_ending_in("dense", "softmax"),
                                     representative_data=np.zeros((4, 8, 8, 1), "float32"))
    raise AssertionError(last)


@pytest.mark.parametrize("last,activation", [
    ("dense", "softmax"), ("activation", "softmax"), ("softmax_layer", None),
    ("tf.nn.softmax", None), ("nested", None), ("quantized", None),
])
def test_softmax_teacher_read_as_logits_is_refused(last, activation):
    teacher = _ending_in(last, activation)
    with pytest.raises(ValueError, match=r"teacher .* ends in a softmax.*teacher_outputs='logits' "
                                         r"\(the default\).*Pass teacher_outputs='probabilities'"):
        distillation.Distiller(teacher, mlp(8, 1))
    # Said so, the same teacher is accepted.
    distillation.Distiller(teacher, mlp(8, 1), teacher_outputs="probabilities")


def test_softmax_student_read_as_logits_is_refused(teacher):
    with pytest.raises(ValueError, match=r"student .* ends in a softmax.*'logits'.*Pass "
                                         r"student_outputs='probabilities'"):
        distillation.Distiller(teacher, mlp(8, 1, softmax=True))
    distillation.Distiller(teacher, mlp(8, 1, softmax=True), student_outputs="probabilities")


@pytest.mark.parametrize("last,activation", [("dense", None), ("activation", "linear")])
def test_logits_read_as_probabilities_are_refused(last, activation):
    with pytest.raises(ValueError, match=r"outputs raw logits, but teacher_outputs="
                                         r"'probabilities'.*Pass teacher_outputs='logits'"):
        distillation.Distiller(_ending_in(last, activation), mlp(8, 1),
                               teacher_outputs="probabilities")


def test_unknown_last_layers_are_taken_at_their_word():
    # A sigmoid or a Lambda may be either: the Distiller cannot tell, so it trusts the argument.
    inputs = keras.Input((8, 8, 1))
    logits = L.Dense(10)(L.Flatten()(inputs))
    for outputs in (L.Lambda(lambda z: z * 1.0)(logits), L.Activation("sigmoid")(logits)):
        for kind in ("logits", "probabilities"):
            distillation.Distiller(keras.Model(inputs, outputs), mlp(8, 1), teacher_outputs=kind)


def test_teacher_that_is_the_student_is_refused(teacher):
    with pytest.raises(ValueError, match="teacher and the student are the same model"):
        distillation.Distiller(teacher, teacher)


def test_mismatched_output_shapes_are_refused(teacher):
    student = keras.Sequential([keras.Input((8, 8, 1)), L.Flatten(), L.Dense(5)])
    with pytest.raises(ValueError, match=r"output shape \(None, 10\) and the student's \(None, 5\)"):
        distillation.Distiller(teacher, student)


def test_unbuilt_subclassed_teacher_is_refused():
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = L.Dense(10)

        def call(self, x):
            return self.dense(x)

    with pytest.raises(ValueError, match="no single known output shape .*not built"):
        distillation.Distiller(Net(), mlp(8, 1))


class _Net(keras.Model):
    def __init__(self, width, two_outputs=False):
        super().__init__()
        self.flat, self.hidden, self.out = L.Flatten(), L.Dense(width, "relu"), L.Dense(10)
        self.two_outputs = two_outputs

    def call(self, x):
        hidden = self.hidden(self.flat(x))
        return (self.out(hidden), hidden) if self.two_outputs else self.out(hidden)


def test_built_subclassed_teacher_and_student_distill(teacher, digits):
    x, y = digits
    keras.utils.set_random_seed(1)
    sub_teacher, student = _Net(64), _Net(8)
    sub_teacher(x[:1]), student(tf.constant(x[:1]))  # built eagerly: no graph of the call
    sub_teacher.set_weights(teacher.get_weights())
    d = distillation.Distiller(sub_teacher, student, temperature=2.0, alpha=0.5)
    d.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    d.fit(x, y, epochs=6, batch_size=64, verbose=0)
    assert np.mean(np.argmax(student.predict(x, verbose=0), axis=1) == y) > 0.85


def test_subclassed_teacher_with_two_outputs_is_refused(digits):
    x, _ = digits
    two = _Net(16, two_outputs=True)
    two(x[:1])
    with pytest.raises(ValueError, match="has no single known output shape"):
        distillation.Distiller(two, mlp(8, 1))
