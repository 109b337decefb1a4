"""The Distiller's and make_student's argument checks, for either Keras.

`tfopt.distillation` (tf-keras) and `tfopt.keras3.distillation` take the same
arguments and refuse the same mistakes with the same sentences; what a check
needs from Keras (the layer that ends a model, a resolved loss) is looked up by
the caller and passed in. Each error names the argument, what was given, what
is allowed and what to do.
"""

import difflib
import numbers

import numpy as np

ARGUMENTS = ("teacher", "student", "temperature", "alpha", "teacher_outputs", "student_outputs",
             "hints", "hint_weight")
MODEL_ARGUMENTS = ("name", "trainable", "dtype", "dynamic", "autocast")
KINDS = ("logits", "probabilities")
STUDENT_WEIGHTS = (None, "teacher")


def is_number(value):
    """A real number: Python's or NumPy's, not a bool or a string."""
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def keyword_arguments(kwargs, model_arguments=MODEL_ARGUMENTS):
    """Raises TypeError naming keyword arguments neither the Distiller nor Keras knows."""
    unknown = sorted(set(kwargs) - set(model_arguments))
    if not unknown:
        return
    close = [match for name in unknown
             for match in difflib.get_close_matches(name, ARGUMENTS + tuple(model_arguments), 1)]
    raise TypeError(
        f"Distiller got unexpected keyword argument(s) {unknown}"
        f"{f' (did you mean {close}?)' if close else ''}. Its arguments are "
        f"{', '.join(ARGUMENTS)}, and Keras model arguments such as name."
    )


def temperature(value):
    if not is_number(value) or not 0 < value < float("inf"):
        raise ValueError(f"temperature must be a finite number > 0, got {value!r}; "
                         "1 leaves the outputs as they are, 2-8 is typical.")
    return float(value)


def alpha(value):
    if not is_number(value) or not 0.0 <= value <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {value!r}: it weighs the hard-label "
                         "loss against the distillation loss (1 - alpha).")
    return float(value)


def kind(value, name):
    """`teacher_outputs` / `student_outputs`: "logits" or "probabilities"."""
    if value not in KINDS:
        raise ValueError(f"{name} must be one of {list(KINDS)}, got {value!r}: say whether "
                         "the model's last layer gives raw logits or softmax probabilities.")
    return value


def kind_matches_activation(found, kind, name, role, model_name):
    """Raises ValueError when the model's last layer contradicts `kind`.

    Args:
      found: None when the last layer's activation is unknown, else
        (activation name, layer name, layer class name, whether its config has
        an activation).
    """
    if found is None:
        return
    activation, layer_name, class_name, has_activation = found
    described = f"layer {layer_name!r} ({class_name}" + (
        f", activation={activation!r})" if has_activation else ")")
    if kind == "logits" and activation == "softmax":
        raise ValueError(
            f"The {role} {model_name!r} ends in a softmax, {described}, so it outputs "
            f"probabilities, but {name}='logits' (the default) reads them as logits and would "
            f"distill from the wrong distribution. Pass {name}='probabilities', or remove "
            "the final softmax (keras.applications models take classifier_activation=None)."
        )
    if kind == "probabilities" and activation == "linear":
        raise ValueError(
            f"The {role} {model_name!r} ends in {described}, which outputs raw logits, but "
            f"{name}='probabilities' reads them as softmax probabilities. Pass "
            f"{name}='logits' (the default)."
        )


def activation_name(config):
    """The activation's name from a layer config: a string, or a wrapper's config around one."""
    if isinstance(config, str):
        return config
    if isinstance(config, dict):
        inner = config.get("config", {})
        if isinstance(inner, dict) and "activation" in inner:
            return activation_name(inner["activation"])
        if config.get("class_name") == "function" and isinstance(inner, str):
            return inner  # Keras 3 serializes a built-in activation as a function
    return None


def hints(value):
    """`hints` as a tuple of (teacher layer name, student layer name) pairs."""
    if value is None:
        return ()
    if isinstance(value, (str, bytes)) or not isinstance(value, (list, tuple)):
        raise ValueError(f"hints must be a list of (teacher layer name, student layer name) "
                         f"pairs, got {value!r}; e.g. hints=[('conv2d_1', 'conv2d_1')].")
    pairs = []
    for pair in value:
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2
                and all(isinstance(name, str) and name for name in pair)):
            raise ValueError(f"Each hint must be a pair of layer names (teacher, student), got "
                             f"{pair!r} in hints={value!r}.")
        pairs.append(tuple(pair))
    if len(set(pairs)) != len(pairs):
        raise ValueError(f"hints={value!r} names the same pair twice; give each pair once and "
                         "raise hint_weight to weigh it more.")
    return tuple(pairs)


def hint_weight(weight, pairs):
    if not is_number(weight) or not weight >= 0:
        raise ValueError(f"hint_weight must be a number >= 0, got {weight!r}: it multiplies the "
                         "mean squared error between the paired activations.")
    if not pairs and weight != 1.0:
        raise ValueError(f"hint_weight={weight!r} has no effect without hints; name the layer "
                         "pairs to match, e.g. hints=[('conv2d_1', 'conv2d_1')], or leave "
                         "hint_weight at its default.")
    return float(weight)


