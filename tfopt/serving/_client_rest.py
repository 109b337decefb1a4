"""The REST side of `Client`: TF Serving's JSON API through requests.

Bodies are written and read by the JSON codec (`_json_client`,
`_json_examples`); an error answer ``{"error": message}`` becomes a
ServingError whose code is the canonical status behind the HTTP status.
"""

import threading
import urllib.parse

import grpc
import requests
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2

from tfopt.serving import _client_examples
from tfopt.serving import _json_client
from tfopt.serving import _json_examples
from tfopt.serving import _json_parse
from tfopt.serving._errors import ServingError
from tfopt.serving._errors import http_status

# Several codes share an HTTP status (400: INVALID_ARGUMENT, FAILED_PRECONDITION,
# OUT_OF_RANGE); the first listed is the one a client reports for it.
_PREFERRED = (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.ABORTED, grpc.StatusCode.INTERNAL)
_CODES = {}
for _code in _PREFERRED + tuple(grpc.StatusCode):
    if _code != grpc.StatusCode.OK:
        _CODES.setdefault(http_status(_code), _code)
# Statuses the HTTP layer answers itself, not TF Serving's status mapping.
_CODES.setdefault(413, grpc.StatusCode.RESOURCE_EXHAUSTED)


def status_code(http):
    """The canonical gRPC code behind an HTTP status of TF Serving's REST API."""
    if http in _CODES:
        return _CODES[http]
    return grpc.StatusCode.INVALID_ARGUMENT if 400 <= http < 500 else grpc.StatusCode.UNKNOWN


def _error_message(response):
    try:
        document = _json_parse.parse_json(response.content)
        if isinstance(document, dict) and "error" in document:
            return str(document["error"])
    except (_json_parse.JsonTensorError, ValueError):
        pass
    return f"HTTP {response.status_code}: {response.text[:1024]}"


class RestTransport:
    """Calls one model through TF Serving's REST endpoints."""

    def __init__(self, host, port, model_name):
        self.target = f"http://{host}:{port}"
        self._model = f"{self.target}/v1/models/{urllib.parse.quote(model_name, safe='')}"
        # One requests.Session (its connection pool) per thread.
        self._local = threading.local()
        self._sessions = []

    def _session(self):
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            self._sessions.append(session)
        return session

    def close(self):
        for session in self._sessions:
            session.close()

    def _url(self, version, label, suffix=""):
        if version is not None:
            return f"{self._model}/versions/{version}{suffix}"
        if label is not None:
            return f"{self._model}/labels/{urllib.parse.quote(label, safe='')}{suffix}"
        return self._model + suffix

    def _send(self, method, url, timeout, body=None):
        try:
            response = self._session().request(method, url, data=body, timeout=timeout)
        except requests.Timeout:
            raise ServingError(grpc.StatusCode.DEADLINE_EXCEEDED,
                               f"Deadline Exceeded: no answer from {url} within "
                               f"{timeout:.3g} s") from None
        except requests.ConnectionError as error:
            raise ServingError(grpc.StatusCode.UNAVAILABLE,
                               f"cannot connect to the REST server {self.target}: "
                               f"{error}") from None
        if response.status_code != 200:
            raise ServingError(status_code(response.status_code), _error_message(response))
        return response.content

    def _decoded(self, decode, body):
        try:
            return decode(body)
        except _json_parse.JsonTensorError as error:
            raise ServingError(grpc.StatusCode.INTERNAL,
                               f"unreadable answer from {self.target}: {error.message}") from None

    def predict(self, inputs, signature_name, version, label, timeout, form, output_dtypes):
        body = _json_client.encode_predict_request(inputs, form, signature_name)
        answer = self._send("POST", self._url(version, label, ":predict"), timeout, body)
        return self._decoded(lambda text: _json_client.decode_predict_response(
            text, output_dtypes), answer)

    def _examples(self, examples, context, signature_name):
        features = [_client_examples.to_features(item) for item in examples]
        context = None if context is None else _client_examples.to_features(context)
        return _json_examples.encode_examples_request(features, context, signature_name)

    def classify(self, examples, context, signature_name, version, label, timeout):
        body = self._examples(examples, context, signature_name)
        answer = self._send("POST", self._url(version, label, ":classify"), timeout, body)
        return self._decoded(_json_examples.decode_classify_response, answer)

    def regress(self, examples, context, signature_name, version, label, timeout):
        body = self._examples(examples, context, signature_name)
        answer = self._send("POST", self._url(version, label, ":regress"), timeout, body)
        return self._decoded(_json_examples.decode_regress_response, answer)

    def _document(self, url, timeout):
        return self._decoded(_json_client.json_document, self._send("GET", url, timeout))

    def metadata(self, version, label, timeout):
        document = self._document(self._url(version, label, "/metadata"), timeout)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        json_format.ParseDict(document.get("metadata", {}).get("signature_def", {}),
                              signatures, ignore_unknown_fields=True)
        return signatures

    def status(self, version, label, timeout):
        document = self._document(self._url(version, label), timeout)
        return json_format.ParseDict(document, get_model_status_pb2.GetModelStatusResponse(),
                                     ignore_unknown_fields=True)
