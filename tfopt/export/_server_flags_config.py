"""The batching and monitoring files tensorflow_model_server reads at start-up.

``--batching_parameters_file`` takes a text `tensorflow.serving.BatchingParameters`
(it is a start-up error without ``--enable_batching=true``);
``--monitoring_config_file`` takes a text `tensorflow.serving.MonitoringConfig`.
tensorflow-serving-api lacks both messages: tfopt generates them from TF
Serving's .proto files (see tfopt/export/_protos).
"""

from tfopt.export import _layout
from tfopt.export import _serving_config
from tfopt.export._protos import monitoring_config_pb2
from tfopt.export._protos import session_bundle_config_pb2

# The REST API's paths; TF Serving serves the metrics path before them, so
# metrics under /v1/ could hide an API path (e.g. a model's status).
_REST_PREFIX = "/v1/"


def batching_config(path, max_batch_size=32, batch_timeout_micros=1000, num_batch_threads=4,
                    max_enqueued_batches=100, allowed_batch_sizes=None):
    """Writes a batching parameters file (text `tensorflow.serving.BatchingParameters`).

    The defaults follow TF Serving's batching guide (batching/README.md) for
    online serving on CPUs: batches big enough to use the cores' vector units,
    and a 1 ms wait, the low end of the guide's 1-10 ms range, so requests
    arriving together are batched at little cost in latency. The thread count
    is written out rather than left to the server, whose default is every core
    of the host, not the container's share of it. A full queue turns requests
    away (UNAVAILABLE) instead of letting their latency grow without bound.

    Args:
      path: the file to write (usually ``<export root>/batching.config``).
      max_batch_size: the most rows one batch holds. Defaults to 32.
      batch_timeout_micros: how long the server waits to fill a batch, in
        microseconds (0: never waits). Defaults to 1000.
      num_batch_threads: batches run at once; about the container's cores.
        Defaults to 4.
      max_enqueued_batches: batches that may wait before requests are
        refused. Defaults to 100.
      allowed_batch_sizes: sizes batches are padded up to, increasing and
        ending at `max_batch_size` (TF Serving's rule), e.g. [8, 16, 32].
        Defaults to None (any size).

    Returns:
      The `BatchingParameters` message written.

    Example:
      >>> export.batching_config("export/batching.config", max_batch_size=64,
      ...                        allowed_batch_sizes=[8, 32, 64])
    """
    parameters = session_bundle_config_pb2.BatchingParameters()
    where = "batching_config:"
    # The fields are int64, but TF Serving copies all except the timeout into C++ ints.
    for name, value, minimum, maximum in (
            ("max_batch_size", max_batch_size, 1, _serving_config.INT32_MAX),
            ("batch_timeout_micros", batch_timeout_micros, 0, _serving_config.INT64_MAX),
            ("num_batch_threads", num_batch_threads, 1, _serving_config.INT32_MAX),
            ("max_enqueued_batches", max_enqueued_batches, 1, _serving_config.INT32_MAX)):
        getattr(parameters, name).value = _serving_config.validate_integer(
            value, f"{where} {name}", minimum, maximum)
    if allowed_batch_sizes is not None:
        if isinstance(allowed_batch_sizes, (str, bytes)) or not hasattr(allowed_batch_sizes,
                                                                         "__iter__"):
            raise TypeError(f"{where} allowed_batch_sizes must be a list of batch sizes, got "
                            f"{allowed_batch_sizes!r}.")
        parameters.allowed_batch_sizes.extend(
            _serving_config.validate_integer(size, f"{where} each of allowed_batch_sizes", 1,
                                             _serving_config.INT32_MAX)
            for size in allowed_batch_sizes)
    _validate_batching(parameters, where)
    _serving_config.validate_file_path(path, "batching_config", _layout.BATCHING_CONFIG)
    _serving_config.write_text_proto(parameters, path, "--batching_parameters_file")
    return parameters


def read_batching_config(path):
    """Parses a batching parameters file into a `tensorflow.serving.BatchingParameters`.

    Raises:
      FileNotFoundError: there is no file at `path`.
      ValueError: the file does not parse ("Error parsing text-format
        tensorflow.serving.BatchingParameters" and the line), or its values
        are ones TF Serving refuses when it loads a model.
    """
    parameters = _serving_config.read_text_proto(
        path, session_bundle_config_pb2.BatchingParameters)
    _validate_batching(parameters, f"{path!r}:")
    return parameters


