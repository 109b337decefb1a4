"""Distiller: a Keras model that trains a student to imitate a teacher inside `fit`."""

import tensorflow as tf
import tf_keras as keras

from tfopt import _models

_OUTPUTS = ("logits", "probabilities")


def _validate_outputs(value, name):
    if value not in _OUTPUTS:
        raise ValueError(f"{name} must be one of {list(_OUTPUTS)}, got {value!r}: say whether "
                         "the model's last layer gives raw logits or softmax probabilities.")
    return value


def _output_shape(model, role):
    shape = getattr(model, "output_shape", None) if model.built else None
    if shape is None or isinstance(shape, list):
        raise ValueError(
            f"The {role} {model.name!r} ({type(model).__name__}) has no single known output "
            f"shape{'' if model.built else ' (it is not built)'}. Give the Distiller a "
            "Sequential or Functional model with one output, or call a subclassed model once "
            "on a batch so its output shape is known."
        )
    return tuple(shape)


def _log_probabilities(outputs, kind, temperature):
    """log softmax(z / T) from logits, or from probabilities via log p = z + const."""
    if kind == "probabilities":
        outputs = tf.math.log(tf.clip_by_value(outputs, 1e-7, 1.0))
    return tf.nn.log_softmax(outputs / temperature, axis=-1)


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

    Args:
      teacher: the trained model to imitate (one output).
      student: the model to train; its output must have the teacher's shape.
      temperature: softening temperature T > 0. Defaults to 4.0.
      alpha: weight of the hard-label loss, in [0, 1]. Defaults to 0.1.
      teacher_outputs: "logits" or "probabilities". Defaults to "logits".
      student_outputs: "logits" or "probabilities". Defaults to "logits".
      **kwargs: Keras model arguments such as `name`.

    Example:
      >>> distiller = Distiller(teacher, student, temperature=4.0, alpha=0.1)
      >>> distiller.compile(optimizer="adam", metrics=["accuracy"])
      >>> distiller.fit(x, y, epochs=3)
      >>> small = distiller.student
    """

    def __init__(self, teacher, student, temperature=4.0, alpha=0.1, teacher_outputs="logits",
                 student_outputs="logits", **kwargs):
        super().__init__(**kwargs)
        if isinstance(teacher, dict):
            teacher = keras.saving.deserialize_keras_object(teacher)
        if isinstance(student, dict):
            student = keras.saving.deserialize_keras_object(student)
        self._validate_models(teacher, student)
        self.teacher, self.student = teacher, student
        self.temperature = self._validate_temperature(temperature)
        self.alpha = self._validate_alpha(alpha)
        self.teacher_outputs = _validate_outputs(teacher_outputs, "teacher_outputs")
        self.student_outputs = _validate_outputs(student_outputs, "student_outputs")
        self._trackers = {name: keras.metrics.Mean(name=name)
                          for name in ("loss", "student_loss", "distillation_loss")}
        self.built = True  # teacher and student are built: every weight exists already

    @staticmethod
    def _validate_models(teacher, student):
        _models.validate_tf_keras_model(teacher, "Distiller teacher")
        _models.validate_tf_keras_model(student, "Distiller student")
        if teacher is student:
            raise ValueError("The teacher and the student are the same model; distillation "
                             "trains a separate (usually smaller) student. Build a new one, "
                             "e.g. with keras.models.clone_model.")
        teacher_shape = _output_shape(teacher, "teacher")
        student_shape = _output_shape(student, "student")
        if teacher_shape[1:] != student_shape[1:]:
            raise ValueError(
                f"The teacher's output shape {teacher_shape} and the student's "
                f"{student_shape} differ; the student must predict the same classes. "
                "Give its last layer as many units as the teacher's."
            )

    @staticmethod
    def _validate_temperature(temperature):
        if isinstance(temperature, bool) or not isinstance(temperature, (int, float)) \
                or not temperature > 0:
            raise ValueError(f"temperature must be a number > 0, got {temperature!r}; "
                             "1 leaves the outputs as they are, 2-8 is typical.")
        return float(temperature)

    @staticmethod
    def _validate_alpha(alpha):
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) \
                or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be in [0, 1], got {alpha!r}: it weighs the hard-label "
                             "loss against the distillation loss (1 - alpha).")
        return float(alpha)

    def compile(self, optimizer="rmsprop", loss=None, metrics=None, **kwargs):
        """Like `Model.compile`; `loss` is the hard-label loss of the student.

        Defaults to sparse categorical cross entropy on the student's logits (or
        probabilities, per `student_outputs`).
        """
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=self.student_outputs == "logits")
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)

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
        t = _log_probabilities(teacher_outputs, self.teacher_outputs, self.temperature)
        s = _log_probabilities(student_outputs, self.student_outputs, self.temperature)
        kl = tf.reduce_sum(tf.exp(t) * (t - s), axis=-1)
        return self.temperature ** 2 * kl

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        teacher_outputs = tf.stop_gradient(self.teacher(x, training=False))
        with tf.GradientTape() as tape:
            student_outputs = self.student(x, training=True)
            soft = tf.reduce_mean(self.distillation_loss(teacher_outputs, student_outputs))
            if y is None:
                hard, loss = tf.constant(0.0), soft
            else:
                hard = self._hard_loss(y, student_outputs, sample_weight)
                loss = self.alpha * hard + (1.0 - self.alpha) * soft
            # fit sums gradients over replicas: scale this replica's share.
            scaled = loss / tf.distribute.get_strategy().num_replicas_in_sync
        variables = self.student.trainable_variables
        self.optimizer.apply_gradients(zip(tape.gradient(scaled, variables), variables))
        return self._report(loss, hard, soft, y, student_outputs, sample_weight)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        student_outputs = self.student(x, training=False)
        soft = tf.reduce_mean(self.distillation_loss(self.teacher(x, training=False),
                                                     student_outputs))
        if y is None:
            hard, loss = tf.constant(0.0), soft
        else:
            hard = loss = self._hard_loss(y, student_outputs, sample_weight)
        return self._report(loss, hard, soft, y, student_outputs, sample_weight)

    def _hard_loss(self, y, student_outputs, sample_weight):
        """The compiled loss of this replica's batch, undoing Keras' 1/replicas scaling."""
        scaled = self.compiled_loss(y, student_outputs, sample_weight,
                                    regularization_losses=self.student.losses)
        return scaled * tf.distribute.get_strategy().num_replicas_in_sync

    def _report(self, loss, hard, soft, y, student_outputs, sample_weight):
        self._trackers["loss"].update_state(loss)
        self._trackers["distillation_loss"].update_state(soft)
        if y is None:  # without labels only the distillation terms mean anything
            return {name: self._trackers[name].result() for name in ("loss", "distillation_loss")}
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
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)
