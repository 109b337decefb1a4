"""`Client`: calls a model on TF Serving (or tfopt-serve) over gRPC or REST.

Numpy arrays in, numpy arrays out, the same through either protocol. gRPC goes
through TF Serving's official stubs (`_client_grpc`), REST through requests
and TF Serving's JSON formats (`_client_rest`). A call that finds the server
unavailable (not started yet, restarting, connection refused) is retried with
exponential backoff, up to `retries` times and never past the call's deadline.
"""

import collections.abc
import contextlib
import math
import threading
import time

import grpc
import numpy as np

from tfopt.export import _layout
from tfopt.serving import _client_examples
from tfopt.serving import _json_tensor as jt
from tfopt.serving._errors import ServingError
from tfopt.serving._json_request import COLUMNAR, ROW

PROTOCOLS = ("grpc", "rest")
DEFAULT_SIGNATURE = "serving_default"
_FIRST_BACKOFF = 0.05  # seconds; doubled after each failed attempt
_MAX_BACKOFF = 1.0


def _validate_name(value, argument, allow_none=False):
    if value is None and allow_none:
        return
    if not isinstance(value, str) or not value:
        allowed = "a non-empty str or None" if allow_none else "a non-empty str"
        raise (TypeError if not isinstance(value, str) else ValueError)(
            f"{argument} must be {allowed}; got {value!r}.")


def _validate_port(value, argument):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 65536:
        raise ValueError(f"{argument} must be a port number, an int in 1..65535; got {value!r}.")


def _validate_version(version, label):
    if version is not None and (isinstance(version, bool) or
                                not isinstance(version, (int, np.integer)) or version < 0):
        raise ValueError(f"version must be None or a version number, an int >= 0; got "
                         f"{version!r}.")
    _validate_name(label, "label", allow_none=True)
    if version is not None and label is not None:
        raise ValueError(f"give version or label, not both (got version={version!r}, "
                         f"label={label!r}); TF Serving's ModelSpec holds one of them.")
    return None if version is None else int(version)


def _validate_inputs(inputs):
    """{name: array} for a dict of inputs, {None: array} for a single unnamed one."""
    if isinstance(inputs, collections.abc.Mapping):
        if not inputs:
            raise ValueError("inputs is an empty dict; give input name -> array for each "
                             "input of the signature.")
        for name in inputs:
            if not isinstance(name, str) or not name:
                raise TypeError(f"input names must be non-empty str; got {name!r} in inputs.")
        arrays = {name: np.asarray(array) for name, array in inputs.items()}
    elif inputs is None or isinstance(inputs, (str, bytes)):
        raise TypeError(f"inputs must be a numpy array (a signature with one input) or a dict "
                        f"of input name -> array; got {inputs!r}.")
    else:
        arrays = {None: np.asarray(inputs)}
    for name, array in arrays.items():
        if array.dtype.kind not in "biufcSUO":
            raise TypeError(f"input {name or 'inputs'} has dtype {array.dtype}, which TF "
                            "Serving cannot take; give numbers, bools, str or bytes.")
    return arrays


def _validate_form(form):
    if form is not None and form not in (ROW, COLUMNAR):
        raise ValueError(f"form must be None (row when the inputs share a batch size, "
                         f"else columnar), {ROW!r} or {COLUMNAR!r}; got {form!r}.")


def _json_readable(number):
    """Whether the JSON codec reads outputs of DataType `number` (else it infers one)."""
    try:
        jt.datatype(number)
    except TypeError:
        return False
    return True


def _rest_form(arrays, form):
    if form is not None:
        return form
    sizes = {array.shape[0] if array.ndim else 0 for array in arrays.values()}
    return ROW if len(sizes) == 1 and 0 not in sizes else COLUMNAR