def monitoring_config(path, enable=True, metrics_path=_layout.PROMETHEUS_PATH):
    """Writes a monitoring file (text `tensorflow.serving.MonitoringConfig`).

    With it, TF Serving serves its metrics in Prometheus' text format on the
    REST port at `metrics_path`.

    Args:
      path: the file to write (usually ``<export root>/monitoring.config``).
      enable: whether to serve the metrics. Defaults to True.
      metrics_path: the HTTP path of the metrics. Defaults to TF Serving's
        own, ``/monitoring/prometheus/metrics``.

    Returns:
      The `MonitoringConfig` message written.

    Example:
      >>> export.monitoring_config("export/monitoring.config")
    """
    if not isinstance(enable, bool):
        raise TypeError(f"monitoring_config: enable must be True or False, got {enable!r}.")
    _validate_metrics_path(metrics_path, "monitoring_config: metrics_path")
    _serving_config.validate_file_path(path, "monitoring_config", _layout.MONITORING_CONFIG)
    config = monitoring_config_pb2.MonitoringConfig()
    config.prometheus_config.enable = enable
    config.prometheus_config.path = metrics_path
    _serving_config.write_text_proto(config, path, "--monitoring_config_file")
    return config


def read_monitoring_config(path):
    """Parses a monitoring file into a `tensorflow.serving.MonitoringConfig`.

    An empty path in the file means TF Serving's default path; the message is
    returned as written.

    Raises:
      FileNotFoundError: there is no file at `path`.
      ValueError: the file does not parse ("Error parsing text-format
        tensorflow.serving.MonitoringConfig" and the line), or its path is not
        one TF Serving can serve the metrics at.
    """
    config = _serving_config.read_text_proto(path, monitoring_config_pb2.MonitoringConfig)
    if config.prometheus_config.path:
        _validate_metrics_path(config.prometheus_config.path, f"{path!r}: prometheus_config.path")
    return config


def _validate_batching(parameters, where):
    """Raises ValueError for values TF Serving refuses when it loads a model with them.

    Rules of servables/tensorflow/bundle_factory_util.cc (WrapSessionForBatching)
    and batching/batching_session.cc, checked there only when a model loads.
    """
    sizes = list(parameters.allowed_batch_sizes)
    if any(size < 1 for size in sizes):
        raise ValueError(f"{where} allowed_batch_sizes={sizes} must all be positive.")
    if any(later <= earlier for earlier, later in zip(sizes, sizes[1:])):
        raise ValueError(f"{where} allowed_batch_sizes={sizes} must be strictly increasing "
                         "(TF Serving: \"allowed_batch_sizes entries must be monotonically "
                         "increasing\"); sort them and drop repeats.")
    if sizes and parameters.HasField("max_batch_size") and (
            sizes[-1] != parameters.max_batch_size.value):
        raise ValueError(f"{where} allowed_batch_sizes={sizes} ends at {sizes[-1]}, but "
                         f"max_batch_size={parameters.max_batch_size.value}; TF Serving refuses "
                         "to load the model (\"Last entry in allowed_batch_sizes must match "
                         "max_batch_size\"). End the list with max_batch_size.")
    if parameters.HasField("num_batch_threads") and parameters.num_batch_threads.value < 1:
        raise ValueError(f"{where} num_batch_threads={parameters.num_batch_threads.value} must "
                         "be at least 1.")


def _validate_metrics_path(metrics_path, what):
    if not isinstance(metrics_path, str):
        raise TypeError(f"{what} must be a string, got {metrics_path!r}.")
    if not metrics_path.startswith("/") or any(c.isspace() or c in "?#" for c in metrics_path):
        raise ValueError(f"{what}={metrics_path!r} must be an HTTP path: starting with '/', "
                         f"without spaces, '?' or '#' (default {_layout.PROMETHEUS_PATH!r}).")
    if metrics_path.lower().startswith(_REST_PREFIX) or metrics_path.lower() == "/v1":
        raise ValueError(f"{what}={metrics_path!r} lies under {_REST_PREFIX}, where TF Serving's "
                         f"REST API paths are; use another path, e.g. "
                         f"{_layout.PROMETHEUS_PATH!r}.")
