"""TF Serving's REST API as an ASGI app (starlette), served by uvicorn in ``tfopt-serve``.

``make_rest_app`` answers TF Serving's endpoints (``model_servers/
http_rest_api_handler.cc``): status, metadata, ``:predict``, ``:classify`` and
``:regress`` of ``/v1/models/M[/versions/N|/labels/L]``. Every ``/v1`` answer
is ``application/json``; failures are ``{"error": message}`` with the HTTP code
of the status (`http_status`); paths outside ``/v1/`` get the HTTP server's 404.
Request bodies over ``max_body_bytes`` are refused with 413 before they are
read. Model calls block (TensorFlow), so they run in a thread pool, off the
event loop.
"""

import re
import time

import anyio
import grpc
from starlette import concurrency
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

from tfopt.serving import _json_examples
from tfopt.serving import _json_request
from tfopt.serving import _json_response
from tfopt.serving import _rest_json
from tfopt.serving import _rest_routes
from tfopt.serving._errors import ServingError, http_status, status_code
from tfopt.serving._json_parse import JsonTensorError

DEFAULT_SIGNATURE = "serving_default"
# Larger than any batch a REST client sends in practice, small enough to refuse
# a runaway body before it fills the memory of a small container.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024
_JSON = "application/json"
_ORIGIN = re.compile(r"https?://")


class _TooLarge(Exception):
    """The request body is over the app's limit."""


def _validate_app_args(manager, max_body_bytes):
    if not callable(getattr(manager, "servable", None)) or not callable(
            getattr(manager, "status", None)):
        raise TypeError("make_rest_app: manager must be a ServableManager (with servable() and "
                        f"status()); got {type(manager).__name__}.")
    if (isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int)
            or max_body_bytes < 1):
        raise ValueError(f"make_rest_app: max_body_bytes must be a positive int, got "
                         f"{max_body_bytes!r}; e.g. {DEFAULT_MAX_BODY_BYTES} (64 MiB).")


def make_rest_app(manager, batcher=None, metrics=None, max_body_bytes=DEFAULT_MAX_BODY_BYTES,
                  request_logger=None):
    """TF Serving's REST API over `manager`'s models, as an ASGI app.

    Args:
      manager: the `ServableManager` whose models are served.
      batcher: a `Batcher` that predict calls go through, or None (each call
        runs on its own). Defaults to None.
      metrics: an object serving and counting metrics, or None. It has
        ``path`` (the Prometheus path on this port), ``render()`` returning
        ``(body bytes, content type)``, and ``record(model_name, api, code,
        seconds, entrypoint)`` called after each request naming a model
        (`api` is `Call.api` for a POST and "" for a GET, as TF Serving
        labels them; `code` a ``grpc.StatusCode``; entrypoint "REST").
        Defaults to None.
      max_body_bytes: the largest request body accepted; larger ones get 413.
        Defaults to 64 MiB.
      request_logger: a `ServerRequestLogger` told of each successful
        predict, classify and regress call, or None. Defaults to None.

    Returns:
      The ASGI application (run it with ``uvicorn.run(app, ...)``).
    """
    _validate_app_args(manager, max_body_bytes)
    return _RestApp(manager, batcher, metrics, max_body_bytes, request_logger)