def hint_shapes(teacher_shape, student_shape, pair):
    """Whether the paired activations need a projection; refuses all but a channel mismatch."""
    teacher_shape, student_shape = tuple(teacher_shape), tuple(student_shape)
    if len(teacher_shape) != len(student_shape) or teacher_shape[1:-1] != student_shape[1:-1]:
        raise ValueError(
            f"Hint {pair}: the teacher's activation has shape {teacher_shape} and the "
            f"student's {student_shape}. Only the last (channel) axis may differ, which a "
            "learned projection bridges; pair layers at the same spatial resolution."
        )
    return teacher_shape[-1] != student_shape[-1]


def output_shapes(teacher_shape, student_shape):
    """Refuses students that predict other classes, and one-unit outputs."""
    if tuple(teacher_shape[1:]) != tuple(student_shape[1:]):
        raise ValueError(
            f"The teacher's output shape {teacher_shape} and the student's "
            f"{student_shape} differ; the student must predict the same classes. "
            "Give its last layer as many units as the teacher's."
        )
    if teacher_shape[-1] == 1:
        raise ValueError(
            f"The teacher and student have one output unit {teacher_shape}: a softmax over one "
            "unit is always 1, so the distillation loss would always be 0. Give a binary "
            "classifier two output units (one logit per class)."
        )


def input_shapes(expected, given, make_student):
    """Refuses a student whose inputs differ from the teacher's (None: unknown)."""
    if expected is None or given is None:
        return
    if len(expected) != len(given) or not all(fits(e, g) for e, g in zip(expected, given)):
        raise ValueError(
            f"The teacher takes inputs of shape {_batched(expected)} and the student "
            f"{_batched(given)}; both are fed the same x. Give the student the teacher's input "
            f"shape ({make_student}(teacher) does)."
        )


def fits(expected, given):
    return len(expected) == len(given) and all(
        e is None or g is None or e == g for e, g in zip(expected, given))


def _batched(shapes):
    return [(None,) + s for s in shapes] if len(shapes) > 1 else (None,) + shapes[0]


def same_model(teacher, student):
    if teacher is student:
        raise ValueError("The teacher and the student are the same model; distillation "
                         "trains a separate (usually smaller) student. Build a new one, "
                         "e.g. with keras.models.clone_model.")


def shared_weights(names, make_student):
    if names:
        raise ValueError(
            f"The student shares {len(names)} trainable weight(s) with the teacher (e.g. "
            f"{names[:3]}), so training it would change the teacher. Build the student from "
            f"new layers: {make_student}(teacher) or keras.models.clone_model."
        )


def loss_reads_outputs(given, from_logits, student_outputs):
    """Refuses a hard-label loss that reads the student's outputs as the other kind."""
    if from_logits is not None and from_logits != (student_outputs == "logits"):
        reads = "logits" if from_logits else "probabilities"
        raise ValueError(
            f"loss={given!r} reads the student's outputs as {reads}, but "
            f"student_outputs={student_outputs!r}. Leave loss=None (the default matches "
            f"student_outputs) or set from_logits={student_outputs == 'logits'} on the loss."
        )


def x_shape(shape, inputs, where):
    """Refuses NumPy inputs whose shape is not the models' (batch first)."""
    if inputs is None or len(inputs) != 1:
        return
    shape = tuple(shape)
    if len(shape) != len(inputs[0]) + 1 or not fits(inputs[0], shape[1:]):
        raise ValueError(
            f"{where}: x has shape {shape}, but the teacher and student take inputs of "
            f"shape {(None,) + tuple(inputs[0])} (batch first). Reshape x to match.")


def labels(shape, classes, where):
    """Refuses label shapes other than (batch,) or (batch, 1) for class-index losses."""
    shape = tuple(shape)
    if len(shape) <= 1 or (len(shape) == 2 and shape[-1] in (1, None)):
        return
    one_hot = len(shape) == 2 and shape[-1] == classes
    raise ValueError(
        f"{where}: y has shape {shape}, but the hard-label loss (sparse categorical "
        f"cross-entropy, the default) takes class indices of shape (batch,). "
        + ("These look one-hot: pass np.argmax(y, axis=-1), or compile(loss=keras.losses."
           "CategoricalCrossentropy(from_logits=...)) to keep them." if one_hot
           else "Pass one class index per example.")
    )


def label_values(y, classes, where):
    """Refuses NumPy class labels that are not integers in [0, classes)."""
    y = np.asarray(y)
    labels(y.shape, classes, where)
    if y.size and np.issubdtype(y.dtype, np.number):
        fractional = y[np.mod(y, 1) != 0]
        if fractional.size or y.min() < 0 or y.max() >= classes:
            found = (f"non-integer values such as {fractional.flat[0]}" if fractional.size
                     else f"values from {y.min()} to {y.max()}")
            raise ValueError(
                f"{where}: y must hold integer class indices in [0, {classes}) for the sparse "
                f"categorical cross-entropy loss; got {found}. Map the labels to "
                "0..classes-1.")


def student_arguments(width, weights):
    """make_student's `width` and `weights`."""
    if not is_number(width) or not 0 < width <= 1:
        raise ValueError(f"width must be in (0, 1], got {width!r}: the fraction of each hidden "
                         "layer's units and filters the student keeps.")
    if weights not in STUDENT_WEIGHTS:
        raise ValueError(f"weights must be one of {list(STUDENT_WEIGHTS)}, got {weights!r}: "
                         "None starts the student from random weights, 'teacher' from the "
                         "teacher's strongest units.")
    return float(width)
