"""Which TF Serving REST call a method and path are, read as TF Serving reads them.

``http_rest_api_util.cc`` matches the raw path, query string included, against
two case-insensitive regexes with RE2::FullMatch (POST for the prediction
verbs, GET for status and metadata); anything else under ``/v1/`` is
"Malformed request: <METHOD> <path>". The model name and label are URL-decoded
(``curl_easy_unescape``); the version must fit an int64.
"""

import dataclasses
import re
import urllib.parse

import grpc

from tfopt.serving._errors import ServingError

# kPredictionApiGegex and kModelStatusApiRegex of http_rest_api_util.cc.
_PREDICTION = re.compile(
    r"/v1/models/([^/:]+)(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?"
    r":(classify|regress|predict)", re.IGNORECASE)
_STATUS = re.compile(
    r"/v1/models(?:/([^/:]+))?(?:(?:/versions/(\d+))|(?:/labels/([^/:]+)))?(?:/(metadata))?",
    re.IGNORECASE)
# HttpRestApiHandler::kPathRegex: the paths the REST handler answers at all.
_API = re.compile(r"/v1/.*", re.IGNORECASE | re.DOTALL)
_INT64_MAX = 2**63 - 1


@dataclasses.dataclass
class Call:
    """One REST API call.

    Attributes:
      api: ``"predict"``, ``"classify"``, ``"regress"``, ``"metadata"`` or ``"status"``.
      model_name: the URL-decoded model name ("" when the path has none).
      version: the version asked for, or None.
      label: the version label asked for, or None.
    """

    api: str
    model_name: str
    version: object = None
    label: object = None


def is_api_path(path):
    """Whether TF Serving's REST handler answers `path` (else the HTTP server's 404)."""
    return _API.fullmatch(path) is not None


def _decode(text):
    # curl_easy_unescape decodes %XX only ('+' stays '+'), into raw bytes.
    return urllib.parse.unquote_to_bytes(text).decode("utf-8", "surrogateescape")


def _version(text):
    if not text:
        return None
    version = int(text)
    if version > _INT64_MAX:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Failed to convert version: {text} to numeric.")
    return version


def parse_call(method, path):
    """The call `method` and `path` (query string included) make, as TF Serving routes it.

    Raises:
      ServingError: INVALID_ARGUMENT with TF Serving's text for a malformed
        request, a version past int64, or a status request without a model name.
    """
    malformed = ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                             f"Malformed request: {method} {path}")
    if method == "POST":
        match = _PREDICTION.fullmatch(path)
        if match is None:
            raise malformed
        name, version, label, api = match.groups()
        # The verb is matched case-insensitively but compared exactly afterwards, once
        # ParseModelInfo has converted the version (http_rest_api_handler.cc).
        if api not in ("classify", "regress", "predict"):
            _version(version)
            raise malformed
    elif method == "GET":
        match = _STATUS.fullmatch(path)
        if match is None:
            raise malformed
        name, version, label, subresource = match.groups()
        api = "metadata" if subresource == "metadata" else "status"
    else:
        raise malformed
    call = Call(api, _decode(name or ""), _version(version),
                None if label is None else _decode(label))
    if not call.model_name:
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "Missing model name in request.")
    return call
