"""Prometheus metrics for tfopt-serve under TF Serving's metric names.

TF Serving (``servables/tensorflow/util.cc``) counts requests in
``/tensorflow/serving/request_count`` (labels ``model_name``, ``status``: the
canonical code's name) and samples the wall time of successful requests, in
microseconds, in ``/tensorflow/serving/request_latency`` (labels ``model_name``,
``API``, ``entrypoint``; exponential buckets: scale 10, growth 1.8, 33 buckets).
Who records what follows the callers of those functions:
``model_servers/http_server.cc`` counts every REST request and times it with
``API`` = the path's method (``predict``, ``classify``, ``regress``; empty for
the GETs of status and metadata) and ``entrypoint="REST"``;
``model_servers/prediction_service_impl.cc`` counts and times Predict,
Classify and Regress with ``API`` = ``Predict``, ``Classify``, ``Regress`` and
``entrypoint="GRPC"``, and records nothing for GetModelMetadata (nor does
``model_service_impl.cc`` for GetModelStatus). ``util/prometheus_exporter.cc`` turns every
character outside ``[a-zA-Z0-9_]`` into ``:``, so Prometheus sees
``:tensorflow:serving:request_count``. prometheus-client accepts those names.

TF Serving has no metric for a model version's state; ours is
``tfopt_serving_model_version_state`` (1 for the state a version is in, 0 for
the others), read from the `ServableManager` at scrape time.

The exposition is prometheus-client's; the collector below only holds the
numbers, so the sample names are exactly TF Serving's (prometheus-client's
own ``Counter`` would add ``_total`` and ``_created`` series that TF Serving
does not have).
"""

import bisect
import threading

from prometheus_client import exposition
from prometheus_client.core import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.core import UnknownMetricFamily
from tensorflow_serving.apis import get_model_status_pb2

from tfopt.serving._errors import ServingError

REQUEST_COUNT = ":tensorflow:serving:request_count"
REQUEST_LATENCY = ":tensorflow:serving:request_latency"
MODEL_VERSION_STATE = "tfopt_serving_model_version_state"
ENTRYPOINTS = ("REST", "GRPC")

# monitoring::Buckets::Exponential(10, 1.8, 33): upper bounds in microseconds (~20 minutes).
LATENCY_BUCKETS_MICROS = tuple(10.0 * 1.8**i for i in range(33))

_STATES = get_model_status_pb2.ModelVersionStatus.State


def _validate_path(path):
    if not isinstance(path, str) or not path.startswith("/") or any(
            ch.isspace() or ch in "?#" for ch in path):
        raise ValueError(f"Metrics: path must be a URL path starting with '/' (no spaces, '?' "
                         f"or '#'), got {path!r}; e.g. '/monitoring/prometheus/metrics'.")


def _validate_manager(manager):
    if manager is not None and not (callable(getattr(manager, "model_names", None))
                                    and callable(getattr(manager, "status", None))):
        raise TypeError(f"Metrics: manager must be a ServableManager (with model_names() and "
                        f"status()) or None; got {type(manager).__name__}.")


class Metrics:
    """Request counts, latencies and model states, served as Prometheus text.

    The REST app serves `render()` at `path`; the REST app and the gRPC
    servicers call `record()` after each model call.

    Args:
      path: the URL path of the Prometheus text on the REST port.
      manager: the `ServableManager` whose versions' states are exported, or
        None (no state metric until `watch()` is called). Defaults to None.

    Example:
      >>> metrics = Metrics("/monitoring/prometheus/metrics", manager)
      >>> app = make_rest_app(manager, metrics=metrics)
    """

    def __init__(self, path, manager=None):
        _validate_path(path)
        _validate_manager(manager)
        self.path = path
        self._manager = manager
        self._lock = threading.Lock()
        self._counts = {}     # (model_name, status) -> requests
        self._latencies = {}  # (model_name, API, entrypoint) -> [bucket counts..., sum in us]
        # A registry of its own: several servers in one process must not share numbers.
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(self)

    def watch(self, manager):
        """Exports the version states of `manager` (a `ServableManager`) from now on."""
        _validate_manager(manager)
        self._manager = manager

    def record(self, model_name, api, code, seconds, entrypoint):
        """Counts one request, and times it when it succeeded.

        Args:
          model_name: the model the request named.
          api: the ``API`` label: ``"predict"``, ``"classify"``, ``"regress"``
            or ``""`` over REST, ``"Predict"``, ``"Classify"``, ``"Regress"``
            over gRPC (TF Serving's own values).
          code: its ``grpc.StatusCode``.
          seconds: its wall time in seconds.
          entrypoint: ``"REST"`` or ``"GRPC"``.
        """
        if entrypoint not in ENTRYPOINTS:
            raise ValueError(f"Metrics.record: entrypoint must be one of {ENTRYPOINTS}, got "
                             f"{entrypoint!r}.")
        status = getattr(code, "name", str(code))
        with self._lock:
            key = (model_name, status)
            self._counts[key] = self._counts.get(key, 0) + 1
            if status != "OK":
                return  # http_server.cc / prediction_service_impl.cc time successes only
            micros = max(seconds, 0.0) * 1e6
            cells = self._latencies.setdefault(
                (model_name, api, entrypoint), [0] * (len(LATENCY_BUCKETS_MICROS) + 1) + [0.0])
            cells[bisect.bisect_left(LATENCY_BUCKETS_MICROS, micros)] += 1
            cells[-1] += micros

    def render(self):
        """(Prometheus text as bytes, its Content-Type)."""
        return exposition.generate_latest(self.registry), exposition.CONTENT_TYPE_PLAIN_0_0_4

    def collect(self):
        """The metric families (prometheus-client's collector protocol)."""
        with self._lock:
            counts = dict(self._counts)
            latencies = {key: list(cells) for key, cells in self._latencies.items()}
        # Untyped, not counter: prometheus-client names a counter's samples NAME_total,
        # and TF Serving's sample is plain NAME.
        count = UnknownMetricFamily(REQUEST_COUNT, "The total number of requests.",
                                    labels=["model_name", "status"])
        for (model_name, status), value in sorted(counts.items()):
            count.add_metric([model_name, status], value)
        yield count
        latency = HistogramMetricFamily(
            REQUEST_LATENCY,
            "Distribution of wall time (in microseconds) for Tensorflow Serving request.",
            labels=["model_name", "API", "entrypoint"])
        # "%g": the six significant digits absl::StrCat gives TF Serving's bucket limits.
        bounds = [f"{bound:g}" for bound in LATENCY_BUCKETS_MICROS] + ["+Inf"]
        for labels, cells in sorted(latencies.items()):
            cumulative, buckets = 0, []
            for bound, hits in zip(bounds, cells[:-1]):
                cumulative += hits
                buckets.append((bound, cumulative))
            latency.add_metric(list(labels), buckets, cells[-1])
        yield latency
        yield self._states()

    def _states(self):
        family = GaugeMetricFamily(
            MODEL_VERSION_STATE,
            "1 for the state a model version is in (ModelVersionStatus.State), 0 for the others.",
            labels=["model_name", "version", "state"])
        manager = self._manager
        if manager is None:
            return family
        for model_name in manager.model_names():
            try:
                response = manager.status(model_name)
            except ServingError:  # configured, but no version seen yet
                continue
            for entry in response.model_version_status:
                for state in _STATES.values():
                    if state == _STATES.UNKNOWN:
                        continue
                    family.add_metric([model_name, str(entry.version), _STATES.Name(state)],
                                      1.0 if entry.state == state else 0.0)
        return family
