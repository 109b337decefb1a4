"""verify_saved_model(): a version run the way TF Serving runs it, compared with Keras."""

import os

import numpy as np
import tensorflow as tf

from tfopt import _data
from tfopt.export import _servable
from tfopt.export import _signatures
from tfopt.export import _versions
from tfopt.export import _warmup
from tfopt.export._saved_model_bundle import SavedModelBundle

# float32 carries about 7 digits; a graph run by a session may order or fuse
# operations differently from Keras (oneDNN, Grappler), which moves outputs by
# a few ulps per layer. 1e-4 of the output's magnitude leaves room for that and
# still catches a wrong weight or a missing layer.
RELATIVE_TOLERANCE = 1e-4
# A quantization-aware model rounds activations to 256 levels: a value that the
# two runs put on opposite sides of a rounding step moves the output by a step.
QUANTIZATION_AWARE_RELATIVE_TOLERANCE = 2e-2

_CHUNK = 256


def verify_saved_model(version_dir, inputs, reference=None, labels=None):
    """Loads a version as TF Serving does, runs it, and compares it with a Keras model.

    The version is loaded with TensorFlow's SavedModel loader (tag ``serve``)
    into a fresh graph and session, not through Keras; its
    ``serving_default`` signature runs `inputs` and replays every request of
    its warmup file (``assets.extra/tf_serving_warmup_requests``), which must
    parse as TF Serving parses it.

    Args:
      version_dir: a version directory, ``<base path>/<version>``.
      inputs: examples as the Keras model takes them (an array, a list or
        dict of arrays for several inputs, or a tf.data.Dataset / iterable of
        batches read up to 1,000 examples); without `reference`, an array or a
        dict keyed by the signature's input names. None replays the warmup
        requests only.
      reference: the Keras model the version was exported from (a Distiller
        or a pruned model is taken as `export.saved_model` takes it); None
        skips `max_abs_diff` and `agreement`. Defaults to None.
      labels: class ids or one-hot rows for `inputs`; None skips
        `accuracy`. Defaults to None.

    Returns:
      A dict with `examples` (how many `inputs` ran), `warmup_records` (how
      many requests were replayed), and when their arguments are given:
      `max_abs_diff` (largest absolute difference from `reference` over every
      output, example and warmup request), `agreement` (share of rows where
      both pick the same class) and `accuracy` (top-1 of the version on
      `labels`, with `reference_accuracy` the Keras model's). `agreement`
      and `accuracy` need a single output of shape [batch, classes >= 2].

    Raises:
      TypeError: arguments of the wrong type.
      ValueError: not a version directory, inputs or labels that do not fit
        the signature, a reference whose inputs or outputs differ from it,
        a warmup file TF Serving would refuse, or nothing to run.

    Example:
      >>> figures = verify_saved_model("models/digits/1", x_test, reference=model, labels=y_test)
      >>> figures["max_abs_diff"], figures["agreement"], figures["accuracy"]
    """
    figures, _ = compare(version_dir, inputs, reference, labels)
    return figures


def default_tolerance(scale, quantization_aware):
    """The largest output difference accepted for outputs of magnitude up to `scale`."""
    relative = QUANTIZATION_AWARE_RELATIVE_TOLERANCE if quantization_aware else RELATIVE_TOLERANCE
    return relative * max(1.0, scale)


