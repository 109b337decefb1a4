"""TF Serving's gRPC API on the official generated servicer classes.

`add_servicers` puts ``tensorflow.serving.PredictionService`` (Predict,
Classify, Regress, GetModelMetadata) and ``tensorflow.serving.ModelService``
(GetModelStatus, HandleReloadConfigRequest) on a ``grpc.server``, answering
from a `ServableManager` as TF Serving's ``*_impl.cc`` files answer:
responses echo the model spec with the resolved signature and the served
version, Predict outputs travel in typed fields, errors carry TF Serving's
status code and text, cut after 1024 characters as ``grpc_status_util.cc``
cuts them. MultiInference is left to the generated base class (UNIMPLEMENTED).
"""

import functools
import time

import grpc
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from tfopt.serving import _grpc_tensors
from tfopt.serving._errors import ServingError
from tfopt.serving._errors import from_op_error

SIGNATURE_DEF_FIELD = "signature_def"
MESSAGE_LIMIT = 1024  # grpc_status_util.cc kErrorMessageLimit


def status_message(message):
    """`message` as TF Serving's gRPC status carries it: cut after 1024 characters."""
    if len(message) > MESSAGE_LIMIT:
        return message[:MESSAGE_LIMIT] + "...TRUNCATED"
    return message


def _rpc(api):
    """Wraps an RPC body: its ServingError (or TensorFlow error) becomes the call's status.

    Args:
      api: the ``API`` label the call is counted under in the metrics
        ("Predict", "Classify", "Regress", as prediction_service_impl.cc
        records them), or None for a call TF Serving does not count
        (GetModelMetadata, GetModelStatus).
    """

    def wrap(method):
        @functools.wraps(method)
        def handler(self, request, context):
            start = time.perf_counter()
            code, message, response = grpc.StatusCode.OK, "", None
            try:
                response = method(self, request, context)
            except ServingError as error:
                code, message = error.code, error.message
            except tf.errors.OpError as error:  # a session error the servable let through
                error = from_op_error(error)
                code, message = error.code, error.message
            except Exception as error:  # pylint: disable=broad-except  (the server lives on)
                logging.exception("tfopt-serve: gRPC %s failed", method.__name__)
                code, message = grpc.StatusCode.INTERNAL, f"{type(error).__name__}: {error}"
            metrics = getattr(self, "metrics", None)
            if metrics is not None and api is not None:
                metrics.record(request.model_spec.name, api, code, time.perf_counter() - start,
                               "GRPC")
            if code != grpc.StatusCode.OK:
                context.abort(code, status_message(message))
            return response

        return handler

    return wrap


def _require_model_spec(request):
    if not request.HasField("model_spec"):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")
    return request.model_spec


def _version_choice(model_spec):
    """(version, label) of a ModelSpec; None for the one it does not set."""
    which = model_spec.WhichOneof("version_choice")
    version = model_spec.version.value if which == "version" else None
    label = model_spec.version_label if which == "version_label" else None
    return version, label


def _echo_model_spec(target, servable, signature_name=None):
    """util.cc MakeModelSpec: the name, the resolved signature and the served version."""
    target.name = servable.name
    if signature_name is not None:
        target.signature_name = signature_name
    target.version.value = servable.version


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """``tensorflow.serving.PredictionService`` over a ServableManager.

    Args:
      manager: the `ServableManager` holding the models.
      batcher: a `Batcher` that merges concurrent Predict calls, or None.
      metrics: the server's metrics recorder, or None.
      request_logger: a `ServerRequestLogger` told of each successful call, or None.
    """

    def __init__(self, manager, batcher=None, metrics=None, request_logger=None):
        self._manager = manager
        self._batcher = batcher
        self.metrics = metrics
        self._request_logger = request_logger

    def _servable(self, request):
        model_spec = _require_model_spec(request)
        version, label = _version_choice(model_spec)
        return self._manager.servable(model_spec.name, version=version, label=label)

    @_rpc("Predict")
    def Predict(self, request, context):
        servable = self._servable(request)
        inputs = {}
        for alias, proto in request.inputs.items():
            try:
                inputs[alias] = _grpc_tensors.to_array(proto)
            except ValueError:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"tensor parsing error: {alias}") from None
        signature_name = request.model_spec.signature_name
        output_filter = tuple(request.output_filter)
        if self._batcher is not None:
            signature_name, outputs = self._batcher.predict(servable, signature_name, inputs,
                                                            output_filter)
        else:
            signature_name, outputs = servable.predict(inputs, signature_name, output_filter)
        if self._request_logger is not None:
            self._request_logger.log_predict(servable, signature_name, inputs, outputs)
        response = predict_pb2.PredictResponse()
        _echo_model_spec(response.model_spec, servable, signature_name)
        for alias, array in outputs.items():
            response.outputs[alias].CopyFrom(_grpc_tensors.typed_proto(array))
        return response

    @_rpc("Classify")
    def Classify(self, request, context):
        servable = self._servable(request)
        examples = _serialized_examples(request.input)
        signature_name, classes, scores = servable.classify(examples,
                                                            request.model_spec.signature_name)
        if self._request_logger is not None:
            self._request_logger.log_classify(servable, signature_name, examples, classes,
                                              scores)
        response = classification_pb2.ClassificationResponse()
        _echo_model_spec(response.model_spec, servable, signature_name)
        rows = len(classes) if classes is not None else len(scores)
        for row in range(rows):
            classification = response.result.classifications.add()
            count = classes.shape[1] if classes is not None else scores.shape[1]
            for column in range(count):
                entry = classification.classes.add()
                if classes is not None:
                    entry.label = _label(classes[row, column])
                if scores is not None:
                    entry.score = float(scores[row, column])
        return response

    @_rpc("Regress")
    def Regress(self, request, context):
        servable = self._servable(request)
        examples = _serialized_examples(request.input)
        signature_name, values = servable.regress(examples, request.model_spec.signature_name)
        if self._request_logger is not None:
            self._request_logger.log_regress(servable, signature_name, examples, values)
        response = regression_pb2.RegressionResponse()
        _echo_model_spec(response.model_spec, servable, signature_name)
        for value in values.reshape(-1).tolist():
            response.result.regressions.add().value = value
        return response

    @_rpc(None)
    def GetModelMetadata(self, request, context):
        model_spec = _require_model_spec(request)
        if not request.metadata_field:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "GetModelMetadataRequest must specify at least one metadata_field")
        for field in request.metadata_field:
            if field != SIGNATURE_DEF_FIELD:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Metadata field {field} is not supported")
        version, label = _version_choice(model_spec)
        servable = self._manager.servable(model_spec.name, version=version, label=label)
        response = get_model_metadata_pb2.GetModelMetadataResponse()
        # get_model_metadata_impl.cc echoes the name and version only.
        _echo_model_spec(response.model_spec, servable)
        response.metadata[SIGNATURE_DEF_FIELD].Pack(servable.metadata())
        return response


