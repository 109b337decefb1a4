"""Feature (hint) distillation: the MSE term, learned projections, saving, errors."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tfopt import distillation
from tests.conftest import assert_config_round_trip, max_abs_diff
from tests.distillation.conftest import mlp

L = keras.layers


def _cnn(filters, seed, name):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(filters, 3, activation="relu", name="conv"),
        L.MaxPool2D(name="pool"),
        L.Flatten(name="flat"),
        L.Dense(10, name="logits"),
    ], name=name)


def _hinted(teacher, student=None, **kwargs):
    d = distillation.Distiller(teacher, student or mlp(8, 1, name="student"),
                               hints=[("hidden", "hidden")], **kwargs)
    d.compile(keras.optimizers.Adam(1e-2), metrics=["accuracy"])
    return d


def _hidden(model, x):
    return keras.Model(model.inputs, model.get_layer("hidden").output)(x).numpy()


def test_hint_loss_is_the_mse_after_a_learned_projection(teacher, digits):
    x, y = digits
    d = _hinted(teacher, hint_weight=0.5, alpha=0.2)
    (projection,) = d.hint_projections
    assert projection.kernel.shape == (8, 64)  # student width -> teacher width
    kernel, bias = projection.get_weights()
    expected = np.mean((_hidden(d.student, x[:64]) @ kernel + bias - _hidden(teacher, x[:64])) ** 2)
    logs = d.evaluate(x[:64], y[:64], batch_size=64, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["hint_loss"], expected, rtol=1e-5)
    assert logs["loss"] == pytest.approx(0.2 * logs["student_loss"] + 0.8 * logs[
        "distillation_loss"] + 0.5 * expected, rel=1e-5)  # the training loss, in evaluation too
    free = d.evaluate(x[:64], batch_size=64, verbose=0, return_dict=True)
    np.testing.assert_allclose(free["loss"], free["distillation_loss"] + 0.5 * expected,
                               rtol=1e-5)


def test_zero_hint_weight_trains_exactly_like_no_hints(teacher, digits):
    x, y = digits
    plain = distillation.Distiller(teacher, mlp(8, 1, name="student"))
    plain.compile(keras.optimizers.Adam(1e-2))
    hinted = _hinted(teacher, hint_weight=0.0)
    for d in (plain, hinted):
        d.fit(x[:256], y[:256], batch_size=64, epochs=1, shuffle=False, verbose=0)
    for a, b in zip(plain.student.get_weights(), hinted.student.get_weights()):
        np.testing.assert_array_equal(a, b)
    weighted = _hinted(teacher, hint_weight=1.0)
    weighted.fit(x[:256], y[:256], batch_size=64, epochs=1, shuffle=False, verbose=0)
    assert max_abs_diff(weighted.student.get_weights()[0], plain.student.get_weights()[0]) > 1e-4


def test_training_matches_the_features_and_keeps_the_projection_out_of_the_student(
        teacher, digits):
    x, y = digits
    d = _hinted(teacher, hint_weight=1.0)
    before_teacher = [w.copy() for w in teacher.get_weights()]
    before_projection = d.hint_projections[0].get_weights()[0].copy()
    first = d.evaluate(x, y, verbose=0, return_dict=True)["hint_loss"]
    history = d.fit(x, y, epochs=4, batch_size=64, verbose=0).history
    assert "hint_loss" in history
    assert d.evaluate(x, y, verbose=0, return_dict=True)["hint_loss"] < 0.7 * first
    assert max_abs_diff(d.hint_projections[0].get_weights()[0], before_projection) > 1e-3
    for a, b in zip(before_teacher, teacher.get_weights()):
        np.testing.assert_array_equal(a, b)
    assert len(d.student.weights) == 4  # two Dense layers, no projection
    assert np.mean(np.argmax(d.student.predict(x, verbose=0), axis=1) == y) > 0.8


def test_convolutional_hint_with_make_student(digits):
    x, y = digits
    teacher = _cnn(16, 0, "teacher")
    student = distillation.make_student(teacher, width=0.25)
    d = distillation.Distiller(teacher, student, hints=[("conv", "conv")])
    (projection,) = d.hint_projections
    assert projection.kernel.shape == (4, 16)  # a 1x1 convolution over the channels
    d.compile(keras.optimizers.Adam(1e-2))
    d.fit(x[:512], y[:512], epochs=1, batch_size=64, verbose=0)
    assert [l.name for l in d.student.layers] == ["conv", "pool", "flat", "logits"]


def test_equal_widths_need_no_projection(teacher):
    d = distillation.Distiller(teacher, mlp(64, 1, name="student"), hints=[("hidden", "hidden")])
    assert d.hint_projections == [None]


def test_config_round_trip_with_hints(teacher):
    d = distillation.Distiller(keras.models.clone_model(teacher), mlp(8, 1, name="student"),
                               hints=[("hidden", "hidden")], hint_weight=0.25)
    restored = assert_config_round_trip(d)
    assert restored.hints == (("hidden", "hidden"),) and restored.hint_weight == 0.25
    assert restored.hint_projections[0].kernel.shape == (8, 64)


def test_keras_file_keeps_the_projection_and_resumes(teacher, digits, tmp_path):
    x, y = digits
    d = _hinted(teacher)
    d.fit(x, y, epochs=1, batch_size=64, verbose=0)
    path = str(tmp_path / "hinted.keras")
    d.save(path)
    loaded = keras.models.load_model(path)
    np.testing.assert_array_equal(loaded.hint_projections[0].get_weights()[0],
                                  d.hint_projections[0].get_weights()[0])
    assert loaded.evaluate(x, y, verbose=0, return_dict=True)["hint_loss"] == pytest.approx(
        d.evaluate(x, y, verbose=0, return_dict=True)["hint_loss"], rel=1e-6)
    loaded.fit(x, y, epochs=1, batch_size=64, verbose=0)
    student_file = str(tmp_path / "student.keras")
    loaded.student.save(student_file)  # the exported student carries no projection
    assert len(keras.models.load_model(student_file).weights) == 4


def test_hints_under_mirrored_strategy(teacher, digits, mirrored_strategy):
    x, y = digits
    with mirrored_strategy.scope():
        d = _hinted(keras.models.clone_model(teacher))
        d.teacher.set_weights(teacher.get_weights())
    history = d.fit(x, y, epochs=2, batch_size=64, verbose=0).history
    assert history["hint_loss"][-1] < history["hint_loss"][0]


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.flat, self.out = L.Flatten(), L.Dense(10)

    def call(self, x):
        return self.out(self.flat(x))


@pytest.mark.parametrize("hints,match", [
    ("hidden", r"hints must be a list of \(teacher layer name, student layer name\) pairs"),
    ([("hidden",)], r"Each hint must be a pair of layer names .*\('hidden',\)"),
    ([("hidden", "hidden"), ("hidden", "hidden")], "names the same pair twice"),
    ([("nope", "hidden")], r"teacher 'teacher' has no layer 'nope'; its layers are \['flat'"),
    ([("hidden", "nope")], r"student 'student' has no layer 'nope'"),
])
def test_bad_hints_are_explained(teacher, hints, match):
    with pytest.raises(ValueError, match=match):
        distillation.Distiller(teacher, mlp(8, 1, name="student"), hints=hints)


def test_activations_of_different_rank_are_refused(teacher):
    with pytest.raises(ValueError, match=r"teacher's activation has shape \(None, 64\) and the "
                                         r"student's \(None, 6, 6, 4\)\. Only the last"):
        distillation.Distiller(teacher, _cnn(4, 1, "student"), hints=[("flat", "conv")])


def test_mismatched_spatial_shapes_are_refused(digits):
    teacher = _cnn(16, 0, "teacher")
    student = _cnn(4, 1, "student")
    with pytest.raises(ValueError, match=r"\(None, 6, 6, 16\) and the student's \(None, 3, 3, 4\)"):
        distillation.Distiller(teacher, student, hints=[("conv", "pool")])


def test_subclassed_student_cannot_take_hints(teacher):
    student = _Subclassed()
    student(tf.zeros((1, 8, 8, 1)))
    with pytest.raises(ValueError, match="needs a Sequential or Functional student"):
        distillation.Distiller(teacher, student, hints=[("hidden", "dense")])


def test_negative_hint_weight_is_refused(teacher):
    with pytest.raises(ValueError, match=r"hint_weight must be a number >= 0, got -1"):
        distillation.Distiller(teacher, mlp(8, 1, name="student"), hints=[("hidden", "hidden")],
                               hint_weight=-1)
