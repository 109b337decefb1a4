"""Distiller: a Keras model that trains a student to imitate a teacher inside `fit`."""

import numpy as np
import tensorflow as tf
import tf_keras as keras

from tfopt.core import distillation as _core
from tfopt.distillation import _hints
from tfopt.distillation import _outputs
from tfopt.distillation import _validate


@keras.utils.register_keras_serializable(package="tfopt")
class Distiller(keras.Model):
    """Trains `student` on a teacher's softened outputs plus the hard labels.

    The loss is ``alpha * hard_loss(y, student) + (1 - alpha) * T**2 *
    KL(softmax(teacher / T) || softmax(student / T))`` (Hinton et al., 2015);
    the ``T**2`` keeps the soft term's gradients on the same scale for any T.
    Only the student trains: the teacher runs in inference mode and its
    weights never change. Without labels (``fit(x)``) the student learns from
    the soft targets alone. `evaluate`, `predict` and calling the Distiller use
    the student; `distiller.student` is a plain Keras model ready for export.

    `fit` and `evaluate` report the same quantities: `loss` is the combined
    loss above (what training minimizes, so `val_loss` is that loss on the
    validation data and `monitor="val_loss"` compares like with like),
    `student_loss` the compiled hard-label loss of the student alone (compare
    it with a model trained without a teacher), `distillation_loss` the soft
    term, `hint_loss` with hints, and the compiled metrics of the student
    (`accuracy`, `val_accuracy`). Without labels there is no `student_loss`.

    With `hints`, the student also learns the teacher's intermediate
    activations (FitNets, Romero et al., 2015): for each (teacher layer,
    student layer) pair the loss gains ``hint_weight * MSE(teacher activation,
    projection(student activation))``. The projection is a learned Dense layer
    on the channel axis (a 1x1 convolution for images), made only when the
    widths differ; it trains with the student, is saved with the Distiller and
    is not part of `distiller.student`.

    Args:
      teacher: the trained model to imitate (one output of at least two
        classes).
      student: the model to train, with its own weights: the teacher's input
        and output shapes.
      temperature: softening temperature T > 0. Defaults to 4.0.
      alpha: weight of the hard-label loss, in [0, 1]. Defaults to 0.1.
      teacher_outputs: "logits" or "probabilities": what the teacher outputs.
        A teacher whose last layer is a softmax (keras.applications models
        are) needs "probabilities"; a contradicting value is refused.
        Defaults to "logits".
      student_outputs: "logits" or "probabilities", the same for the
        student. Defaults to "logits".
      hints: optional list of (teacher layer name, student layer name) pairs
        of top-level layers of Sequential or Functional models whose
        activations agree in every axis but the last. Defaults to None.
      hint_weight: weight of the summed hint losses, >= 0. Defaults to 1.0.
      **kwargs: Keras model arguments such as `name`.

    Example:
      >>> distiller = Distiller(teacher, student, temperature=4.0, alpha=0.1)
      >>> distiller.compile(optimizer="adam", metrics=["accuracy"])
      >>> distiller.fit(x, y, epochs=3)
      >>> small = distiller.student
      >>> hinted = Distiller(teacher, student, hints=[("conv2d_1", "conv2d_1")])
    """

    def __init__(self, teacher, student, temperature=4.0, alpha=0.1, teacher_outputs="logits",
                 student_outputs="logits", hints=None, hint_weight=1.0, **kwargs):
        _validate.keyword_arguments(kwargs)
        super().__init__(**kwargs)
        if isinstance(teacher, dict):
            teacher = keras.saving.deserialize_keras_object(teacher)
        if isinstance(student, dict):
            student = keras.saving.deserialize_keras_object(student)
        _validate.models(teacher, student)
        self.teacher, self.student = teacher, student
        self.temperature = _core.temperature(temperature)
        self.alpha = _core.alpha(alpha)
        self.teacher_outputs = _outputs.validate_kind(teacher_outputs, "teacher_outputs")
        self.student_outputs = _outputs.validate_kind(student_outputs, "student_outputs")
        _outputs.validate_kind_matches_model(teacher, self.teacher_outputs, "teacher_outputs",
                                             "teacher")
        _outputs.validate_kind_matches_model(student, self.student_outputs, "student_outputs",
                                             "student")
        self.hints = _hints.validate_hints(hints)
        self.hint_weight = _hints.validate_hint_weight(hint_weight, self.hints)
        self._build_hints()
        names = ("loss", "student_loss", "distillation_loss") + (
            ("hint_loss",) if self.hints else ())
        self._trackers = {name: keras.metrics.Mean(name=name) for name in names}
        self.built = True  # teacher and student are built: every weight exists already

    def _build_hints(self):
        # The tap models share their layers with teacher and student; _Taps keeps them out
        # of Keras' tracking so they are neither saved twice nor exported.
        self._taps = _Taps(self.teacher, self.student)
        self.hint_projections = []
        if not self.hints:
            return
        teacher_taps = _hints.taps(self.teacher, [t for t, _ in self.hints], "teacher")
        student_taps = _hints.taps(self.student, [s for _, s in self.hints], "student")
        self._taps = _Taps(teacher_taps, student_taps)
        self.hint_projections = [
            _hints.projection(t.shape, s.shape, pair, f"hint_projection_{i}")
            for i, (t, s, pair) in enumerate(zip(teacher_taps.outputs[1:],
                                                  student_taps.outputs[1:], self.hints))]

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Like `Model.compile`; `loss` is the hard-label loss of the student.

        It is reported as `student_loss`. Defaults to sparse categorical cross
        entropy on the student's logits (or probabilities, per
        `student_outputs`).
        """
        _validate.optimizer(optimizer)
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=self.student_outputs == "logits")
        loss, self._class_index_labels = _validate.hard_loss(loss, self.student_outputs)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

    def fit(self, x=None, y=None, *args, **kwargs):
        """Like `Model.fit`; NumPy inputs and labels are checked before training starts."""
        self._validate_data(x, y, "fit")
        validation = kwargs.get("validation_data")
        if isinstance(validation, (tuple, list)) and len(validation) >= 2:
            self._validate_data(validation[0], validation[1], "fit(validation_data=...)")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        """Like `Model.evaluate`, with the same checks as `fit`."""
        self._validate_data(x, y, "evaluate")
        return super().evaluate(x, y, *args, **kwargs)

    def _validate_data(self, x, y, where):
        _validate.data(x, y, _validate.input_shapes(self.student),
                       _outputs.output_shape(self.student, "student")[-1],
                       getattr(self, "_class_index_labels", False), where)

    def compile_from_config(self, config):
        # Keras skips a custom compile() when loading unless this is defined.
        self.compile(**keras.saving.deserialize_keras_object(config))

    @property
    def metrics(self):
        # The Distiller's own loss trackers replace compile()'s single loss mean.
        compiled = self.compiled_metrics.metrics if getattr(
            self, "compiled_metrics", None) is not None else []
        return list(self._trackers.values()) + compiled

    def call(self, inputs, training=None):
        return self.student(inputs, training=training)

    def distillation_loss(self, teacher_outputs, student_outputs):
        """Per-example ``T**2 * KL(teacher || student)`` at the temperature."""
        shapes = [tf.TensorShape(o.shape if hasattr(o, "shape") else np.shape(o))
                  for o in (teacher_outputs, student_outputs)]
        if not shapes[0].is_compatible_with(shapes[1]):
            raise ValueError(f"distillation_loss needs teacher and student outputs of the same "
                             f"shape, got {shapes[0]} and {shapes[1]}.")
        t = _outputs.log_probabilities(teacher_outputs, self.teacher_outputs, self.temperature)
        s = _outputs.log_probabilities(student_outputs, self.student_outputs, self.temperature)
        kl = tf.reduce_sum(tf.exp(t) * (t - s), axis=-1)
        return self.temperature ** 2 * kl

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher = tf.nest.map_structure(
            tf.stop_gradient, self._run(self._taps.teacher, x, training=False))
        with tf.GradientTape() as tape:
            student = self._run(self._taps.student, x, training=True)
            losses = self._loss_terms(y, sample_weight, teacher, student)
            # fit sums gradients over replicas: scale this replica's share.
            scaled = losses[0] / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.student.trainable_variables + [
            v for layer in self.hint_projections if layer is not None
            for v in layer.trainable_variables]
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self._report(*losses, y, student[0], sample_weight)

    def test_step(self, data):
        # The same loss as in training, so `val_loss` is `loss` on the validation data;
        # the student's own label loss (comparable with a model trained without a
        # teacher) is `student_loss` in both.
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher = self._run(self._taps.teacher, x, training=False)
        student = self._run(self._taps.student, x, training=False)
        losses = self._loss_terms(y, sample_weight, teacher, student)
        return self._report(*losses, y, student[0], sample_weight)

    def _loss_terms(self, y, sample_weight, teacher, student):
        """(loss, student_loss, distillation_loss, hint_loss or None) of one batch."""
        (teacher_outputs, teacher_features), (student_outputs, student_features) = teacher, student
        soft = tf.reduce_mean(self.distillation_loss(teacher_outputs, student_outputs))
        hint = self._hint_loss(teacher_features, student_features)
        if y is None:  # no labels: the soft targets alone
            hard, loss = tf.constant(0.0), soft
        else:
            hard = self._hard_loss(y, student_outputs, sample_weight)
            loss = self.alpha * hard + (1.0 - self.alpha) * soft
        return self._plus_hint(loss, hint), hard, soft, hint

    def _run(self, model, x, training):
        """(outputs, [hinted activations]) of the teacher's or student's tap model."""
        outputs = model(x, training=training)
        if not self.hints:
            return outputs, []
        return outputs[0], list(outputs[1:])

    def _hint_loss(self, teacher_features, student_features):
        if not self.hints:
            return None
        return _hints.hint_loss(teacher_features, student_features, self.hint_projections)

    def _plus_hint(self, loss, hint):
        return loss if hint is None else loss + self.hint_weight * hint

    def _hard_loss(self, y, student_outputs, sample_weight):
        """The compiled loss of this replica's batch, undoing Keras' 1/replicas scaling."""
        if self._class_index_labels and y.shape.rank is not None:  # e.g. from a tf.data pipeline
            _validate.labels(y.shape, student_outputs.shape[-1], "fit/evaluate")
        scaled = self.compiled_loss(y, student_outputs, sample_weight,
                                    regularization_losses=self.student.losses)
        return scaled * tf.distribute.get_strategy().num_replicas_in_sync

    def _report(self, loss, hard, soft, hint, y, student_outputs, sample_weight):
        self._trackers["loss"].update_state(loss)
        self._trackers["distillation_loss"].update_state(soft)
        if hint is not None:
            self._trackers["hint_loss"].update_state(hint)
        if y is None:  # without labels only the distillation terms mean anything
            return {name: tracker.result() for name, tracker in self._trackers.items()
                    if name != "student_loss"}
        self._trackers["student_loss"].update_state(hard)
        self.compiled_metrics.update_state(y, student_outputs, sample_weight)
        return {m.name: m.result() for m in self.metrics}

    def get_config(self):
        return {
            **super().get_config(),
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "teacher_outputs": self.teacher_outputs,
            "student_outputs": self.student_outputs,
            "hints": [list(pair) for pair in self.hints] or None,
            "hint_weight": self.hint_weight,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


class _Taps:
    """Holds the teacher's and student's tap models; a plain object, so Keras ignores it."""

    def __init__(self, teacher, student):
        self.teacher, self.student = teacher, student
