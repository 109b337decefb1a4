"""The batching parameters and monitoring files, through TF Serving's own messages."""

import pytest
from google.protobuf import text_format

from tfopt.export import _layout
from tfopt.export._protos import monitoring_config_pb2
from tfopt.export._protos import session_bundle_config_pb2
from tfopt.export._server_flags_config import batching_config
from tfopt.export._server_flags_config import monitoring_config
from tfopt.export._server_flags_config import read_batching_config
from tfopt.export._server_flags_config import read_monitoring_config


def _parse(path, message_class):
    with open(path, encoding="utf-8") as file:
        return text_format.Parse(file.read(), message_class())


def _batching(path):
    parameters = _parse(path, session_bundle_config_pb2.BatchingParameters)
    fields = ("max_batch_size", "batch_timeout_micros", "num_batch_threads",
              "max_enqueued_batches")
    values = {name: getattr(parameters, name).value for name in fields
              if parameters.HasField(name)}
    return values, list(parameters.allowed_batch_sizes)


def test_batching_defaults_are_all_written_and_valid(tmp_path):
    path = tmp_path / _layout.BATCHING_CONFIG
    batching_config(path)
    assert _batching(path) == ({"max_batch_size": 32, "batch_timeout_micros": 1000,
                                "num_batch_threads": 4, "max_enqueued_batches": 100}, [])
    assert read_batching_config(path).max_batch_size.value == 32


def test_batching_values_given_are_written(tmp_path):
    path = tmp_path / _layout.BATCHING_CONFIG
    batching_config(path, max_batch_size=64, batch_timeout_micros=0, num_batch_threads=2,
                    max_enqueued_batches=8, allowed_batch_sizes=(1, 8, 64))
    assert _batching(path) == ({"max_batch_size": 64, "batch_timeout_micros": 0,
                                "num_batch_threads": 2, "max_enqueued_batches": 8}, [1, 8, 64])


@pytest.mark.parametrize("arguments, error, match", [
    ({"max_batch_size": 0}, ValueError, "max_batch_size must be an integer from 1 to 2147483647"),
    ({"max_batch_size": 2**31}, ValueError, "max_batch_size must be an integer from 1"),
    ({"max_batch_size": "32"}, TypeError, "max_batch_size must be an integer, got '32'"),
    ({"batch_timeout_micros": -1}, ValueError, "batch_timeout_micros must be an integer from 0"),
    ({"batch_timeout_micros": 0.5}, TypeError, "batch_timeout_micros must be an integer"),
    ({"num_batch_threads": 0}, ValueError, "num_batch_threads must be an integer from 1"),
    ({"num_batch_threads": None}, TypeError, "num_batch_threads must be an integer, got None"),
    ({"max_enqueued_batches": 0}, ValueError, "max_enqueued_batches must be an integer from 1"),
    ({"max_enqueued_batches": True}, TypeError, "max_enqueued_batches must be an integer"),
    ({"allowed_batch_sizes": [8, 16]}, ValueError,
     "allowed_batch_sizes=\\[8, 16\\] ends at 16, but max_batch_size=32.*must match"),
    ({"allowed_batch_sizes": [16, 8, 32]}, ValueError,
     "allowed_batch_sizes=\\[16, 8, 32\\] must be strictly increasing"),
    ({"allowed_batch_sizes": [8, 8, 32]}, ValueError,
     "allowed_batch_sizes=\\[8, 8, 32\\] must be strictly increasing"),
    ({"allowed_batch_sizes": [0, 32]}, ValueError,
     "each of allowed_batch_sizes must be an integer from 1"),
    ({"allowed_batch_sizes": [8.0, 32]}, TypeError,
     "each of allowed_batch_sizes must be an integer"),
    ({"allowed_batch_sizes": 32}, TypeError, "allowed_batch_sizes must be a list"),
    ({"allowed_batch_sizes": "32"}, TypeError, "allowed_batch_sizes must be a list"),
])
def test_batching_refuses_what_tf_serving_would(arguments, error, match, tmp_path):
    with pytest.raises(error, match="batching_config: " + match):
        batching_config(tmp_path / _layout.BATCHING_CONFIG, **arguments)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("content, match", [
    ("max_batch_size { value: 8 } allowed_batch_sizes: [4, 16]",
     "ends at 16, but max_batch_size=8"),
    ("allowed_batch_sizes: [4, 4]", "must be strictly increasing"),
    ("num_batch_threads { value: 0 }", "num_batch_threads=0 must be at least 1"),
])
def test_reading_a_batching_file_tf_serving_refuses(content, match, tmp_path):
    path = tmp_path / _layout.BATCHING_CONFIG
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_batching_config(path)


@pytest.mark.parametrize("arguments, enable, metrics_path", [
    ({}, True, _layout.PROMETHEUS_PATH),
    ({"metrics_path": "/metrics"}, True, "/metrics"),
    ({"enable": False}, False, _layout.PROMETHEUS_PATH),
])
def test_monitoring_file(arguments, enable, metrics_path, tmp_path):
    path = tmp_path / _layout.MONITORING_CONFIG
    written = monitoring_config(path, **arguments)
    config = _parse(path, monitoring_config_pb2.MonitoringConfig)
    prometheus = config.prometheus_config
    assert (prometheus.enable, prometheus.path) == (enable, metrics_path)
    assert written == config == read_monitoring_config(path)


@pytest.mark.parametrize("arguments, error, match", [
    ({"enable": 1}, TypeError, "enable must be True or False, got 1"),
    ({"metrics_path": "metrics"}, ValueError, "metrics_path='metrics' must be an HTTP path"),
    ({"metrics_path": ""}, ValueError, "metrics_path='' must be an HTTP path"),
    ({"metrics_path": "/a b"}, ValueError, "metrics_path='/a b' must be an HTTP path"),
    ({"metrics_path": "/metrics?x=1"}, ValueError, "metrics_path='/metrics\\?x=1' must be an HTTP"),
    ({"metrics_path": "/v1/models/digits"}, ValueError,
     "metrics_path='/v1/models/digits' lies under /v1/"),
    ({"metrics_path": None}, TypeError, "metrics_path must be a string"),
])
def test_monitoring_refuses(arguments, error, match, tmp_path):
    with pytest.raises(error, match="monitoring_config: " + match):
        monitoring_config(tmp_path / _layout.MONITORING_CONFIG, **arguments)
    assert not list(tmp_path.iterdir())


def test_reading_monitoring_files(tmp_path):
    path = tmp_path / _layout.MONITORING_CONFIG
    path.write_text("prometheus_config { enable: true }")  # empty path: TF Serving's default
    assert read_monitoring_config(path).prometheus_config.path == ""
    path.write_text('prometheus_config { enable: true path: "/V1/x" }')
    with pytest.raises(ValueError, match="prometheus_config.path='/V1/x' lies under /v1/"):
        read_monitoring_config(path)
