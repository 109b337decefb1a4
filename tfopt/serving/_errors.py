"""ServingError: a request's failure, with TF Serving's status code and text.

TF Serving answers every failure with an absl status: a canonical code
(INVALID_ARGUMENT, NOT_FOUND, ...) and a message. The gRPC servicers send the
code and message as they are; the REST app maps the code to an HTTP status
(`http_status`, ``http_server.cc`` ``ToHTTPStatusCode``) and writes
``{"error": message}``. Both front ends raise and catch this one class.
"""

import grpc

# ToHTTPStatusCode in model_servers/http_server.cc; OK is 200 and anything it
# does not list (UNKNOWN, INTERNAL, DATA_LOSS) is 500.
_HTTP = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
}

# absl, TensorFlow (tf.errors.*.error_code) and gRPC share the canonical numbers.
_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}


class ServingError(Exception):
    """A failed request: TF Serving's canonical status code and message.

    Args:
      code: a ``grpc.StatusCode`` (or its canonical number, as
        ``tf.errors.OpError.error_code`` gives it).
      message: the text TF Serving answers with.

    Attributes:
      code: the ``grpc.StatusCode``.
      message: the text, as given.

    Example:
      >>> error = ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(m)")
      >>> http_status(error.code)
      404
    """

    def __init__(self, code, message):
        self.code = status_code(code)
        self.message = str(message)
        super().__init__(self.message)

    def __repr__(self):
        return f"ServingError({self.code.name}, {self.message!r})"


def status_code(code):
    """`code` as a ``grpc.StatusCode``; accepts the enum, its canonical number or its name."""
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, str) and code.upper() in grpc.StatusCode.__members__:
        return grpc.StatusCode[code.upper()]
    if isinstance(code, int) and not isinstance(code, bool) and code in _BY_NUMBER:
        return _BY_NUMBER[code]
    raise TypeError(f"code must be a grpc.StatusCode (or its canonical number or name), got "
                    f"{type(code).__name__} {code!r}; use e.g. grpc.StatusCode.INVALID_ARGUMENT.")


def http_status(code):
    """The HTTP status TF Serving's REST server answers a status `code` with."""
    return _HTTP.get(status_code(code), 500)


def from_op_error(error):
    """A TensorFlow ``OpError`` (a failed session run) as the status TF Serving passes on."""
    return ServingError(_BY_NUMBER.get(error.error_code, grpc.StatusCode.UNKNOWN), error.message)