def compare(version_dir, inputs, reference=None, labels=None, plan=None, prepared=False):
    """`verify_saved_model`'s figures and the reference's largest absolute output.

    With a ClassifyPlan `plan`, the `classify` signature also runs on the same
    rows, sent as serialized tf.Examples, adding `classify_max_abs_diff`.
    `prepared` says `reference` is the model export wrote (checked, stripped).
    """
    path = validate_version_dir(version_dir)
    if reference is not None and not prepared:
        reference = _servable.for_serving(
            _servable.validate_model(reference, "verify_saved_model's reference"))
    if labels is not None and inputs is None:
        raise ValueError("labels are the classes of inputs; pass inputs too.")
    with SavedModelBundle(path) as bundle:
        specs = _specs(bundle, reference)
        batches, count = [], 0
        if inputs is not None:
            examples = _data.validate_examples(inputs, specs, "inputs")
            count = len(tf.nest.flatten(examples)[0])
            keyed = _signatures.feeds(specs, examples)
            batches = [(_signatures.DEFAULT, {k: x[i:i + _CHUNK] for k, x in keyed.items()})
                       for i in range(0, count, _CHUNK)]
        y = None if labels is None else _data.validate_labels(labels, count, "labels")
        requests = _warmup.read(path)
        batches += requests
        if not batches:
            raise ValueError(f"Nothing to verify: inputs is None and {path!r} has no warmup "
                             "requests. Pass examples as inputs.")
        served = [bundle.run(name, keyed) for name, keyed in batches]
        figures = {"examples": count, "warmup_records": len(requests)}
        rows = [(keyed, out) for (name, keyed), out in zip(batches, served)
                if name == _signatures.DEFAULT]
        scale = 0.0
        if reference is not None and rows:
            expected = _predict(reference, specs, [keyed for keyed, _ in rows])
            _validate_output_keys(expected[0], rows[0][1], path)
            scale = max(float(np.max(np.abs(e[k]))) for e in expected for k in e)
            figures["max_abs_diff"] = max(
                float(np.max(np.abs(out[k] - e[k]))) for (_, out), e in zip(rows, expected)
                for k in e)
            if _classes(rows[0][1]):
                figures["agreement"] = _top1([out for _, out in rows], expected)
            if plan is not None:
                figures["classify_max_abs_diff"] = _check_classify(bundle, plan, rows, expected)
        if y is not None and _classes(served[0]):
            chunks = -(-count // _CHUNK)  # the first batches hold `inputs`, in order
            figures["accuracy"] = _accuracy(_joined(served[:chunks]), y)
            if reference is not None and rows:
                figures["reference_accuracy"] = _accuracy(_joined(expected[:chunks]), y)
    return figures, scale


def validate_version_dir(version_dir):
    if not isinstance(version_dir, (str, os.PathLike)):
        raise TypeError(f"version_dir must be a path, got {type(version_dir).__name__}.")
    path = os.fspath(version_dir)
    if not os.path.isdir(path):
        raise ValueError(f"No version directory at {path!r}.")
    if not tf.saved_model.contains_saved_model(path):
        found = _versions.versions(path)
        hint = (f" It looks like a base path: give one of its versions, e.g. "
                f"{os.path.join(path, sorted(found[max(found)])[0])!r}." if found else "")
        raise ValueError(f"{path!r} holds no saved_model.pb, so it is not a SavedModel "
                         f"version.{hint}")
    return path


def _specs(bundle, reference):
    """Input specs in the reference's call structure, or keyed like the signature."""
    signature = bundle.input_specs(_signatures.DEFAULT)
    if reference is None:
        specs = {key: tf.TensorSpec(spec.shape, spec.dtype, name=key)
                 for key, spec in signature.items()}
        return next(iter(specs.values())) if len(specs) == 1 else specs
    specs = _signatures.input_specs(reference)
    names = sorted(spec.name for spec in tf.nest.flatten(specs))
    if names != sorted(signature):
        raise ValueError(f"The reference model takes inputs {names}; the SavedModel's "
                         f"serving_default takes {sorted(signature)}. Pass the Keras model the "
                         "version was exported from.")
    return specs


def _predict(reference, specs, keyed_batches):
    """The reference's outputs ``{output key: array}`` for each batch of signature inputs."""
    joined = {key: np.concatenate([keyed[key] for keyed in keyed_batches])
              for key in keyed_batches[0]}
    outputs = tf.nest.flatten(reference.predict(_signatures.model_inputs(specs, joined),
                                                batch_size=_CHUNK, verbose=0))
    names = _signatures.output_names(reference, len(outputs))
    bounds = np.cumsum([len(next(iter(keyed.values()))) for keyed in keyed_batches])[:-1]
    pieces = [np.split(np.asarray(out), bounds) for out in outputs]
    return [dict(zip(names, parts)) for parts in zip(*pieces)]


def _validate_output_keys(expected, served, path):
    if sorted(expected) != sorted(served):
        raise ValueError(f"The reference model's outputs are {sorted(expected)}; the "
                         f"serving_default signature of {path!r} returns {sorted(served)}. Pass "
                         "the Keras model the version was exported from.")


def _classes(outputs):
    """Whether `outputs` is one [batch, classes >= 2] output."""
    if len(outputs) != 1:
        return False
    out = next(iter(outputs.values()))
    return out.ndim == 2 and out.shape[1] >= 2


def _top1(served, expected):
    pairs = [(next(iter(s.values())), next(iter(e.values()))) for s, e in zip(served, expected)]
    same = np.concatenate([np.argmax(s, -1) == np.argmax(e, -1) for s, e in pairs])
    return float(np.mean(same))


def _joined(outputs):
    """The single output of several batches, concatenated."""
    return np.concatenate([next(iter(out.values())) for out in outputs])


def _accuracy(outputs, labels):
    if labels.ndim == 2 and labels.shape[1] == outputs.shape[1] and labels.shape[1] > 1:
        labels = np.argmax(labels, axis=-1)
    return float(np.mean(np.argmax(outputs, axis=-1) == labels.reshape(len(labels))))


def _check_classify(bundle, plan, rows, expected):
    """Largest score difference of `classify` on the rows sent as tf.Examples."""
    diff = 0.0
    for (keyed, _), reference in zip(rows, expected):
        (x,) = keyed.values()
        result = bundle.run(_signatures.CLASSIFY,
                            {_signatures.CLASSIFY_INPUT: _signatures.serialize_examples(plan, x)})
        classes = np.char.decode(result["classes"].astype(bytes), "utf-8")
        if (classes != np.array(plan.class_names)).any():
            raise ValueError(f"The classify signature of {bundle.export_dir!r} answers classes "
                             f"{classes[0].tolist()}, not {plan.class_names}.")
        want = _signatures.scores(next(iter(reference.values())), plan.kind).numpy()
        diff = max(diff, float(np.max(np.abs(result["scores"] - want))))
    return diff
