"""The running parts of tfopt-serve: models, batching, gRPC and REST, started and stopped together.

Kept apart from the flags (tfopt/cli/serve.py) so tests and the benchmark can
run a server in-process. The gRPC servicers come from
``tfopt.serving._grpc.add_servicers``; the REST app from
``tfopt.serving._rest.make_rest_app`` on uvicorn.
"""

import os
import threading
from concurrent import futures

import grpc
import uvicorn

from tfopt.export import _layout
from tfopt.export import _model_server_config
from tfopt.export._protos import session_bundle_config_pb2
from tfopt.serving import _rest
from tfopt.serving._batching import Batcher
from tfopt.serving._manager import ServableManager
from tfopt.serving._request_logger import ServerRequestLogger

# tensorflow_model_server's gRPC message limit (server.cc: INT32_MAX both ways).
_GRPC_MAX_MESSAGE = 2**31 - 1
_GRPC_OPTIONS = [("grpc.max_send_message_length", _GRPC_MAX_MESSAGE),
                 ("grpc.max_receive_message_length", _GRPC_MAX_MESSAGE)]


_GRPC_THREADS_PER_CPU = 4


def call_threads(batcher, cpus=None):
    """Threads the gRPC server answers calls on.

    Four a CPU; with batching at least `batcher.waiting_calls`, because a
    call waiting for its batch holds its thread (with 4 a CPU, 8 on 2 CPUs,
    batches never grew past 8 rows and batching gained nothing).
    """
    threads = _GRPC_THREADS_PER_CPU * (cpus or os.cpu_count() or 1)
    if batcher is not None:
        threads = max(threads, batcher.waiting_calls)
    return threads


def default_batching():
    """The BatchingParameters of --enable_batching without a file: every field unset."""
    return session_bundle_config_pb2.BatchingParameters()


def _prometheus(monitoring, manager):
    """The Prometheus recorder for a MonitoringConfig (model states from `manager`), or None."""
    if monitoring is None or not monitoring.prometheus_config.enable:
        return None
    from tfopt.serving import _metrics  # pylint: disable=import-outside-toplevel
    return _metrics.Metrics(monitoring.prometheus_config.path or _layout.PROMETHEUS_PATH,
                            manager)


class Server:
    """tensorflow_model_server's parts in one process.

    Args:
      config: the `ModelServerConfig` to serve.
      batching: `BatchingParameters` to batch predict calls with, or None.
      monitoring: a `MonitoringConfig`, or None.
      model_config_file: the file `config` came from, re-read every
        `model_config_file_poll_wait_seconds` (0: never), or None.
      log: a function printing one log line.
      **manager_args: passed to `ServableManager`.
    """

    def __init__(self, config, batching=None, monitoring=None, model_config_file=None,
                 model_config_file_poll_wait_seconds=0, log=print, **manager_args):
        self.manager = ServableManager(config, **manager_args)
        # Before any model loads, so a bad logging_config fails at once.
        self.request_logger = ServerRequestLogger(config)
        self.batcher = Batcher(batching) if batching is not None else None
        self.metrics = _prometheus(monitoring, self.manager)
        self._config_file = model_config_file
        self._config_poll = model_config_file_poll_wait_seconds
        self._log = log
        self._stopped = threading.Event()
        self._threads = []
        self._grpc = None
        self._grpc_address = None
        self._uvicorn = None

    def start(self):
        """Loads the models (the first load is synchronous), then polls the config file."""
        self.manager.start()
        if self._config_file and self._config_poll:
            thread = threading.Thread(target=self._poll_config, daemon=True,
                                      name="tfopt-serve-config-poll")
            thread.start()
            self._threads.append(thread)

    def _poll_config(self):
        while not self._stopped.wait(self._config_poll):
            try:
                config = _model_server_config.read_model_server_config(self._config_file)
                self.request_logger.update(config)
                self.manager.reload_config(config)
            except Exception as error:  # pylint: disable=broad-except  (keep serving the old one)
                self._log(f"Failed to reload {self._config_file}: {error}")

    def bind_grpc(self, host, port):
        """Adds PredictionService and ModelService on `host`:`port`; serving starts in start_grpc.

        Raises:
          OSError: the address cannot be listened on (a busy port, a bad host).
        """
        # pylint: disable=import-outside-toplevel
        from tfopt.serving import _grpc

        server = grpc.server(futures.ThreadPoolExecutor(max_workers=call_threads(self.batcher),
                                                        thread_name_prefix="tfopt-serve-grpc"),
                             options=_GRPC_OPTIONS)
        _grpc.add_servicers(server, self.manager, self.batcher, self.metrics,
                            self.request_logger)
        address = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        try:
            bound = server.add_insecure_port(address)
        except RuntimeError:  # grpcio raises where older versions returned 0
            bound = 0
        if not bound:
            server.stop(None)
            raise OSError(f"cannot listen on {address} (gRPC, --port): the port is in use or "
                          "the address is not this machine's.")
        self._grpc = server
        self._grpc_address = address

    def start_grpc(self):
        """Starts serving gRPC on the address of `bind_grpc`."""
        self._grpc.start()
        self._log(f"Running gRPC ModelServer at {self._grpc_address} ...")

    def rest_app(self):
        """The REST API's ASGI app over this server's models."""
        return _rest.make_rest_app(self.manager, self.batcher, self.metrics,
                                   request_logger=self.request_logger)

    def serve_rest(self, sock):
        """Serves the REST API on the listening socket `sock` until SIGINT or SIGTERM."""
        config = uvicorn.Config(self.rest_app(), log_level="warning", access_log=False,
                                lifespan="on", timeout_graceful_shutdown=5)
        self._uvicorn = uvicorn.Server(config)
        self._uvicorn.run(sockets=[sock])

    def stop(self):
        """Stops serving: gRPC, the config poll, batching, the request logs, then the models."""
        self._stopped.set()
        if self._uvicorn is not None:
            self._uvicorn.should_exit = True
        if self._grpc is not None:
            self._grpc.stop(grace=2).wait()
        for thread in self._threads:
            thread.join()
        if self.batcher is not None:
            self.batcher.stop()
        self.request_logger.stop()
        self.manager.stop()
