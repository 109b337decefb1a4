"""saved_model(): a Keras model as a versioned SavedModel that TF Serving loads."""

import os

import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils
from tensorflow.python.trackable import resource

from tfopt import _data
from tfopt import _files
from tfopt.export import _keras3
from tfopt.export import _servable
from tfopt.export import _signatures
from tfopt.export import _verify_saved_model
from tfopt.export import _versions
from tfopt.export import _warmup

# Examples for the check when no warmup_inputs are given.
_SYNTHETIC_EXAMPLES = 8


# Exports of version=None into one base path at once: each retry takes the next free number.
_ATTEMPTS = 5


def saved_model(model, base_path, version=None, signatures=None, warmup_inputs=None,
                overwrite=False, verify=True, class_names=None, feature_spec=None,
                tolerance=None):
    """Exports a Keras model as ``<base_path>/<version>/``, the layout TF Serving loads.

    The version directory holds ``saved_model.pb``, ``variables/`` and, with
    warmup inputs, ``assets.extra/tf_serving_warmup_requests``. It is written
    and checked in a hidden ``.tfopt-*`` directory inside `base_path` (a name
    TF Serving ignores) and renamed into place only when complete, so a server
    polling `base_path` never loads half a version, and a process killed at any
    point leaves no version directory behind; the next export removes what a
    killed one left.

    Signatures (see `tfopt.export._signatures`):
      - ``serving_default`` (method ``tensorflow/serving/predict``): one input
        per Keras input, named like the Input layer (``model.input_names``),
        one output per Keras output, named like its layer
        (``model.output_names``), batch dimension free.
      - ``classify`` (method ``tensorflow/serving/classify``), with
        ``signatures="classify"``: input ``inputs``, serialized
        ``tf.Example`` protos whose feature (named like the model's input,
        holding its values flattened) fills the single input; outputs
        ``classes`` and ``scores`` (probabilities: softmax applied to logits).
        Serves TF Serving's Classify API and REST ``:classify``.

    The model may be tf_keras or Keras 3 (``import keras``; signatures,
    checks and files are the same), plain, shrunk, pruned (PruneWrappers
    are stripped, which keeps the predictions), a `Distiller` or a
    `keras.distillation.Distiller` (its student is exported), or
    quantization-aware (exported as trained, with float fake-quantization
    ops: the SavedModel runs it for servers as it trained; the integer model
    is the TFLite path, ``export.tflite(model, path, mode="int8")``; a Keras 3
    model is quantization-aware when its graph holds FakeQuant ops). Each of
    these is logged.

    With `verify`, the staged version is loaded as TF Serving loads it (the
    TF1 SavedModel loader, tag ``serve``, a fresh graph and session; see
    `SavedModelBundle`), every warmup request is replayed through it (or,
    without warmup inputs, 8 seeded random examples run), and its outputs are
    compared with the Keras model's; the ``classify`` signature runs the same
    rows as tf.Examples. The default tolerance is 1e-4 times the largest
    absolute output (at least 1e-4), 2e-2 times for quantization-aware
    models, whose rounding steps can flip. A larger difference raises and
    nothing is written. The largest difference is logged.

    Args:
      model: a built Keras model, tf_keras or Keras 3 (Sequential,
        Functional, or subclassed and called once), or a Distiller
        (`tfopt.distillation.Distiller`, `keras.distillation.Distiller`).
      base_path: the model's directory, whose integer-named children are its
        versions (``<export root>/<model name>``); created if missing. Its
        last component names the model in the warmup requests.
      version: the version number, an int >= 0. Defaults to None: one more
        than the highest existing version (1 when there is none), versions
        read as TF Serving reads them ("007" is 7).
      signatures: None or "serving_default" for the predict signature only;
        "classify" or ["serving_default", "classify"] to add ``classify``.
        Defaults to None.
      warmup_inputs: examples as the model takes them (an array, a list or
        dict of arrays for several inputs, or a tf.data.Dataset / iterable of
        batches, read up to 1,000 examples) to write as warmup requests: each
        example alone (batch size 1), then all of them in batches of up to
        32. TF Serving loads at most 1,000 records, so at most 969 examples;
        a few dozen are plenty. Defaults to None (no warmup file).
      overwrite: replace an existing `version`. Defaults to False.
      verify: load and check the version before it appears. Defaults to True.
      class_names: the ``classify`` classes, one string per output unit, in
        output order. Defaults to None ("0", "1", ...).
      feature_spec: ``{feature name: tf.io.FixedLenFeature(shape, dtype)}``
        for ``classify`` requests, when they do not use the default (the
        input's name, its shape, float32 or int64). Defaults to None.
      tolerance: the largest output difference `verify` accepts, a number
        >= 0. Defaults to None (the default described above).

    Returns:
      The version directory, an absolute path.

    Raises:
      TypeError: an argument of the wrong type.
      ValueError: an object that is not a Keras model, a subclassed model
        never called, a version that exists (without `overwrite`),
        signatures the model cannot have, warmup inputs that do not fit the
        model or make more than 1,000 records, a base path that cannot be
        written, or a failed check (its largest difference in the message).
        Checked before anything is written.

    Example:
      >>> export.saved_model(model, "models/digits", warmup_inputs=x_test[:16],
      ...                    signatures="classify")
      '/.../models/digits/1'
    """
    action = "export.saved_model"
    model = _servable.validate_model(model, action)
    names = _signatures.validate_names(signatures)
    base = _validate_base_path(base_path)
    version = _versions.validate_version(version)
    _validate_flag(overwrite, "overwrite")
    _validate_flag(verify, "verify")
    tolerance = _validate_tolerance(tolerance, verify)
    specs = _signatures.input_specs(model)
    plan = None
    if _signatures.CLASSIFY in names:
        plan = _signatures.validate_classify(model, specs, class_names, feature_spec)
    else:
        _validate_classify_only(class_names=class_names, feature_spec=feature_spec)
    examples = None
    if warmup_inputs is not None:
        examples = _data.validate_examples(warmup_inputs, specs, "warmup_inputs")
        _warmup.validate_count(len(tf.nest.flatten(examples)[0]))
    elif verify:
        examples = _synthetic_examples(specs)
    model = _servable.for_serving(model)
    chosen = version
    for _ in range(_ATTEMPTS):
        version = _versions.next_version(base) if chosen is None else chosen
        target = os.path.join(base, str(version))
        existing = _versions.versions(base).get(version, [])
        if existing and not overwrite:
            raise ValueError(
                f"Version {version} exists already: {os.path.join(base, existing[0])!r}. Pass "
                f"overwrite=True to replace it, or version=None for the next one "
                f"({_versions.next_version(base)}).")
        try:
            _write_version(model, base, target, existing, specs, plan, examples,
                           warmup_inputs is not None, verify, tolerance, overwrite)
            break
        except FileExistsError:
            if chosen is not None:
                raise ValueError(f"Version {version} appeared at {target!r} while this export "
                                 "was written (another export?); it was left as it is. Pass "
                                 "overwrite=True to replace it.") from None
            # Another export took the next version meanwhile: take the one after it.
    else:
        raise RuntimeError(f"Other exports kept taking the next version in {base!r}; "
                           f"{_ATTEMPTS} attempts failed. Pass an explicit version.")
    logging.info("tfopt.export: wrote %s (signatures %s).", target, list(names))
    return target