class Client:
    """A TF Serving client for one model, over gRPC or REST.

    Args:
      host: the server's host name or address. Defaults to "localhost".
      model_name: the model to call (``--model_name`` of the server).
      grpc_port: the gRPC port. Defaults to 8500, TF Serving's ``--port``.
      rest_port: the REST port. Defaults to 8501, the official image's
        ``--rest_api_port``.
      protocol: ``"grpc"`` or ``"rest"``. Defaults to "grpc".
      timeout: seconds each call may take in all, retries included (its
        deadline). Defaults to 10.0.
      retries: how many times a call is retried when the server is
        unavailable or refuses the connection, waiting 0.05 s, then twice as
        long each time (at most 1 s). Defaults to 3.

    Errors the server answers raise `ServingError` with its status code and
    message (over REST the code behind the HTTP status: 400 INVALID_ARGUMENT,
    404 NOT_FOUND ...).

    Example:
      >>> client = Client(model_name="half_plus_two")
      >>> client.predict(np.array([[1.0], [2.0]], np.float32))
      array([[2.5], [3. ]], dtype=float32)
    """

    def __init__(self, host="localhost", model_name=None, grpc_port=_layout.GRPC_PORT,
                 rest_port=_layout.REST_PORT, protocol="grpc", timeout=10.0, retries=3):
        _validate_name(host, "host")
        _validate_name(model_name, "model_name")
        _validate_port(grpc_port, "grpc_port")
        _validate_port(rest_port, "rest_port")
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {PROTOCOLS}; got {protocol!r}.")
        if (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or
                not math.isfinite(timeout) or timeout <= 0):
            raise ValueError(f"timeout must be a number of seconds > 0; got {timeout!r}.")
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be an int >= 0; got {retries!r}.")
        self.host, self.model_name, self.protocol = host, model_name, protocol
        self.timeout, self.retries = float(timeout), retries
        if protocol == "grpc":
            from tfopt.serving._client_grpc import GrpcTransport
            self._transport = GrpcTransport(host, grpc_port, model_name)
        else:
            from tfopt.serving._client_rest import RestTransport
            self._transport = RestTransport(host, rest_port, model_name)
        self._signatures = {}
        self._lock = threading.Lock()
        self._local = threading.local()  # the deadline of the call under way in each thread

    def __repr__(self):
        return (f"Client({self._transport.target}, model_name={self.model_name!r}, "
                f"protocol={self.protocol!r})")

    def close(self):
        """Closes the connections; the client cannot be used afterwards."""
        self._transport.close()

    def __enter__(self):
        return self

    def __exit__(self, *unused):
        self.close()

    @contextlib.contextmanager
    def _one_deadline(self):
        """The transport calls made inside (a metadata lookup, then the call) share one deadline."""
        outer = getattr(self._local, "deadline", None)
        if outer is None:
            self._local.deadline = time.monotonic() + self.timeout
        try:
            yield
        finally:
            if outer is None:
                self._local.deadline = None

    def _call(self, method, *args, **kwargs):
        """Calls the transport, retrying while the server is unavailable, within the deadline."""
        deadline = getattr(self._local, "deadline", None) or time.monotonic() + self.timeout
        backoff = _FIRST_BACKOFF
        for attempt in range(self.retries + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                                   f"Deadline Exceeded: no answer from {self._transport.target} "
                                   f"within timeout={self.timeout:g} s ({attempt} attempts)")
            try:
                return method(*args, timeout=remaining, **kwargs)
            except ServingError as error:
                if error.code != grpc.StatusCode.UNAVAILABLE or attempt == self.retries:
                    raise
            time.sleep(min(backoff, max(deadline - time.monotonic(), 0)))
            backoff = min(backoff * 2, _MAX_BACKOFF)
        raise AssertionError("unreachable")

    def _signature(self, signature_name, version, label):
        """The SignatureDef a call will run, from the model's metadata; None if it has none.

        Cached per (signature, version, label): the metadata is asked for once.
        """
        key = (signature_name or DEFAULT_SIGNATURE, version, label)
        with self._lock:
            if key in self._signatures:
                return self._signatures[key]
        signatures = self.metadata(version=version, label=label).signature_def
        if key[0] not in signatures:
            return None  # the call itself gets the server's error
        with self._lock:
            self._signatures[key] = signatures[key[0]]
        return signatures[key[0]]

    def _single_input_name(self, signature_name, version, label):
        """The one input of the signature, which gRPC needs by name."""
        signature = self._signature(signature_name, version, label)
        name = signature_name or DEFAULT_SIGNATURE
        if signature is None:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f'Serving signature key "{name}" not found.')
        if len(signature.inputs) != 1:
            raise ValueError(f"signature {name!r} of {self.model_name!r} takes the inputs "
                             f"{sorted(signature.inputs)}; give inputs as a dict keyed by them.")
        return next(iter(signature.inputs))

    def _output_dtypes(self, signature_name, version, label):
        """{alias: DataType} of the signature's outputs, so REST answers read as gRPC ones.

        JSON numbers carry no dtype: without this a float64 output would be read
        as float32 and an int32 one as int64.
        """
        signature = self._signature(signature_name, version, label)
        if signature is None:
            return None
        return {alias: info.dtype for alias, info in signature.outputs.items()
                if _json_readable(info.dtype)}

    def predict(self, inputs, signature_name=None, version=None, label=None, form=None):
        """Runs a signature of the model on `inputs`.

        Args:
          inputs: a numpy array (or array-like) for a signature with one
            input, or a dict of input name -> array. Numbers are cast to the
            signature's number types (as TF Serving reads JSON numbers), so
            float64 arrays and Python lists can feed a float32 input.
          signature_name: the signature; None for ``serving_default``.
            Defaults to None.
          version: the model version to call; None for the latest. Defaults to None.
          label: a version label (e.g. "stable") instead of a version. Defaults to None.
          form: REST only: ``"row"`` (``instances``) or ``"columnar"``
            (``inputs``); None picks row when all inputs share a batch size,
            else columnar. Defaults to None.

        Returns:
          A numpy array when the signature has one output (or one is
          returned), else a dict of output alias -> array.

        Raises:
          ServingError: the server's error (code and message), UNAVAILABLE
            after the retries, DEADLINE_EXCEEDED past the timeout.
        """
        _validate_name(signature_name, "signature_name", allow_none=True)
        version = _validate_version(version, label)
        _validate_form(form)
        arrays = _validate_inputs(inputs)
        if self.protocol == "grpc" and form is not None:
            raise ValueError(f"form={form!r} applies to protocol='rest' only; gRPC sends "
                             "whole tensors.")
        with self._one_deadline():
            return self._predict(arrays, signature_name, version, label, form)

    def _predict(self, arrays, signature_name, version, label, form):
        if self.protocol == "rest":
            rest_form = _rest_form(arrays, form)
            body_inputs = arrays[None] if None in arrays else arrays
            output_dtypes = self._output_dtypes(signature_name, version, label)
            return self._call(self._transport.predict, body_inputs, signature_name, version,
                              label, form=rest_form, output_dtypes=output_dtypes)
        if None in arrays:
            arrays = {self._single_input_name(signature_name, version, label): arrays[None]}
        arrays = self._as_input_dtypes(arrays, signature_name, version, label)
        return self._call(self._transport.predict, arrays, signature_name, version, label)

    def _as_input_dtypes(self, arrays, signature_name, version, label):
        """Numeric inputs cast to the signature's numeric dtypes, as REST's JSON is.

        TF Serving's Predict does not cast a float64 tensor to a float32 input
        (INVALID_ARGUMENT), while the same values sent as JSON are read as
        float32; casting here makes ``predict([[1.0]])`` (a float64 array)
        work through either protocol. Other mismatches go to the server as
        they are, so it answers with its own error.
        """
        signature = self._signature(signature_name, version, label)
        if signature is None:
            return arrays
        cast = {}
        for name, array in arrays.items():
            info = signature.inputs.get(name)
            wanted = jt.numpy_dtype(info.dtype) if info is not None and _json_readable(
                info.dtype) else None
            numeric = wanted is not None and np.dtype(wanted).kind in "biuf"
            if numeric and array.dtype.kind in "biuf" and array.dtype != wanted:
                array = array.astype(wanted)
            cast[name] = array
        return cast

    def classify(self, examples, context=None, signature_name=None, version=None, label=None):
        """Classifies tf.Examples with a classify signature.

        Args:
          examples: a non-empty list of dicts (feature name -> value or list:
            float -> float feature, int/bool -> int64, str/bytes -> bytes) or
            of ``tf.train.Example`` protos.
          context: features shared by every example (a dict or an Example), or None.
          signature_name, version, label: as in `predict`.

        Returns:
          (labels, scores): a [batch, n] bytes object array (b"" when the
          signature has no classes) and a [batch, n] float32 array.
        """
        return self._examples_call("classify", examples, context, signature_name, version, label)

    def regress(self, examples, context=None, signature_name=None, version=None, label=None):
        """Regresses tf.Examples with a regress signature; a [batch] float32 array.

        Args are those of `classify`.
        """
        return self._examples_call("regress", examples, context, signature_name, version, label)

    def _examples_call(self, method, examples, context, signature_name, version, label):
        _validate_name(signature_name, "signature_name", allow_none=True)
        version = _validate_version(version, label)
        protos, context_proto = _client_examples.validate_examples(examples, context)
        if self.protocol == "grpc":
            examples, context = protos, context_proto
        return self._call(getattr(self._transport, method), examples, context, signature_name,
                          version, label)

    def metadata(self, version=None, label=None):
        """The model's signatures: a ``SignatureDefMap`` (``.signature_def[name]``)."""
        version = _validate_version(version, label)
        return self._call(self._transport.metadata, version, label)

    def status(self, version=None, label=None):
        """The model's versions and states: a ``GetModelStatusResponse``."""
        version = _validate_version(version, label)
        return self._call(self._transport.status, version, label)
