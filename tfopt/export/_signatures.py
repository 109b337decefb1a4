"""The signatures TF Serving calls: `serving_default` (predict) and `classify`.

`serving_default` takes one tensor per Keras input, keyed by the input layer's
name (``model.input_names``), and returns one per output, keyed by the output
layer's name (``model.output_names``), every batch dimension free. Those names
are what a REST ``instances`` object or a gRPC ``PredictRequest`` uses; they
stay the same from one version of a model to the next as long as its layer
names do (name the Input and the last layers to be sure).

`classify` follows TF Serving's classifier rules (``classifier.cc``): one
input named ``inputs`` holding serialized ``tf.Example`` protos, outputs
``classes`` (string, [batch, n]) and ``scores`` (float, [batch, n]). Scores are
probabilities: a softmax is applied when the model outputs logits.
"""

import collections

import numpy as np
import tensorflow as tf

from tfopt import _clone
from tfopt.export import _inputs
from tfopt.export import _keras3

DEFAULT = "serving_default"
CLASSIFY = "classify"
NAMES = (DEFAULT, CLASSIFY)
PREDICT_METHOD = "tensorflow/serving/predict"
CLASSIFY_METHOD = "tensorflow/serving/classify"
CLASSIFY_INPUT = "inputs"

# How `classify` turns the model's output into scores: "probabilities" as they
# are, "logits" through a softmax, "binary" (one sigmoid unit) as [1 - p, p].
ClassifyPlan = collections.namedtuple(
    "ClassifyPlan", "feature_name feature input_shape input_dtype class_names kind")


def validate_names(signatures):
    """The signatures to write, `serving_default` always first."""
    if signatures is None:
        return (DEFAULT,)
    given = [signatures] if isinstance(signatures, str) else signatures
    if not isinstance(given, (list, tuple)) or not all(isinstance(s, str) for s in given):
        raise TypeError(f"signatures must be a name or a list of names from {list(NAMES)}, got "
                        f"{type(signatures).__name__} {signatures!r}.")
    unknown = [s for s in given if s not in NAMES]
    if unknown:
        raise ValueError(f"signatures {unknown} unknown; use {list(NAMES)}: {DEFAULT!r} "
                         f"(predict, always written) and {CLASSIFY!r} (TF Serving's Classify "
                         "API, for classifiers).")
    return (DEFAULT,) + ((CLASSIFY,) if CLASSIFY in given else ())


def input_specs(model):
    """The model's inputs in its call structure, each named by its signature key."""
    specs = _inputs.input_specs(model)
    flat, names = tf.nest.flatten(specs), []
    for i, spec in enumerate(flat):
        name = spec.name or f"input_{i + 1}"
        names.append(name if name not in names else f"{name}_{i + 1}")
    return tf.nest.pack_sequence_as(specs, [
        tf.TensorSpec([None] + spec.shape.as_list()[1:], spec.dtype, name=name)
        for spec, name in zip(flat, names)])


def output_names(model, count):
    """The signature keys of the model's `count` outputs, in `tf.nest.flatten` order."""
    given = _keras3.output_names(model) if _keras3.is_model(model) else getattr(
        model, "output_names", None)
    names = list(given or [])
    if len(names) != count or len(set(names)) != count:
        names = [f"output_{i + 1}" for i in range(count)]
    return names


def feeds(specs, examples):
    """``{signature key: array}`` from examples in the model's call structure."""
    return {spec.name: x for spec, x in zip(tf.nest.flatten(specs), tf.nest.flatten(examples))}


def model_inputs(specs, keyed):
    """The model's call structure from ``{signature key: tensor}``."""
    return tf.nest.map_structure(lambda spec: keyed[spec.name], specs)


def output_shapes(model, specs):
    """The shapes of the model's outputs, in flatten order."""
    if _clone.is_graph_model(model) or (_keras3.is_model(model)
                                        and getattr(model, "outputs", None)):
        return [tuple(t.shape) for t in model.outputs]
    concrete = tf.function(lambda x: model(x, training=False)).get_concrete_function(specs)
    return [tuple(t.shape) for t in tf.nest.flatten(concrete.structured_outputs)]


def predict_function(model, specs):
    """`serving_default` as a concrete function: ``{input key: tensor} -> {output key: tensor}``."""
    keyed = {spec.name: spec for spec in tf.nest.flatten(specs)}
    names = output_names(model, len(output_shapes(model, specs)))

    @tf.function(input_signature=[keyed])
    def serve(inputs):
        outputs = model(model_inputs(specs, inputs), training=False)
        return dict(zip(names, tf.nest.flatten(outputs)))

    return serve.get_concrete_function()


def validate_classify(model, specs, class_names, feature_spec):
    """A ClassifyPlan for `model`, or a ValueError saying why it cannot classify."""
    flat = tf.nest.flatten(specs)
    shapes = output_shapes(model, specs)
    if len(flat) != 1 or len(shapes) != 1 or len(shapes[0]) != 2 or shapes[0][1] is None:
        raise ValueError(
            f"signatures='classify' needs a classifier with one input and one output of shape "
            f"[batch, classes]; {model.name!r} has inputs {[s.name for s in flat]} and output "
            f"shapes {shapes}. Export only 'serving_default' (the predict API serves any "
            "model).")
    spec, classes = flat[0], shapes[0][1]
    kind = _score_kind(model, classes)
    count = 2 if kind == "binary" else classes
    return ClassifyPlan(*_feature(spec, feature_spec), spec.shape.as_list()[1:], spec.dtype,
                        _validate_class_names(class_names, count), kind)