class _RestApp:
    """The ASGI callable; routes by TF Serving's regexes, not starlette's router."""

    def __init__(self, manager, batcher, metrics, max_body_bytes, request_logger):
        self.manager = manager
        self.request_logger = request_logger
        self.batcher = batcher
        self.metrics = metrics
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] == "lifespan":
            await _lifespan(receive, send, self.batcher)
            return
        if scope["type"] != "http":
            return
        request = Request(scope, receive)
        response = await self._respond(request)
        await response(scope, receive, send)

    async def _respond(self, request):
        path = request.scope.get("raw_path") or request.url.path.encode("utf-8")
        path = path.decode("latin-1")
        if request.scope.get("query_string"):
            path += "?" + request.scope["query_string"].decode("latin-1")
        if (self.metrics is not None and request.method == "GET"
                and request.url.path == self.metrics.path):
            body, content_type = await concurrency.run_in_threadpool(self.metrics.render)
            return Response(body, media_type=content_type)
        if not _rest_routes.is_api_path(path):
            return PlainTextResponse("Not Found", status_code=404)
        if request.method == "OPTIONS":  # a CORS preflight
            # http_server.cc: RE2::PartialMatch(origin, "https?://"), else FAILED_PRECONDITION
            # (400); either way an empty body and no Content-Type (the handler adds none).
            origin = request.headers.get("origin", "")
            return Response(b"", status_code=200 if _ORIGIN.search(origin) else 400)
        call = None
        start = time.perf_counter()
        try:
            call = _rest_routes.parse_call(request.method, path)
            body = await self._body(request) if request.method == "POST" else b""
            text = await concurrency.run_in_threadpool(self._answer, call, body)
            code, status = grpc.StatusCode.OK, 200
        except _TooLarge:
            code = grpc.StatusCode.RESOURCE_EXHAUSTED
            status = 413
            text = _json_response.make_error_body(
                f"Request body is larger than the server's limit of {self.max_body_bytes} bytes.")
        except ServingError as error:
            code, status = error.code, http_status(error.code)
            text = _json_response.make_error_body(error.message)
        except JsonTensorError as error:
            code = status_code(error.code)
            status = http_status(code)
            text = _json_response.make_error_body(error.message)
        except Exception as error:  # pylint: disable=broad-except  (a 500, the server lives on)
            code, status = grpc.StatusCode.INTERNAL, 500
            text = _json_response.make_error_body(f"{type(error).__name__}: {error}")
        if self.metrics is not None and call is not None:
            # http_server.cc labels a GET (status, metadata) with the empty method.
            api = call.api if request.method == "POST" else ""
            self.metrics.record(call.model_name, api, code, time.perf_counter() - start, "REST")
        return Response(text.encode("utf-8"), status_code=status, media_type=_JSON)

    async def _body(self, request):
        """The request body, refused as soon as it is known to be over the limit."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise _TooLarge()
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > self.max_body_bytes:
                raise _TooLarge()
            chunks.append(chunk)
        return b"".join(chunks)

    # The methods below run in the thread pool.

    def _answer(self, call, body):
        if call.api == "status":
            # get_model_status_impl.cc ignores a label: all versions are listed.
            return _rest_json.status_json(self.manager.status(call.model_name, call.version))
        def servable_of():
            return self.manager.servable(call.model_name, call.version, call.label)

        if call.api == "metadata":
            servable = servable_of()
            return _rest_json.metadata_json(servable.name, servable.version, servable.metadata())
        if call.api == "predict":
            return self._predict(servable_of, body)
        request = _json_examples.parse_examples_request(body, call.api)
        servable = servable_of()
        examples = request.serialized()
        if call.api == "classify":
            signature_name, classes, scores = servable.classify(examples,
                                                                request.signature_name or "")
            if self.request_logger is not None:
                self.request_logger.log_classify(servable, signature_name, examples, classes,
                                                 scores)
            return _json_response.make_classify_response(classes, scores)
        signature_name, values = servable.regress(examples, request.signature_name or "")
        if self.request_logger is not None:
            self.request_logger.log_regress(servable, signature_name, examples, values)
        return _json_response.make_regress_response(values)

    def _predict(self, servable_of, body):
        held = []

        def signature_inputs(signature_name):
            # TF Serving looks the servable up only after the body parses (GetInfoMap).
            held.append(servable_of())
            name = signature_name or DEFAULT_SIGNATURE
            signature = held[0].signature_defs.get(name)
            if signature is None:
                raise JsonTensorError(
                    f'Serving signature name: "{name}" not found in signature def')
            return {key: info.dtype for key, info in signature.inputs.items()}

        request = _json_request.parse_predict_request(body, signature_inputs)
        signature_name = request.signature_name or ""
        if self.batcher is not None:
            signature_name, outputs = self.batcher.predict(held[0], signature_name,
                                                           request.inputs)
        else:
            signature_name, outputs = held[0].predict(request.inputs, signature_name)
        if self.request_logger is not None:
            self.request_logger.log_predict(held[0], signature_name, request.inputs, outputs)
        return _json_response.make_predict_response(outputs, request.form)


async def _lifespan(receive, send, batcher):
    """Answers uvicorn's startup and shutdown messages; the manager is started by its owner.

    Model calls run on anyio's thread pool (40 threads unless told otherwise), and a
    call waiting for its batch holds a thread: with a batcher the pool is grown to
    let every batch fill (`Batcher.waiting_calls`).
    """
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if batcher is not None:
                limiter = anyio.to_thread.current_default_thread_limiter()
                limiter.total_tokens = max(limiter.total_tokens, batcher.waiting_calls)
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
