"""tfopt-serve: a local server that answers like TF Serving, for development and tests.

For production, run the official image (tensorflow/serving; tfopt-kit writes its
deployment files). tfopt-serve takes tensorflow_model_server's flags, with its
names and defaults, so commands carry over:

  tfopt-serve --rest_api_port=8501 --model_name=digits --model_base_path=export/digits
  tfopt-serve --model_config_file=export/models.config --rest_api_port=8501 \\
      --enable_batching --batching_parameters_file=export/batching.config

Serves TF Serving's gRPC API (PredictionService, ModelService) on --port and its
REST API on --rest_api_port (0: off), on 127.0.0.1 unless --host says otherwise.
Versions are numeric directories of the base path, polled every
--file_system_poll_wait_seconds. Stop it with Ctrl-C (exit status 130) or SIGTERM (0).
"""

import os
import signal
import socket
import sys
import threading

# Before TensorFlow loads: TensorFlow's oneDNN kernels abort the whole process on some
# malformed inputs (a rank-1 tensor fed to a convolution fails a CHECK in MklConvOp), where
# its default kernels return INVALID_ARGUMENT. TF Serving's official image is built without
# oneDNN; so is tfopt-serve by default. Set TF_ENABLE_ONEDNN_OPTS=1 to choose oneDNN.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

from absl import flags  # noqa: E402  pylint: disable=wrong-import-position

from tfopt.cli import _app
from tfopt.cli import _flags
from tfopt.export import _layout

_PORT = flags.DEFINE_integer("port", _layout.GRPC_PORT, "Port for gRPC (0: no gRPC).",
                             lower_bound=0, upper_bound=65535)
_REST_API_PORT = flags.DEFINE_integer(
    "rest_api_port", 0, "Port for HTTP/REST (0: no REST); must differ from --port.",
    lower_bound=0, upper_bound=65535)
_HOST = flags.DEFINE_string("host", "127.0.0.1", "Address to listen on. The default serves "
                            "this machine only; 0.0.0.0 serves the network (tfopt-serve is for "
                            "development and tests: use the official image in production).")
_MODEL_NAME = _flags.shared_string(
    "model_name", "The model's name in TF Serving (tfopt-serve: default 'default'; ignored "
    "with --model_config_file).", __name__)
_MODEL_BASE_PATH = flags.DEFINE_string(
    "model_base_path", None, "Directory of the model's numeric version directories (required "
    "unless --model_config_file).")
_MODEL_CONFIG_FILE = flags.DEFINE_string(
    "model_config_file", "", "A text ModelServerConfig (models.config); overrides "
    "--model_name and --model_base_path.")
_CONFIG_POLL = flags.DEFINE_integer(
    "model_config_file_poll_wait_seconds", 0, "Seconds between re-reads of "
    "--model_config_file (0: read once).", lower_bound=0)
_FS_POLL = flags.DEFINE_integer(
    "file_system_poll_wait_seconds", 1, "Seconds between polls of the base paths for new and "
    "removed versions (0: load once).", lower_bound=0)
_ENABLE_BATCHING = flags.DEFINE_boolean("enable_batching", False, "Batch concurrent predict "
                                        "requests on the server.")
_BATCHING_FILE = flags.DEFINE_string(
    "batching_parameters_file", "", "A text BatchingParameters (batching.config); needs "
    "--enable_batching (without a file: TF Serving's default parameters).")
_MONITORING_FILE = flags.DEFINE_string(
    "monitoring_config_file", "", "A text MonitoringConfig (monitoring.config): Prometheus "
    "metrics on the REST port.")
_ENABLE_WARMUP = flags.DEFINE_boolean(
    "enable_model_warmup", True, "Replay assets.extra/tf_serving_warmup_requests before a "
    "version is AVAILABLE.")
_WARMUP_ITERATIONS = flags.DEFINE_integer(
    "num_request_iterations_for_warmup", 0, "Times each warmup record is replayed (0: once).",
    lower_bound=0)
_ALLOW_LABELS = flags.DEFINE_boolean(
    "allow_version_labels_for_unavailable_models", False, "Let --model_config_file assign "
    "labels to versions not yet loaded.")