def _write_version(model, base, target, existing, specs, plan, examples, has_warmup, verify,
                   tolerance, overwrite):
    """Writes, checks and renames one version; FileExistsError if `target` was taken meanwhile."""
    with _files.atomic_path(target, replace=overwrite) as staging:
        _write(model, staging, specs, plan)
        if has_warmup:
            _warmup.write(_warmup.path_in(staging), _signatures.feeds(specs, examples),
                          os.path.basename(base))
        if verify:
            _check(model, staging, None if has_warmup else examples, plan, tolerance, target)
        # The directory named like `target` is swapped for the new one by atomic_path;
        # other names of the same version ("007" for 7) move into the staging
        # directory, removed with it, just before the new version moves in.
        for name in existing:
            if name != os.path.basename(target):
                os.rename(os.path.join(base, name),
                          os.path.join(os.path.dirname(staging), f"replaced-{name}"))


def _validate_base_path(base_path):
    if not isinstance(base_path, (str, os.PathLike)) or not os.fspath(base_path):
        raise TypeError(f"base_path must be a directory path, got {base_path!r}.")
    base = os.path.abspath(base_path)
    if os.path.exists(base) and not os.path.isdir(base):
        raise ValueError(f"base_path {os.fspath(base_path)!r} is a file; give the directory "
                         "that holds (or will hold) the model's versions.")
    if tf.saved_model.contains_saved_model(base):
        raise ValueError(
            f"base_path {os.fspath(base_path)!r} is a SavedModel itself (it holds "
            f"saved_model.pb), likely a version directory; give its parent "
            f"{os.path.dirname(base)!r}, whose integer-named children are the versions.")
    ancestor = base
    while not os.path.exists(ancestor):
        ancestor = os.path.dirname(ancestor)
    if not os.path.isdir(ancestor) or not os.access(ancestor, os.W_OK | os.X_OK):
        raise ValueError(f"export.saved_model cannot write in {ancestor!r} (a file, or no "
                         "write permission); choose a base_path you can write to.")
    return base


