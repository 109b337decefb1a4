"""Prometheus metrics (tfopt/serving/_metrics.py) scraped over loopback from the REST app."""

import grpc
import httpx
import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from tests.serving import grpc_servers
from tests.serving.rest_server import RunningApp
from tfopt.cli import _serve_run
from tfopt.export import _layout
from tfopt.export._protos import monitoring_config_pb2
from tfopt.serving import _grpc_tensors
from tfopt.serving import _metrics
from tfopt.serving._manager import ServableManager
from tfopt.serving._rest import make_rest_app

HPT = "half_plus_two"
VERSION = str(grpc_servers.HALF_PLUS_TWO_VERSION)

# The sample names TF Serving's official image exposes (servables/tensorflow/util.cc, through
# util/prometheus_exporter.cc's "/" -> ":"), for the metrics tfopt-serve shares with it.
TF_SERVING_SAMPLES = {
    ":tensorflow:serving:request_count",
    ":tensorflow:serving:request_latency_bucket",
    ":tensorflow:serving:request_latency_sum",
    ":tensorflow:serving:request_latency_count",
}


@pytest.fixture(scope="module")
def manager(half_plus_two_base):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=HPT, base_path=half_plus_two_base,
                                        model_platform="tensorflow")
    started = ServableManager(config, file_system_poll_wait_seconds=0)
    started.start()
    yield started
    started.stop()


def _grpc_predict(stub, name):
    request = predict_pb2.PredictRequest()
    request.model_spec.name = name
    request.inputs["x"].CopyFrom(_grpc_tensors.typed_proto(np.array([[1.0]], np.float32)))
    try:
        stub.Predict(request, timeout=20)
        return grpc.StatusCode.OK
    except grpc.RpcError as error:
        return error.code()


@pytest.fixture(scope="module")
def scraped(manager):
    """(response of the scrape, {sample name: [(labels, value)]}) after 3 REST and 3 gRPC calls."""
    metrics = _metrics.Metrics(_layout.PROMETHEUS_PATH, manager)
    app = RunningApp(make_rest_app(manager, metrics=metrics))
    try:
        with httpx.Client(timeout=20) as client:
            for name in (HPT, HPT, "nope"):
                client.post(f"{app.url}/v1/models/{name}:predict", json={"instances": [1.0]})
            with grpc_servers.grpc_server(manager, metrics=metrics, workers=2) as port:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                    codes = [_grpc_predict(stub, name) for name in (HPT, "nope", "nope")]
            assert codes == [grpc.StatusCode.OK] + [grpc.StatusCode.NOT_FOUND] * 2
            response = client.get(app.url + _layout.PROMETHEUS_PATH)
    finally:
        app.stop()
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    return response, samples


def _value(samples, name, **labels):
    found = [value for got, value in samples.get(name, []) if got == labels]
    assert len(found) == 1, f"{name}{labels} not exactly once in {samples.get(name)}"
    return found[0]


def test_scrape_is_prometheus_text(scraped):
    response, _ = scraped
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert "# TYPE :tensorflow:serving:request_latency histogram" in response.text


def test_requests_are_counted_by_model_and_status_across_rest_and_grpc(scraped):
    _, samples = scraped
    count = ":tensorflow:serving:request_count"
    assert _value(samples, count, model_name=HPT, status="OK") == 3
    assert _value(samples, count, model_name="nope", status="NOT_FOUND") == 3
    assert len(samples[count]) == 2


def test_latency_histogram_counts_successful_calls_in_microseconds(scraped):
    _, samples = scraped
    latency = ":tensorflow:serving:request_latency"
    # http_server.cc: API is the REST path's method; prediction_service_impl.cc: "Predict".
    assert _value(samples, latency + "_count", model_name=HPT, API="predict",
                  entrypoint="REST") == 2
    assert _value(samples, latency + "_count", model_name=HPT, API="Predict",
                  entrypoint="GRPC") == 1
    assert len(samples[latency + "_count"]) == 2  # failures are not timed, as in TF Serving
    total = _value(samples, latency + "_sum", model_name=HPT, API="predict", entrypoint="REST")
    assert 2 * 10 < total < 2 * 20e6  # microseconds: above 10 us, below 20 s
    buckets = [(labels["le"], value) for labels, value in samples[latency + "_bucket"]
               if labels["entrypoint"] == "REST"]
    # Buckets::Exponential(10, 1.8, 33) printed by absl::StrCat (six significant digits).
    assert [bound for bound, _ in buckets[:6]] == ["10", "18", "32.4", "58.32", "104.976",
                                                   "188.957"]
    assert len(buckets) == 34 and buckets[-1] == ("+Inf", 2)
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)