def _validate_flags(argv):
    if len(argv) > 1:
        raise _app.UsageError(f"unexpected arguments {argv[1:]}; tfopt-serve takes flags only.")
    if _BATCHING_FILE.value and not _ENABLE_BATCHING.value:
        # Server::BuildAndStart's check (server.cc), word for word apart from the flag
        # spelling: TF Serving names server_options.batching_parameters_file there.
        raise _app.UsageError("--batching_parameters_file is set without setting "
                              "--enable_batching to true.")
    if not _MODEL_CONFIG_FILE.value and not _MODEL_BASE_PATH.value:
        raise _app.UsageError("give --model_base_path (a directory of numeric version "
                              "directories) or --model_config_file (a models.config).")
    if _PORT.value == 0 and _REST_API_PORT.value == 0:
        raise _app.UsageError("--port=0 and --rest_api_port=0 serve nothing; give a gRPC port, "
                              "a REST port or both.")
    if _PORT.value == _REST_API_PORT.value:
        raise _app.UsageError(f"--port and --rest_api_port are both {_PORT.value}; they must "
                              "differ (e.g. --port=8500 --rest_api_port=8501).")
    if _CONFIG_POLL.value and not _MODEL_CONFIG_FILE.value:
        raise _app.UsageError("--model_config_file_poll_wait_seconds needs --model_config_file.")


def _read(flag, reader):
    try:
        return reader(flag.value)
    except (FileNotFoundError, ValueError) as error:
        raise _app.UsageError(f"--{flag.name}={flag.value!r}: {error}") from error


def _model_server_config():
    # pylint: disable=import-outside-toplevel
    from tensorflow_serving.config import model_server_config_pb2

    from tfopt.export import _model_server_config

    if _MODEL_CONFIG_FILE.value:
        return _read(_MODEL_CONFIG_FILE, _model_server_config.read_model_server_config)
    if not os.path.isdir(_MODEL_BASE_PATH.value):
        raise _app.UsageError(f"--model_base_path={_MODEL_BASE_PATH.value!r} is not a "
                              "directory; give the directory holding the numeric versions.")
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add()
    model.name = _MODEL_NAME.value or "default"
    model.base_path = os.path.abspath(_MODEL_BASE_PATH.value)
    model.model_platform = "tensorflow"
    return config


def _bind(port, what):
    """A listening socket on --host:`port`, so a busy port is a clear error before serving."""
    family = socket.AF_INET6 if ":" in _HOST.value else socket.AF_INET
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets whose proto says TCP, and
    # without it uvicorn's separate header and body writes wait 40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((_HOST.value, port))
    except OSError as error:
        sock.close()
        raise _app.Failure(f"cannot listen on {_HOST.value}:{port} ({what}): "
                           f"{error.strerror}.") from error
    sock.listen(2048)
    return sock


def _terminate(signum, frame):
    del signum, frame
    raise SystemExit(0)


def _log(line):
    print(line, file=sys.stderr, flush=True)


def main(argv):
    _validate_flags(argv)
    # Imported after the flags are checked: TensorFlow takes seconds to load.
    # pylint: disable=import-outside-toplevel
    from tfopt.cli import _serve_run
    from tfopt.export import _server_flags_config

    config = _model_server_config()
    batching = None
    if _ENABLE_BATCHING.value:
        batching = (_read(_BATCHING_FILE, _server_flags_config.read_batching_config)
                    if _BATCHING_FILE.value else _serve_run.default_batching())
    monitoring = (_read(_MONITORING_FILE, _server_flags_config.read_monitoring_config)
                  if _MONITORING_FILE.value else None)
    server = _serve_run.Server(
        config, batching=batching, monitoring=monitoring,
        file_system_poll_wait_seconds=_FS_POLL.value,
        model_config_file=_MODEL_CONFIG_FILE.value or None,
        model_config_file_poll_wait_seconds=_CONFIG_POLL.value,
        enable_model_warmup=_ENABLE_WARMUP.value,
        num_request_iterations_for_warmup=_WARMUP_ITERATIONS.value,
        allow_version_labels_for_unavailable_models=_ALLOW_LABELS.value, log=_log)
    # Both ports are taken before the models load, so a busy one fails at once.
    rest_socket = _bind(_REST_API_PORT.value, "--rest_api_port") if _REST_API_PORT.value else None
    if _PORT.value:
        try:
            server.bind_grpc(_HOST.value, _PORT.value)
        except OSError as error:
            if rest_socket is not None:
                rest_socket.close()
            raise _app.Failure(str(error)) from error
    # SIGTERM (docker stop, kill) ends the run with status 0 after the clean-up below;
    # uvicorn passes the signal on to this handler once it has shut down.
    signal.signal(signal.SIGTERM, _terminate)
    try:
        server.start()
        if _PORT.value:
            server.start_grpc()
        if rest_socket is not None:
            _log(f"Exporting HTTP/REST API at:{_HOST.value}:{_REST_API_PORT.value} ...")
            server.serve_rest(rest_socket)
        else:
            threading.Event().wait()
    finally:
        server.stop()
        if rest_socket is not None:
            rest_socket.close()
    return 0


def run(argv=None):
    _app.run(main, "tfopt-serve", sys.modules[__name__], argv)


if __name__ == "__main__":
    run()
