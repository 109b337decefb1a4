"""Servable: one loaded version of a model, run the way TF Serving runs it.

Each call checks its request as TF Serving's ``predict_util.cc``,
``classifier.cc`` and ``regressor.cc`` do, with their status codes and
texts, before running the signature in the version's session. A TF1
``Session.run`` is thread-safe, so one Servable serves concurrent requests.
The session closes when the last reference to the Servable goes: a request
that holds one keeps it usable after the manager has unloaded the version.
"""

import threading

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.framework import types_pb2
from tensorflow.core.protobuf import config_pb2
from tensorflow_serving.apis import get_model_metadata_pb2

from tfopt.serving._errors import ServingError, from_op_error

DEFAULT_SIGNATURE = "serving_default"
CLASSIFY_INPUTS = "inputs"
CLASSIFY_CLASSES = "classes"
CLASSIFY_SCORES = "scores"
REGRESS_INPUTS = "inputs"
REGRESS_OUTPUTS = "outputs"

_INVALID = grpc.StatusCode.INVALID_ARGUMENT
_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION


class Servable:
    """A loaded SavedModel version: predict, classify, regress and its metadata.

    Args:
      name: the model's name.
      version: the version number.
      bundle: a loaded ``tfopt.export.SavedModelBundle``; the Servable owns it.

    Attributes:
      name: the model's name.
      version: the version number.
      signature_defs: ``{signature name: SignatureDef}`` of the meta graph.
    """

    def __init__(self, name, version, bundle):
        self.name = name
        self.version = int(version)
        self.signature_defs = dict(bundle.signatures)
        self._bundle = bundle
        self._callables = {}
        self._lock = threading.Lock()

    def predict(self, inputs, signature_name="", output_filter=()):
        """Runs a signature on `inputs` as TF Serving's Predict does.

        Args:
          inputs: ``{input alias: np.ndarray}``; arrays must have the
            signature's dtype (TF Serving does not cast tensors).
          signature_name: the signature; "" means "serving_default".
          output_filter: output aliases to return; empty means all.

        Returns:
          ``(resolved signature name, {output alias: np.ndarray})``.

        Raises:
          ServingError: FAILED_PRECONDITION for an unknown signature,
            INVALID_ARGUMENT for inputs, dtypes or filters that do not match
            it, and TensorFlow's own status when the run fails (shapes).
        """
        name = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(name)
        if signature is None:
            raise ServingError(_PRECONDITION, f'Serving signature key "{name}" not found.')
        _validate_input_names(signature, inputs)
        # predict_util.cc checks the output filter before Session::Run checks the dtypes.
        aliases = _output_aliases(signature, output_filter)
        feeds = _feeds(signature, inputs)
        outputs = self._run(feeds, [signature.outputs[alias].name for alias in aliases])
        return name, dict(zip(aliases, outputs))

    def classify(self, serialized_examples, signature_name=""):
        """Classifies serialized ``tf.Example``s as TF Serving's Classify does.

        Args:
          serialized_examples: a list of serialized ``tf.Example`` bytes (a
            request's examples, each already merged with its context).
          signature_name: the signature; "" means "serving_default".

        Returns:
          ``(resolved signature name, classes, scores)``: a ``[batch, n]``
          string array (None when the signature has no ``classes``) and a
          ``[batch, n]`` float32 array (None when it has no ``scores``).

        Raises:
          ServingError: TF Serving's status for an unknown or unfit
            signature, no examples, or outputs of the wrong shape or dtype.
        """
        name, signature = self._example_signature(signature_name)
        input_name = _classify_input(signature)
        keys = [key for key in (CLASSIFY_CLASSES, CLASSIFY_SCORES) if key in signature.outputs]
        examples = _example_tensor(serialized_examples)
        found = dict(zip(keys, self._run({input_name: examples},
                                         [signature.outputs[key].name for key in keys])))
        classes, scores = found.get(CLASSIFY_CLASSES), found.get(CLASSIFY_SCORES)
        _check_classify_output(classes, "classes", len(examples), (np.bytes_, np.object_))
        _check_classify_output(scores, "scores", len(examples), (np.float32,))
        if classes is not None and scores is not None and classes.shape[1] != scores.shape[1]:
            raise ServingError(_INVALID, "Tensors class and score should match in dim_size(1). "
                               f"Got {classes.shape[1]} vs. {scores.shape[1]}")
        return name, classes, scores

    def regress(self, serialized_examples, signature_name=""):
        """Regresses serialized ``tf.Example``s as TF Serving's Regress does.

        Args:
          serialized_examples: a list of serialized ``tf.Example`` bytes.
          signature_name: the signature; "" means "serving_default".

        Returns:
          ``(resolved signature name, values)``, a ``[batch]`` float32 array.

        Raises:
          ServingError: TF Serving's status for an unknown or unfit
            signature, no examples, or an output of the wrong shape or dtype.
        """
        name, signature = self._example_signature(signature_name)
        if len(signature.inputs) != 1:
            raise ServingError(_INVALID, "Expected one input Tensor.")
        if len(signature.outputs) != 1:
            raise ServingError(_INVALID, "Expected one output Tensor.")
        # regressor.cc PreProcessRegression: both are INVALID_ARGUMENT.
        if REGRESS_INPUTS not in signature.inputs:
            raise ServingError(_INVALID, "No regression inputs found in SignatureDef: "
                               + _debug_string(signature))
        if REGRESS_OUTPUTS not in signature.outputs:
            raise ServingError(_INVALID, "No regression outputs found in SignatureDef: "
                               + _debug_string(signature))
        examples = _example_tensor(serialized_examples)
        (values,) = self._run({signature.inputs[REGRESS_INPUTS].name: examples},
                              [signature.outputs[REGRESS_OUTPUTS].name])
        if not (values.ndim == 1 or (values.ndim == 2 and values.shape[1] == 1)):
            raise ServingError(_INVALID, "Expected output Tensor shape to be either [batch_size] "
                               f"or [batch_size, 1] but got {_shape_string(values.shape)}")
        # PostProcessRegressionResult's order: shape, batch size, then dtype.
        if len(values) != len(examples):
            raise ServingError(_INVALID, f"Input batch size did not match output batch size: "
                               f"{len(examples)} vs. {len(values)}")
        if values.dtype != np.float32:
            raise ServingError(_INVALID, "Expected output Tensor of DT_FLOAT.  Got: "
                               + _dtype_enum_name(values.dtype))
        return name, values.reshape(-1)

    def metadata(self):
        """The version's signatures as the ``SignatureDefMap`` GetModelMetadata packs."""
        result = get_model_metadata_pb2.SignatureDefMap()
        for key, signature in self.signature_defs.items():
            result.signature_def[key].CopyFrom(signature)
        return result

    def close(self):
        """Closes the session now; later calls fail. Normally left to garbage collection."""
        self._bundle.close()

    def _example_signature(self, signature_name):
        name = signature_name or DEFAULT_SIGNATURE
        signature = self.signature_defs.get(name)
        if signature is None:
            raise ServingError(_INVALID, f"No signature was found with the name: {name}")
        return name, signature

    def _run(self, feeds, fetches):
        """Fetches `fetches` (tensor names) fed ``{tensor name: array}``.

        Runs through a session callable, TensorFlow's C++ ``RunCallable``, as
        TF Serving's ``Session::Run`` does: Python's ``Session.run`` refuses
        feeds outside a tensor's static shape, which TF Serving accepts
        (half_plus_two answers ``[1.0, 2.0]`` though ``x`` is ``[-1, 1]``).
        """
        names = sorted(feeds)
        key = (tuple(names), tuple(fetches))
        with self._lock:
            run = self._callables.get(key)
            if run is None:
                options = config_pb2.CallableOptions(feed=names, fetch=fetches)
                run = self._bundle.session._make_callable_from_options(options)
                self._callables[key] = run
        try:
            return run(*[feeds[name] for name in names])
        except tf.errors.OpError as error:
            raise from_op_error(error) from None

    def __repr__(self):
        return f"Servable({self.name!r}, version={self.version})"


