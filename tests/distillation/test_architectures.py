"""make_student(width=0.5) and a Distiller on every architecture of issue 9.

The teachers are benchmarks/architectures.py's models (softmax outputs) plus a
Bidirectional GRU text classifier. Each teacher and its student are built once
per module; the Distiller trains one eager step on four examples (tracing the
training graph of the larger applications takes minutes on a small machine).
"""

import numpy as np
import pytest
import tf_keras as keras

from benchmarks import architectures
from tfopt import distillation

# Building teacher and student and one step take 15-60 s each on 2 shared CPUs.
_SLOW = ("MobileNetV2", "EfficientNetB0", "EfficientNetV2B0", "ResNet50", "ResNet50V2",
         "DenseNet121", "NASNetMobile", "Xception", "ConvNeXtTiny")
_NAMES = architectures.NAMES + ("BidirectionalGRU",)


def _bidirectional_gru():
    layers = keras.layers
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((architectures.SEQUENCE_LENGTH,), dtype="int32"),
        layers.Embedding(architectures.VOCABULARY, 16),
        layers.Bidirectional(layers.GRU(16)),
        layers.Dense(architectures.NUM_CLASSES, activation="softmax"),
    ], name="bidirectional_gru")


@pytest.fixture(scope="module", params=[
    pytest.param(name, marks=pytest.mark.slow) if name in _SLOW else name for name in _NAMES])
def teacher_and_student(request):
    name = request.param
    if name == "BidirectionalGRU":
        teacher = _bidirectional_gru()
        data = architectures.example_batch("TextLSTM", n=4)
    else:
        teacher = architectures.build(name)
        data = architectures.example_batch(name, n=4)
    return name, teacher, distillation.make_student(teacher, width=0.5), data


def test_student_is_smaller_and_predicts_the_same_classes(teacher_and_student,
                                                          record_property):
    name, teacher, student, (x, _) = teacher_and_student
    ratio = student.count_params() / teacher.count_params()
    record_property("parameters", f"{teacher.count_params()} -> {student.count_params()} "
                                  f"({ratio:.3f})")
    assert ratio < 0.5, name
    assert student.output_shape == teacher.output_shape
    assert [l.name for l in student.layers] == [l.name for l in teacher.layers]
    probabilities = student(x, training=False).numpy()
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-5)


def test_distiller_trains_a_step(teacher_and_student):
    _, teacher, student, (x, y) = teacher_and_student
    before = [w.copy() for w in student.get_weights()]
    d = distillation.Distiller(teacher, student, teacher_outputs=architectures.OUTPUTS,
                               student_outputs=architectures.OUTPUTS)
    d.compile(keras.optimizers.Adam(1e-3), run_eagerly=True)
    history = d.fit(x, y, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0]) and np.isfinite(history["distillation_loss"][0])
    assert any(not np.array_equal(a, b) for a, b in zip(before, student.get_weights()))
