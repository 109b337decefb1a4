"""The gRPC side of `Client`: TF Serving's official stubs over one channel."""

import grpc
import numpy as np
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2

from tfopt.serving import _grpc_tensors
from tfopt.serving._errors import ServingError

SIGNATURE_DEF_FIELD = "signature_def"
# TF Serving accepts messages up to INT32_MAX (server.cc); so does the client.
# Reconnection is retried after 100 ms, not gRPC's default 1 s, so a retry
# after a refused connection finds a server that has just started.
_CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


def _fill_model_spec(spec, model_name, signature_name, version, label):
    spec.name = model_name
    if signature_name is not None:
        spec.signature_name = signature_name
    if version is not None:
        spec.version.value = version
    elif label is not None:
        spec.version_label = label


def _fill_input(model_input, examples, context):
    if context is None:
        model_input.example_list.examples.extend(examples)
    else:
        model_input.example_list_with_context.context.CopyFrom(context)
        model_input.example_list_with_context.examples.extend(examples)


class GrpcTransport:
    """Calls one model through PredictionService and ModelService stubs."""

    def __init__(self, host, port, model_name):
        self.target = f"{host}:{port}"
        self._model_name = model_name
        self._channel = grpc.insecure_channel(self.target, options=_CHANNEL_OPTIONS)
        self._prediction = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)

    def close(self):
        self._channel.close()

    def _call(self, method, request, timeout):
        try:
            return method(request, timeout=timeout)
        except grpc.RpcError as error:
            code = error.code()
            message = error.details() or ""
            if code == grpc.StatusCode.UNAVAILABLE:
                message = f"{message} (gRPC server {self.target})"
            raise ServingError(code, message) from None

    def predict(self, inputs, signature_name, version, label, timeout):
        request = predict_pb2.PredictRequest()
        _fill_model_spec(request.model_spec, self._model_name, signature_name, version, label)
        for alias, array in inputs.items():
            request.inputs[alias].CopyFrom(_grpc_tensors.request_proto(array))
        response = self._call(self._prediction.Predict, request, timeout)
        outputs = {alias: _grpc_tensors.to_array(proto)
                   for alias, proto in response.outputs.items()}
        return next(iter(outputs.values())) if len(outputs) == 1 else outputs

    def classify(self, examples, context, signature_name, version, label, timeout):
        request = classification_pb2.ClassificationRequest()
        _fill_model_spec(request.model_spec, self._model_name, signature_name, version, label)
        _fill_input(request.input, examples, context)
        response = self._call(self._prediction.Classify, request, timeout)
        rows = response.result.classifications
        labels = np.array([[entry.label.encode("utf-8") for entry in row.classes]
                           for row in rows], dtype=object)
        scores = np.array([[entry.score for entry in row.classes] for row in rows], np.float32)
        return labels.reshape(len(rows), -1), scores.reshape(len(rows), -1)

    def regress(self, examples, context, signature_name, version, label, timeout):
        request = regression_pb2.RegressionRequest()
        _fill_model_spec(request.model_spec, self._model_name, signature_name, version, label)
        _fill_input(request.input, examples, context)
        response = self._call(self._prediction.Regress, request, timeout)
        return np.array([entry.value for entry in response.result.regressions], np.float32)

    def metadata(self, version, label, timeout):
        request = get_model_metadata_pb2.GetModelMetadataRequest(
            metadata_field=[SIGNATURE_DEF_FIELD])
        _fill_model_spec(request.model_spec, self._model_name, None, version, label)
        response = self._call(self._prediction.GetModelMetadata, request, timeout)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata[SIGNATURE_DEF_FIELD].Unpack(signatures)
        return signatures

    def status(self, version, label, timeout):
        request = get_model_status_pb2.GetModelStatusRequest()
        _fill_model_spec(request.model_spec, self._model_name, None, version, label)
        return self._call(self._models.GetModelStatus, request, timeout)
