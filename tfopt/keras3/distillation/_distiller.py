"""Distiller for Keras 3 models: keras.distillation.Distiller with tfopt's arguments and more."""

import keras
from keras import ops

from tfopt.core import distillation as _core
from tfopt.keras3.distillation import _hints
from tfopt.keras3.distillation import _validate

_FINAL = "final_output"  # keras.distillation's key for a model's output among its features
_LABEL_FREE = ("loss", "distillation_loss", "hint_loss")


@keras.saving.register_keras_serializable(package="tfopt")
class Distiller(keras.distillation.Distiller):
    """Trains `student` on a teacher's softened outputs plus the hard labels.

    The Keras 3 twin of `tfopt.distillation.Distiller`, with the same
    arguments, loss, metrics and checks, built on `keras.distillation`:
    `LogitsDistillation(temperature)` gives the soft term, `alpha` is Keras'
    `student_loss_weight`, and each hint is a `FeatureDistillation`. The loss
    is ``alpha * hard_loss(y, student) + (1 - alpha) * T**2 *
    KL(softmax(teacher / T) || softmax(student / T)) + hint_weight *
    hint_loss``. Only the student (and the hint projections) train; the
    teacher runs in inference mode and is frozen (``teacher.trainable =
    False``, as Keras' Distiller does). Without labels (``fit(x)``) the student
    learns from the soft targets alone.

    What it adds to `keras.distillation.Distiller`:
    - hints between layers of different widths, through a learned Dense
      projection on the channel axis (a 1x1 convolution for images), made only
      when the widths differ, trained with the student, saved with the
      Distiller and not part of `distiller.student`;
    - one student forward pass per step: with hints, Keras runs the student a
      second time for its features; here one multi-output view of the student
      gives the outputs and the hinted activations together;
    - label-free `fit(x)`, `teacher_outputs="probabilities"` for softmax
      teachers (a contradicting value is refused), and tfopt's checks of
      models, labels and losses before training starts;
    - pruned (`tfopt.keras3.pruning`) students train as they are: pass
      `UpdatePruningStep()` to `fit`.

    `fit` and `evaluate` report `loss` (what training minimizes),
    `student_loss` (the compiled hard-label loss of the student alone; not
    without labels), `distillation_loss` (the soft term), `hint_loss` (with
    hints) and the compiled metrics of the student.

    Args:
      teacher: the trained Keras 3 model to imitate (one output of at least
        two classes).
      student: the Keras 3 model to train, with its own weights: the
        teacher's input and output shapes.
      temperature: softening temperature T > 0. Defaults to 4.0.
      alpha: weight of the hard-label loss, in [0, 1]. Defaults to 0.1.
      teacher_outputs: "logits" or "probabilities": what the teacher outputs.
        Defaults to "logits".
      student_outputs: "logits" or "probabilities", the same for the
        student. Defaults to "logits".
      hints: optional list of (teacher layer name, student layer name) pairs
        of top-level layers of Sequential or Functional models whose
        activations agree in every axis but the last. Defaults to None.
      hint_weight: weight of the summed hint losses, >= 0. Defaults to 1.0.
      **kwargs: Keras model arguments such as `name`.

    Attributes:
      student: the student, a plain Keras 3 model ready for export.
      hint_projections: per hint, its projection layer, or None where the
        widths agree.

    Example:
      >>> distiller = Distiller(teacher, student, temperature=4.0, alpha=0.1,
      ...                       hints=[("conv2", "conv2")])
      >>> distiller.compile(optimizer="adam", metrics=["accuracy"])
      >>> distiller.fit(x, y, epochs=3)
      >>> small = distiller.student
    """

    def __init__(self, teacher, student, temperature=4.0, alpha=0.1, teacher_outputs="logits",
                 student_outputs="logits", hints=None, hint_weight=1.0, **kwargs):
        _core.keyword_arguments(kwargs, ("name", "trainable", "dtype", "autocast"))
        if isinstance(teacher, dict):
            teacher = keras.saving.deserialize_keras_object(teacher)
        if isinstance(student, dict):
            student = keras.saving.deserialize_keras_object(student)
        _validate.models(teacher, student)
        temperature, alpha = _core.temperature(temperature), _core.alpha(alpha)
        kinds = (_core.kind(teacher_outputs, "teacher_outputs"),
                 _core.kind(student_outputs, "student_outputs"))
        _validate.kind_matches_model(teacher, kinds[0], "teacher_outputs", "teacher")
        _validate.kind_matches_model(student, kinds[1], "student_outputs", "student")
        pairs = _core.hints(hints)
        hint_weight = _core.hint_weight(hint_weight, pairs)
        hint_losses = _hints.hints(teacher, student, pairs)
        # keras' default loss name "kl_divergence" resolves to the function, which its
        # LogitsDistillation applies to the scaled logits without a softmax: pass the class.
        logits = keras.distillation.LogitsDistillation(temperature, keras.losses.KLDivergence())
        super().__init__(teacher, student, [logits] + hint_losses,
                         distillation_loss_weights=[1.0] + [hint_weight] * len(pairs),
                         student_loss_weight=alpha, **kwargs)
        self.temperature, self.alpha = temperature, alpha
        self.teacher_outputs, self.student_outputs = kinds
        self.hints, self.hint_weight = pairs, hint_weight
        # One per hint (None where the widths agree), as in tf-keras. Tracked here, so they
        # train with the student and are saved with the Distiller.
        self.hint_projections = [h.projection for h in hint_losses]
        self.hint_loss_tracker = keras.metrics.Mean(name="hint_loss") if pairs else None
        self._class_index_labels = False
        self._with_features = False
        self.built = True  # teacher and student are built: every weight exists already

    def _create_multi_feature_extractors(self):
        # Keras' extractors share the teacher's and student's layers; kept in a plain
        # object, they are not tracked: not saved twice, nor listed among the
        # Distiller's layers (where the pruning callbacks would find the student's
        # pruned layers twice).
        names = [list(dict.fromkeys(getattr(h, attribute) for h in self.distillation_losses[1:]))
                 for attribute in ("teacher_layer_name", "student_layer_name")]
        self._extractors = _Extractors(_hints.extractor(self.teacher, names[0], "teacher"),
                                       _hints.extractor(self.student, names[1], "student"))

    @property
    def _teacher_feature_extractor(self):
        return self._extractors.teacher

    @property
    def _student_feature_extractor(self):
        return self._extractors.student

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
        resolved, self._class_index_labels = _validate.hard_loss(loss, self.student_outputs)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics, **kwargs)
        if not isinstance(resolved, keras.losses.Loss):
            # A loss function (e.g. from a name) takes no sample weights: wrap it in a Loss.
            self._student_loss = _SampleWeighted(resolved)

    def get_compile_config(self):
        # Keras' Distiller compiles its Model without the loss: keep the student's.
        config = super().get_compile_config()
        if config is not None:
            config["loss"] = keras.saving.serialize_keras_object(
                self._student_loss_for_serialization)
        return config

    def compile_from_config(self, config):
        # Keras skips a custom compile() when loading unless this is defined.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**{key: config[key] for key in ("optimizer", "loss", "metrics")
                        if key in config})
        self.optimizer.build(self.trainable_variables)  # so its saved state loads

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
                       _validate.output_shape(self.student, "student")[-1],
                       self._class_index_labels, where)

    # One student pass per step: while Keras traces a training or test step, `call`
    # returns the student's outputs and hinted activations together (Keras' own
    # Distiller calls the student, then its feature extractor, a second time).
    def train_step(self, *args, **kwargs):
        with _FeaturesInCall(self):
            return super().train_step(*args, **kwargs)

    def test_step(self, *args, **kwargs):
        with _FeaturesInCall(self):
            return super().test_step(*args, **kwargs)

    def call(self, inputs, training=None):
        if not self._with_features:
            return self.student(inputs, training=training)
        if self._student_feature_extractor is None:
            return {_FINAL: self.student(inputs, training=training)}
        return self._student_feature_extractor(inputs, training=training)

    def _extract_all_student_features(self, x, y_pred):
        return y_pred  # the features come with the outputs, from `call`

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """(alpha * student loss + (1 - alpha) * distillation loss + hint_weight * hints)."""
        if y_pred is None:
            with _FeaturesInCall(self):
                y_pred = self(x, training=training)
        teacher = self._extract_all_teacher_features(x)
        student = self._extract_all_student_features(x, y_pred)
        logits, *hints = self.distillation_losses
        # Weighted by batch size, as Keras weighs `loss`: the epoch means stay comparable.
        batch = ops.shape(keras.tree.flatten(x)[0])[0]
        soft = logits.compute_loss(self._as_logits(teacher[_FINAL], self.teacher_outputs),
                                   self._as_logits(student[_FINAL], self.student_outputs))
        if y is None:  # no labels: the soft targets alone
            loss = soft
        else:
            hard = self._student_loss(y, student[_FINAL], sample_weight)
            if self.student.losses:
                hard = hard + ops.sum(ops.stack(self.student.losses))
            self.student_loss_tracker.update_state(hard, sample_weight=batch)
            loss = self.alpha * hard + (1.0 - self.alpha) * soft
        self.distillation_loss_tracker.update_state(soft, sample_weight=batch)
        if hints:
            hint = ops.sum(ops.stack([
                h.compute_loss(teacher[h.teacher_layer_name], student[h.student_layer_name])
                for h in hints]))
            self.hint_loss_tracker.update_state(hint, sample_weight=batch)
            loss = loss + self.hint_weight * hint
        self.total_loss_tracker.update_state(loss, sample_weight=batch)
        return loss

    def _as_logits(self, outputs, kind):
        """Probabilities as logits up to a constant (log p), which softmax(. / T) ignores."""
        if kind == "probabilities":
            return ops.log(ops.clip(outputs, 1e-7, 1.0))
        return outputs

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        outputs = y_pred[_FINAL] if isinstance(y_pred, dict) else y_pred
        if y is not None:
            return super().compute_metrics(x, y, outputs, sample_weight)
        # Without labels only the distillation terms mean anything.
        return {name: value for name, value in self.get_metrics_result().items()
                if name in _LABEL_FREE}

    @property
    def metrics(self):
        # Keras' "total_loss" is the "loss" every Model reports: listed once.
        return [m for m in super().metrics if m is not self.total_loss_tracker]

    def reset_metrics(self):
        super().reset_metrics()
        if self.hint_loss_tracker is not None:
            self.hint_loss_tracker.reset_state()

    def get_config(self):
        config = keras.Model.get_config(self)
        config.update({
            "teacher": keras.saving.serialize_keras_object(self.teacher),
            "student": keras.saving.serialize_keras_object(self.student),
            "temperature": self.temperature,
            "alpha": self.alpha,
            "teacher_outputs": self.teacher_outputs,
            "student_outputs": self.student_outputs,
            "hints": [list(pair) for pair in self.hints] or None,
            "hint_weight": self.hint_weight,
        })
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class _SampleWeighted:
    """A per-example loss function as a Loss: the mean of ``weight * loss`` over the batch."""

    def __init__(self, function):
        self._function = function

    def __call__(self, y_true, y_pred, sample_weight=None):
        values = self._function(y_true, y_pred)
        if sample_weight is not None:
            values = values * ops.reshape(ops.cast(sample_weight, values.dtype), ops.shape(values))
        return ops.mean(values)


class _Extractors:
    """Holds the teacher's and student's feature extractors; a plain object, so Keras ignores it."""

    def __init__(self, teacher, student):
        self.teacher, self.student = teacher, student


class _FeaturesInCall:
    """Makes the Distiller's `call` return the student's features while a step is traced."""

    def __init__(self, distiller):
        self._distiller = distiller

    def __enter__(self):
        self._before = self._distiller._with_features
        self._distiller._with_features = True

    def __exit__(self, *exc):
        self._distiller._with_features = self._before