def _score_kind(model, classes):
    if _keras3.is_model(model):
        activation = _keras3.final_activation(model)
    else:
        from tfopt.distillation import _outputs
        found = _outputs.final_activation(model)
        activation = found[0] if found else None
    if classes == 1 and activation == "sigmoid":
        return "binary"
    if classes >= 2 and activation in ("softmax", "sigmoid"):
        return "probabilities"
    if classes >= 2 and activation == "linear":
        return "logits"
    if classes == 1:
        raise ValueError(
            f"signatures='classify' needs at least two classes; {model.name!r} has one output "
            f"unit ({activation or 'unknown'} activation), which reads as a regression. A "
            "binary classifier ending in Dense(1, activation='sigmoid') is classified as "
            "classes ['0', '1'].")
    raise ValueError(
        f"signatures='classify' reports probabilities, so it must know whether {model.name!r} "
        f"outputs logits or probabilities, but its last layer's activation is "
        f"{activation or 'not one Keras names'}. End the model in a layer with "
        "activation='softmax' (probabilities) or none (logits, softmax applied in the "
        "signature), e.g. keras.layers.Dense(classes) or keras.layers.Softmax().")


_EXAMPLE_DTYPES = {"f": tf.float32, "i": tf.int64, "u": tf.int64, "b": tf.int64}


def _feature(spec, feature_spec):
    """(feature name, FixedLenFeature) that fills the model's single input."""
    shape = spec.shape.as_list()[1:]
    size = int(np.prod(shape)) if None not in shape else None
    if feature_spec is None:
        if size is None:
            raise ValueError(
                f"signatures='classify' parses fixed-size tf.Example features, but input "
                f"{spec.name!r} has shape {[None] + shape}. Pass feature_spec={{name: "
                "tf.io.FixedLenFeature(shape, dtype)}} with the size your requests carry.")
        kind = np.dtype(spec.dtype.as_numpy_dtype).kind if spec.dtype != tf.string else "S"
        return spec.name, tf.io.FixedLenFeature(shape, _EXAMPLE_DTYPES.get(kind, tf.string))
    if (not isinstance(feature_spec, dict) or len(feature_spec) != 1
            or not isinstance(next(iter(feature_spec)), str)
            or not isinstance(next(iter(feature_spec.values())), tf.io.FixedLenFeature)):
        raise TypeError(f"feature_spec must be a dict with one entry, {{feature name: "
                        f"tf.io.FixedLenFeature(shape, dtype)}}, got {feature_spec!r}.")
    (name, feature), = feature_spec.items()
    given = int(np.prod(feature.shape)) if None not in list(feature.shape) else None
    numeric = spec.dtype != tf.string
    if given is None or (size is not None and given != size) or (
            feature.dtype not in (tf.float32, tf.int64, tf.string)) or (
            numeric == (feature.dtype == tf.string)):
        raise ValueError(
            f"feature_spec[{name!r}] is {feature.shape} {feature.dtype.name}; input "
            f"{spec.name!r} takes {[None] + shape} {spec.dtype.name} per batch, so the feature "
            f"needs {size if size is not None else 'a fixed number of'} "
            f"{'strings' if not numeric else 'numbers (tf.float32 or tf.int64)'} per example.")
    return name, feature


def _validate_class_names(class_names, count):
    if class_names is None:
        return [str(i) for i in range(count)]
    if isinstance(class_names, str) or not all(isinstance(c, str) for c in class_names):
        raise TypeError(f"class_names must be a list of {count} strings, got {class_names!r}.")
    names = list(class_names)
    if len(names) != count or len(set(names)) != count:
        raise ValueError(f"class_names must name each of the model's {count} classes once, in "
                         f"output order; got {len(names)} names {names[:12]}.")
    return names


def scores(outputs, kind):
    """Class probabilities from the model's output, as `classify` reports them."""
    outputs = tf.convert_to_tensor(outputs)
    if kind == "logits":
        return tf.nn.softmax(outputs, axis=-1)
    if kind == "binary":
        return tf.concat([1.0 - outputs, outputs], axis=-1)
    return outputs


def classify_function(model, specs, plan):
    """`classify` as a concrete function: serialized tf.Examples -> classes, scores."""

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=CLASSIFY_INPUT)])
    def classify(inputs):
        parsed = tf.io.parse_example(inputs, {plan.feature_name: plan.feature})
        x = tf.cast(tf.reshape(parsed[plan.feature_name], [-1] + plan.input_shape),
                    plan.input_dtype)
        (spec,) = tf.nest.flatten(specs)
        outputs = tf.nest.flatten(model(model_inputs(specs, {spec.name: x}), training=False))[0]
        probabilities = scores(outputs, plan.kind)
        classes = tf.tile(tf.constant([plan.class_names]), [tf.shape(probabilities)[0], 1])
        return {"classes": classes, "scores": probabilities}

    return classify.get_concrete_function()


def serialize_examples(plan, x):
    """Serialized tf.Example protos carrying each row of `x` as the plan's feature."""
    examples = []
    dtype = object if plan.feature.dtype == tf.string else plan.feature.dtype.as_numpy_dtype
    for row in np.asarray(x).reshape(len(x), -1).astype(dtype):
        if plan.feature.dtype == tf.float32:
            feature = tf.train.Feature(float_list=tf.train.FloatList(value=row))
        elif plan.feature.dtype == tf.int64:
            feature = tf.train.Feature(int64_list=tf.train.Int64List(value=row))
        else:
            feature = tf.train.Feature(bytes_list=tf.train.BytesList(value=list(row)))
        examples.append(tf.train.Example(features=tf.train.Features(
            feature={plan.feature_name: feature})).SerializeToString())
    return np.array(examples, dtype=object)