def test_rest_status_is_counted_with_an_empty_api_and_grpc_metadata_is_not(manager):
    metrics = _metrics.Metrics(_layout.PROMETHEUS_PATH, manager)
    app = RunningApp(make_rest_app(manager, metrics=metrics))
    try:
        with httpx.Client(timeout=20) as client:
            assert client.get(f"{app.url}/v1/models/{HPT}").status_code == 200
            assert client.get(f"{app.url}/v1/models/{HPT}/metadata").status_code == 200
            with grpc_servers.grpc_server(manager, metrics=metrics, workers=2) as port:
                with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
                    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
                    request = get_model_metadata_pb2.GetModelMetadataRequest(
                        metadata_field=["signature_def"])
                    request.model_spec.name = HPT
                    stub.GetModelMetadata(request, timeout=20)
            text = client.get(app.url + _layout.PROMETHEUS_PATH).text
    finally:
        app.stop()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append((sample.labels, sample.value))
    latency = ":tensorflow:serving:request_latency_count"
    assert _value(samples, ":tensorflow:serving:request_count", model_name=HPT,
                  status="OK") == 2
    assert samples[latency] == [({"model_name": HPT, "API": "", "entrypoint": "REST"}, 2)]


def test_record_refuses_an_unknown_entrypoint():
    with pytest.raises(ValueError, match="entrypoint must be one of"):
        _metrics.Metrics("/m").record(HPT, "predict", grpc.StatusCode.OK, 0.001, "HTTP")


def test_model_version_state_is_read_from_the_manager_at_scrape_time(scraped):
    _, samples = scraped
    state = _metrics.MODEL_VERSION_STATE
    assert _value(samples, state, model_name=HPT, version=VERSION, state="AVAILABLE") == 1
    for other in ("START", "LOADING", "UNLOADING", "END"):
        assert _value(samples, state, model_name=HPT, version=VERSION, state=other) == 0


def test_sample_names_are_tf_servings_own(scraped):
    _, samples = scraped
    shared = {name for name in samples if name.startswith(":tensorflow:")}
    assert shared == TF_SERVING_SAMPLES
    assert set(samples) - shared == {_metrics.MODEL_VERSION_STATE}


def test_two_recorders_in_one_process_do_not_share_numbers():
    first = _metrics.Metrics("/a")
    second = _metrics.Metrics("/b")
    first.record(HPT, "predict", grpc.StatusCode.OK, 0.001, "REST")
    assert b"request_count{" in first.render()[0]
    assert b"request_count{" not in second.render()[0]


@pytest.mark.parametrize("path", ["", "metrics", None, 7, "/with space", "/a?b=1"])
def test_bad_path_is_refused(path):
    with pytest.raises(ValueError, match="path must be a URL path"):
        _metrics.Metrics(path)


@pytest.mark.parametrize("manager", [object(), "manager", 3])
def test_bad_manager_is_refused(manager):
    with pytest.raises(TypeError, match="manager must be a ServableManager"):
        _metrics.Metrics("/m", manager)
    with pytest.raises(TypeError, match="manager must be a ServableManager"):
        _metrics.Metrics("/m").watch(manager)


@pytest.mark.parametrize("path, served_at", [("", _layout.PROMETHEUS_PATH), ("/m", "/m")])
def test_tfopt_serve_builds_metrics_from_its_monitoring_config(path, served_at):
    monitoring = monitoring_config_pb2.MonitoringConfig()
    monitoring.prometheus_config.enable = True
    monitoring.prometheus_config.path = path
    server = _serve_run.Server(model_server_config_pb2.ModelServerConfig(),
                               monitoring=monitoring, log=lambda line: None)
    assert isinstance(server.metrics, _metrics.Metrics)
    assert server.metrics.path == served_at


def test_tfopt_serve_metrics_report_its_models_states(half_plus_two_base):
    """The state gauge of tfopt-serve itself: its Server hands its manager to Metrics."""
    monitoring = monitoring_config_pb2.MonitoringConfig()
    monitoring.prometheus_config.enable = True
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=HPT, base_path=half_plus_two_base,
                                        model_platform="tensorflow")
    server = _serve_run.Server(config, monitoring=monitoring, log=lambda line: None,
                               file_system_poll_wait_seconds=0)
    server.manager.start()
    try:
        text = server.metrics.render()[0].decode()
    finally:
        server.manager.stop()
    line = (f'{_metrics.MODEL_VERSION_STATE}{{model_name="{HPT}",state="AVAILABLE",'
            f'version="{VERSION}"}} 1.0')
    assert line in text, text[-1500:]