def _validate_flag(value, name):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}.")


def _validate_tolerance(tolerance, verify):
    if tolerance is None:
        return None
    if isinstance(tolerance, (bool, np.bool_)) or not isinstance(tolerance, (int, float)):
        raise TypeError(f"tolerance must be a number >= 0 (the largest output difference "
                        f"accepted), got {type(tolerance).__name__} {tolerance!r}.")
    if not tolerance >= 0 or np.isinf(tolerance):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}.")
    if not verify:
        raise ValueError("tolerance is what verify accepts; with verify=False nothing is "
                         "compared. Drop tolerance or set verify=True.")
    return float(tolerance)


def _validate_classify_only(**arguments):
    given = [name for name, value in arguments.items() if value is not None]
    if given:
        raise ValueError(f"{' and '.join(given)} describe the classify signature, which is "
                         "written only with signatures='classify'; pass that too, or drop "
                         f"{' and '.join(given)}.")


def _synthetic_examples(specs):
    """A few seeded examples shaped like the inputs, for the check without warmup inputs."""
    rng = np.random.default_rng(0)

    def example(spec):
        shape = [_SYNTHETIC_EXAMPLES] + [d or 4 for d in spec.shape.as_list()[1:]]
        if spec.dtype.is_floating:
            return rng.normal(size=shape).astype(spec.dtype.as_numpy_dtype)
        if spec.dtype.is_integer or spec.dtype.is_bool:
            # 0 and 1 are valid ids for any embedding or lookup.
            return rng.integers(0, 2, size=shape).astype(spec.dtype.as_numpy_dtype)
        raise ValueError(f"Input {spec.name!r} is {spec.dtype.name}; verify cannot make up such "
                         "examples. Pass warmup_inputs (they are checked), or verify=False.")

    return tf.nest.map_structure(example, specs)


def _write(model, directory, specs, plan):
    """Saves the serving signatures, and only what they need, to `directory`."""
    root = tf.Module()
    # The functions close over the model's variables (and lookup tables); tracking
    # these, rather than the Keras model, keeps Keras' own saved functions out of
    # the file: TF Serving never calls them and they would triple saved_model.pb.
    root.model_variables = (_keras3.tracked_variables(model) if _keras3.is_model(model)
                            else list(model.variables))
    root.model_resources = [t for t in tf.train.TrackableView(model).descendants()
                            if isinstance(t, resource.CapturableResource)]
    functions = {_signatures.DEFAULT: _signatures.predict_function(model, specs)}
    if plan is not None:
        functions[_signatures.CLASSIFY] = _signatures.classify_function(model, specs, plan)
    tf.saved_model.save(root, directory, signatures=functions)
    if plan is not None:
        _set_method_names(directory, {_signatures.CLASSIFY: _signatures.CLASSIFY_METHOD})


def _set_method_names(directory, methods):
    """Sets SignatureDef method names, which tf.saved_model.save always writes as predict.

    TF Serving's Classify API does not check the method name by default, but
    its ``--enable_signature_method_name_check`` and clients reading the
    metadata do. The fingerprint is rewritten to match the changed file.
    """
    path = os.path.join(directory, tf.saved_model.SAVED_MODEL_FILENAME_PB)
    proto = saved_model_pb2.SavedModel()
    with open(path, "rb") as f:
        proto.ParseFromString(f.read())
    for meta_graph in proto.meta_graphs:
        for name, method in methods.items():
            meta_graph.signature_def[name].method_name = method
    with open(path, "wb") as f:
        f.write(proto.SerializeToString())
    fingerprinting_utils.write_fingerprint(directory)


def _check(model, staging, inputs, plan, tolerance, target):
    figures, scale = _verify_saved_model.compare(staging, inputs, model, plan=plan,
                                                  prepared=True)
    if tolerance is None:
        tolerance = _verify_saved_model.default_tolerance(
            scale, _servable.quantization_aware(model))
    logging.info("tfopt.export: %s loaded as TF Serving loads it: %s", target, figures)
    worst = max(figures["max_abs_diff"], figures.get("classify_max_abs_diff", 0.0))
    if not worst <= tolerance:
        raise ValueError(
            f"The SavedModel's outputs differ from the Keras model's by up to {worst:.4g} "
            f"(tolerance {tolerance:.4g}; figures {figures}); nothing was written to "
            f"{target!r}. A layer whose inference behaviour differs in a graph (a custom "
            "layer reading Python state, a training-only branch) is the usual cause; pass "
            "tolerance= if the difference is expected.")
