"""ServingError and the HTTP statuses TF Serving's REST server maps status codes to."""

import grpc
import pytest

from tfopt.serving._errors import ServingError, http_status


@pytest.mark.parametrize("code, status", [
    (grpc.StatusCode.OK, 200), (grpc.StatusCode.INVALID_ARGUMENT, 400),
    (grpc.StatusCode.FAILED_PRECONDITION, 400), (grpc.StatusCode.OUT_OF_RANGE, 400),
    (grpc.StatusCode.NOT_FOUND, 404), (grpc.StatusCode.ALREADY_EXISTS, 409),
    (grpc.StatusCode.ABORTED, 409), (grpc.StatusCode.PERMISSION_DENIED, 403),
    (grpc.StatusCode.UNAUTHENTICATED, 401), (grpc.StatusCode.RESOURCE_EXHAUSTED, 429),
    (grpc.StatusCode.DEADLINE_EXCEEDED, 504), (grpc.StatusCode.UNIMPLEMENTED, 501),
    (grpc.StatusCode.UNAVAILABLE, 503), (grpc.StatusCode.CANCELLED, 499),
    (grpc.StatusCode.UNKNOWN, 500), (grpc.StatusCode.INTERNAL, 500),
    (grpc.StatusCode.DATA_LOSS, 500),
])
def test_http_status_follows_tf_serving(code, status):
    assert http_status(code) == status
    assert http_status(code.value[0]) == status


def test_serving_error_carries_code_and_message():
    error = ServingError(5, "Servable not found for request: Latest(m)")
    assert error.code is grpc.StatusCode.NOT_FOUND
    assert error.message == str(error) == "Servable not found for request: Latest(m)"


@pytest.mark.parametrize("code", [99, "teapot", 3.0, True, None])
def test_bad_code_is_a_type_error(code):
    with pytest.raises(TypeError, match="grpc.StatusCode"):
        ServingError(code, "x")