def _validate_input_names(signature, inputs):
    sent, wanted = sorted(inputs), sorted(signature.inputs)
    if len(sent) > len(wanted) or (len(sent) < len(wanted) and not signature.defaults):
        extra = sorted(set(sent) - set(wanted))
        missing = sorted(set(wanted) - set(sent))
        raise ServingError(
            _INVALID, f"input size does not match signature: {len(sent)}!={len(wanted)} "
            f"len({{{','.join(sent)}}}) != len({{{','.join(wanted)}}}). Sent extra: "
            f"{{{','.join(extra)}}}. Missing but required: {{{','.join(missing)}}}.")
    # saved_model::GetInputValues (tensorflow/cc/saved_model/util.cc): the signature's
    # inputs first, each sent or defaulted; then any sent name the signature lacks.
    for key in wanted:
        if key not in inputs and key not in signature.defaults:
            raise ServingError(
                _INVALID, f"Signature input alias: {key}(feed name: "
                f"{signature.inputs[key].name}) not found in request and no default value "
                f"provided. Inputs expected to be in the request {{{','.join(sent)}}}, or "
                f"default input alias set: {','.join(sorted(signature.defaults))}")
    used = [key for key in sent if key in signature.inputs]
    if sent and len(used) != len(sent):
        raise ServingError(_INVALID, f"Inputs contains invalid name. Used request inputs: "
                           f"{','.join(used)}, request input: {','.join(sent)}")