def _serialized_examples(model_input):
    """The tf.Examples of an Input, serialized as TF Serving feeds them.

    With a context, each example is the context's bytes followed by the
    example's (servables/tensorflow/util.cc), so example features override
    context ones when the parser merges them.
    """
    kind = model_input.WhichOneof("kind")
    if kind == "example_list":
        examples = [example.SerializeToString() for example in model_input.example_list.examples]
    elif kind == "example_list_with_context":
        both = model_input.example_list_with_context
        context = both.context.SerializeToString()
        examples = [context + example.SerializeToString() for example in both.examples]
    else:
        examples = []
    # No check here: TF Serving reports "Input is empty." only after the servable
    # lookup and the signature checks (util.cc InputToSerializedExampleTensor), so
    # the Servable raises it.
    return examples


def _label(value):
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


class ModelServicer(model_service_pb2_grpc.ModelServiceServicer):
    """``tensorflow.serving.ModelService`` over a ServableManager.

    Args:
      manager: the `ServableManager` holding the models.
      metrics: the server's metrics recorder, or None.
      request_logger: a `ServerRequestLogger` given each reloaded config, or None.
    """

    def __init__(self, manager, metrics=None, request_logger=None):
        self._manager = manager
        self.metrics = metrics
        self._request_logger = request_logger

    @_rpc(None)
    def GetModelStatus(self, request, context):
        model_spec = _require_model_spec(request)
        version, label = _version_choice(model_spec)
        return self._manager.status(model_spec.name, version=version, label=label)

    @_rpc(None)
    def HandleReloadConfigRequest(self, request, context):
        if request.config.WhichOneof("config") != "model_config_list":
            raise ServingError(
                grpc.StatusCode.INVALID_ARGUMENT,
                "ServerModelConfig type not supported by HandleReloadConfigRequest. Only "
                "ModelConfigList is currently supported")
        if self._request_logger is not None:  # a bad logging_config changes nothing
            try:
                self._request_logger.update(request.config)
            except ValueError as error:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None
        self._manager.reload_config(request.config)
        return model_management_pb2.ReloadConfigResponse()  # status: error_code OK


def add_servicers(server, manager, batcher=None, metrics=None, request_logger=None):
    """Adds TF Serving's PredictionService and ModelService to a ``grpc.server``.

    Args:
      server: a ``grpc.Server`` not yet started.
      manager: the `ServableManager` to answer from.
      batcher: a `Batcher` that merges concurrent Predict calls, or None to
        run each call on its own. Defaults to None.
      metrics: the server's metrics recorder, or None. Defaults to None.
      request_logger: a `ServerRequestLogger` that logs sampled calls and
        follows config reloads, or None. Defaults to None.

    Returns:
      (prediction servicer, model servicer).

    Example:
      >>> server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
      >>> add_servicers(server, manager)
      >>> server.add_insecure_port("127.0.0.1:8500"); server.start()
    """
    if not hasattr(server, "add_generic_rpc_handlers"):
        raise TypeError(f"server must be a grpc.Server (grpc.server(...)); got {server!r}.")
    for method in ("servable", "status", "reload_config"):
        if not callable(getattr(manager, method, None)):
            raise TypeError(f"manager must be a tfopt.serving ServableManager (with a "
                            f"{method}() method); got {manager!r}.")
    prediction = PredictionServicer(manager, batcher, metrics, request_logger)
    model = ModelServicer(manager, metrics, request_logger)
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(prediction, server)
    model_service_pb2_grpc.add_ModelServiceServicer_to_server(model, server)
    return prediction, model