def _feeds(signature, inputs):
    """The session's feeds, dtypes checked as the session checks its arguments."""
    feeds = {}
    for index, key in enumerate(sorted(inputs)):
        value = np.asarray(inputs[key])
        expected = signature.inputs[key].dtype
        given = _dtype_enum(value.dtype)
        if given != expected:
            raise ServingError(_INVALID, f"Expects arg[{index}] to be {_dtype_string(expected)} "
                               f"but {_dtype_string(given)} is provided")
        feeds[signature.inputs[key].name] = value
    return feeds


def _output_aliases(signature, output_filter):
    if not output_filter:
        return list(signature.outputs)
    seen = []
    for alias in output_filter:
        if alias not in signature.outputs:
            raise ServingError(
                _INVALID, f"output tensor alias not found in signature: {alias} Outputs "
                f"expected to be in the set {{{','.join(sorted(signature.outputs))}}}.")
        if alias in seen:
            raise ServingError(_INVALID, f"duplicate output tensor alias: {alias}")
        seen.append(alias)
    return seen


def _classify_input(signature):
    """The examples tensor's name; TF Serving's PreProcessClassification checks."""
    if len(signature.inputs) != 1:
        raise ServingError(_INVALID, "Expected one input Tensor.")
    if len(signature.outputs) not in (1, 2):
        raise ServingError(_INVALID, "Expected one or two output Tensors, found "
                           f"{len(signature.outputs)}")
    # classifier.cc PreProcessClassification: both are INVALID_ARGUMENT.
    if CLASSIFY_INPUTS not in signature.inputs:
        raise ServingError(_INVALID, "No classification inputs found in SignatureDef: "
                           + _debug_string(signature))
    if CLASSIFY_CLASSES not in signature.outputs and CLASSIFY_SCORES not in signature.outputs:
        raise ServingError(
            _INVALID, "Expected classification signature outputs to contain at least one "
            f'of "{CLASSIFY_CLASSES}" or "{CLASSIFY_SCORES}". Signature was: '
            + _debug_string(signature))
    return signature.inputs[CLASSIFY_INPUTS].name


def _example_tensor(serialized_examples):
    examples = np.asarray(list(serialized_examples), dtype=object).reshape(-1)
    if not len(examples):
        raise ServingError(_INVALID, "Input is empty.")
    return examples


def _check_classify_output(tensor, what, count, dtypes):
    if tensor is None:
        return
    if tensor.ndim != 2:
        raise ServingError(_INVALID, "Expected Tensor shape: [batch_size num_classes] but got "
                           + _shape_string(tensor.shape))
    if tensor.dtype.type not in dtypes:
        kind = "DT_STRING" if what == "classes" else "DT_FLOAT"
        raise ServingError(_INVALID, f"Expected {what} Tensor of {kind}. Got: "
                           + _dtype_enum_name(tensor.dtype))
    if tensor.shape[0] != count:
        raise ServingError(_INVALID, f"Expected {what} output batch size of {count}. "
                           f"Got: {tensor.shape[0]}")


def _dtype_enum(np_dtype):
    if np_dtype.kind in "SUO":
        return types_pb2.DT_STRING
    return tf.as_dtype(np_dtype).as_datatype_enum


def _dtype_enum_name(np_dtype):
    return types_pb2.DataType.Name(_dtype_enum(np_dtype))


def _dtype_string(enum):
    """TensorFlow's DataTypeString: DT_FLOAT -> "float"."""
    return types_pb2.DataType.Name(enum)[len("DT_"):].lower()


def _shape_string(shape):
    return "[" + ",".join(str(d) for d in shape) + "]"


def _debug_string(message):
    return text_format.MessageToString(message)
