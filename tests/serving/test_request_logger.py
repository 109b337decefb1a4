"""Tests of request logging: sampled calls over REST and gRPC written as TF Serving logs them."""

import glob
import random
import types
from concurrent import futures

import grpc
import numpy as np
import pytest
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.config import logging_config_pb2
from tensorflow_serving.config import model_server_config_pb2

import tfopt  # noqa: F401  (before tf_keras)
import tf_keras as keras

from tests.cli.conftest import run_tool  # noqa: F401  (a fixture)
from tests.serving.rest_server import RunningApp
from tfopt import datasets
from tfopt import export
from tfopt.cli import monitor
from tfopt.serving import Client
from tfopt.serving import ServingError
from tfopt.serving import _request_logger
from tfopt.serving import _request_logs
from tfopt.serving._grpc import add_servicers
from tfopt.serving._manager import ServableManager
from tfopt.serving._rest import make_rest_app

INPUT = "pixels"
MODELS = ("digits", "digits_shifted", "digits_unlogged")


def _digits_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((64,), name=INPUT)
    return keras.Model(inputs, keras.layers.Dense(10, activation="softmax", name="probs")(inputs))


def _digits():
    """(x_train, x_test) of sklearn's digits, each image flattened to 64 values in [0, 1]."""
    (x_train, _), (x_test, _) = datasets.load_digits()
    return x_train.reshape(len(x_train), -1), x_test.reshape(len(x_test), -1)


def _logging_config(prefix, rate=1.0, collector_type=""):
    config = logging_config_pb2.LoggingConfig()
    config.sampling_config.sampling_rate = rate
    config.log_collector_config.type = collector_type
    config.log_collector_config.filename_prefix = prefix
    return config


def _config(base_path, log_dir, half_plus_two_base, rate=1.0):
    """Three names for one digits export: two log (to their own prefixes), one does not.

    half_plus_two (classify and regress signatures) logs too.
    """
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name="half_plus_two",
                                                base_path=half_plus_two_base,
                                                model_platform="tensorflow")
    model.logging_config.CopyFrom(_logging_config(f"{log_dir}/half_plus_two/log", rate))
    for name in MODELS:
        model = config.model_config_list.config.add(name=name, base_path=base_path,
                                                    model_platform="tensorflow")
        if name != "digits_unlogged":
            model.logging_config.CopyFrom(_logging_config(f"{log_dir}/{name}/prediction_log",
                                                          rate))
    return config


@pytest.fixture(scope="module")
def served(tmp_path_factory, half_plus_two_base):
    """A digits export served over REST and gRPC with request logging (rate 1.0)."""
    root = tmp_path_factory.mktemp("request_logger")
    base_path = str(root / "digits")
    export.saved_model(_digits_model(), base_path, version=1, verify=False)
    config = _config(base_path, root / "logs", half_plus_two_base)
    manager = ServableManager(config, file_system_poll_wait_seconds=0)
    manager.start()
    request_logger = _request_logger.ServerRequestLogger(config)
    app = RunningApp(make_rest_app(manager, request_logger=request_logger))
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    add_servicers(server, manager, request_logger=request_logger)
    grpc_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield types.SimpleNamespace(manager=manager, request_logger=request_logger,
                                rest_port=app.port, grpc_port=grpc_port, root=root, config=config)
    server.stop(grace=None)
    app.stop()
    request_logger.stop()
    manager.stop()


def _send(served, model_name, x, batch=10):
    """Predicts `x` in batches, alternating REST and gRPC; the outputs, in order."""
    outputs = []
    clients = [Client("127.0.0.1", model_name, grpc_port=served.grpc_port,
                      rest_port=served.rest_port, protocol=protocol)
               for protocol in ("rest", "grpc")]
    for number, start in enumerate(range(0, len(x), batch)):
        outputs.append(clients[number % 2].predict({INPUT: x[start:start + batch]}))
    for client in clients:
        client.close()
    return np.concatenate(outputs)


def test_every_call_is_logged_with_its_inputs_outputs_and_metadata(served):
    x = _digits()[1][:40]
    outputs = _send(served, "digits", x)  # 2 REST + 2 gRPC calls
    log = _request_logs.read(f"{served.root}/logs/digits/prediction_log*")
    assert log.model_name == "digits" and log.records == log.responses == 4
    np.testing.assert_array_equal(log.inputs[INPUT], x)
    np.testing.assert_allclose(log.outputs["probs"], outputs, rtol=1e-6)
    assert log.versions == [1] and log.signatures == ["serving_default"]
    record = next(_request_logs._records(log.files[0]))[1]  # pylint: disable=protected-access
    metadata = record.log_metadata
    assert metadata.sampling_config.sampling_rate == 1.0
    assert list(metadata.saved_model_tags) == ["serve"] and metadata.timestamp_secs > 0
    assert record.predict_log.response.model_spec.version.value == 1


def test_failed_calls_and_models_without_logging_config_log_nothing(served):
    x = np.zeros((3, 64), np.float32)
    _send(served, "digits_unlogged", x)
    with Client("127.0.0.1", "digits_shifted", grpc_port=served.grpc_port) as client:
        with pytest.raises(ServingError) as error:  # the servable refuses 5 pixels per row
            client.predict({INPUT: x[:, :5]})
    assert error.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert not glob.glob(f"{served.root}/logs/digits_unlogged*")
    assert not glob.glob(f"{served.root}/logs/digits_shifted/*")


@pytest.mark.parametrize("shift, status", [(0.0, 0), (0.3, monitor.DRIFT)])
def test_logged_requests_round_trip_into_tfopt_monitor(served, run_tool, tmp_path, shift,
                                                       status):
    x_train, x_test = _digits()
    model_name = "digits_shifted" if shift else "digits"
    _send(served, model_name, np.clip(x_test[:150] + shift, 0, 1).astype(np.float32))
    served.request_logger.stop()  # closes the files; the next call opens new ones
    servable = served.manager.servable("digits")
    _, reference_outputs = servable.predict({INPUT: x_train})
    reference = tmp_path / "train.npz"
    np.savez(reference, **{INPUT: x_train, "predictions": reference_outputs["probs"]})
    code, stdout, stderr = run_tool(
        monitor.run, f"--logs={served.root}/logs/{model_name}/prediction_log*",
        f"--model_name={model_name}", f"--reference={reference}",
        f"--output_dir={tmp_path}/out")
    assert (code or 0) == status, stdout + stderr
    # Shifted pixels shift the predicted classes too, so both may be named.
    verdict = stdout.splitlines()[-1]
    assert verdict == "no drift" if status == 0 else verdict.startswith(f"drift in {INPUT}")


class _Servable:
    name, version = "digits", 7


def test_sampling_rate_keeps_the_seeded_share_of_calls(tmp_path):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name="digits", base_path="/unused")
    model.logging_config.CopyFrom(_logging_config(str(tmp_path / "log"), rate=0.5))
    request_logger = _request_logger.ServerRequestLogger(config, rng=random.Random(3))
    x = np.arange(200, dtype=np.float32).reshape(200, 1)
    for row in x:
        request_logger.log_predict(_Servable(), "", {"x": row[None]}, {"y": row[None] * 2})
    request_logger.stop()
    draws = random.Random(3)
    kept = [row for row in x if draws.random() < 0.5]
    assert 80 <= len(kept) <= 120
    log = _request_logs.read(str(tmp_path / "log*"))
    assert log.records == len(kept) and log.versions == [7]
    np.testing.assert_array_equal(log.inputs["x"], np.stack(kept))


def test_files_rotate_after_max_records(tmp_path):
    logger = _request_logger.RequestLogger("m", _logging_config(str(tmp_path / "p")),
                                           max_records_per_file=2)
    request_logger = _request_logger.ServerRequestLogger()
    request_logger._loggers["m"] = logger  # pylint: disable=protected-access
    servable = types.SimpleNamespace(name="m", version=1)
    for value in range(5):
        request_logger.log_predict(servable, "serving_default", {"x": np.array([value])},
                                   {"y": np.array([value])})
    request_logger.stop()
    assert [path[-5:] for path in logger.files] == ["00000", "00001", "00002"]
    assert sorted(glob.glob(str(tmp_path / "p-*"))) == logger.files
    np.testing.assert_array_equal(_request_logs.read(str(tmp_path / "p-*")).inputs["x"],
                                  np.arange(5))


@pytest.mark.parametrize("rate, collector_type, prefix, match", [
    (1.5, "", "logs/p", r"sampling_rate must be in \[0, 1\], got 1.5"),
    (-0.1, "", "logs/p", "sampling_rate must be in"),
    (0.5, "kafka", "logs/p", "'kafka' is not a collector tfopt-serve has"),
    (0.5, "", "", "filename_prefix is empty"),
])
def test_bad_logging_configs_are_refused_naming_the_model(tmp_path, rate, collector_type,
                                                          prefix, match):
    config = model_server_config_pb2.ModelServerConfig()
    model = config.model_config_list.config.add(name="digits", base_path="/unused")
    model.logging_config.CopyFrom(_logging_config(
        prefix and str(tmp_path / prefix), rate, collector_type))
    with pytest.raises(ValueError, match=match) as error:
        _request_logger.ServerRequestLogger(config)
    assert "Model 'digits'" in str(error.value)


def test_a_reload_with_a_bad_logging_config_is_refused_over_grpc(served):
    config = model_server_config_pb2.ModelServerConfig()
    config.CopyFrom(served.config)
    config.model_config_list.config[0].logging_config.sampling_config.sampling_rate = 2.0
    with grpc.insecure_channel(f"127.0.0.1:{served.grpc_port}") as channel:
        stub = model_service_pb2_grpc.ModelServiceStub(channel)
        with pytest.raises(grpc.RpcError) as error:
            stub.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=config))
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "sampling_rate must be in [0, 1], got 2.0" in error.value.details()
    assert sorted(served.manager.model_names()) == sorted([*MODELS, "half_plus_two"])


def test_classify_and_regress_calls_are_logged_as_examples_and_results(served):
    xs = [1.0, 2.0, 5.0]
    for protocol in ("rest", "grpc"):
        with Client("127.0.0.1", "half_plus_two", grpc_port=served.grpc_port,
                    rest_port=served.rest_port, protocol=protocol) as client:
            client.classify([{"x": x} for x in xs], signature_name="classify_x_to_y")
            client.regress([{"x": x} for x in xs], signature_name="regress_x_to_y")
    served.request_logger.stop()
    pattern = f"{served.root}/logs/half_plus_two/log*"
    log = _request_logs.read(pattern)
    assert log.records == log.responses == 4 and log.versions == [123]
    assert log.signatures == ["classify_x_to_y", "regress_x_to_y"]
    np.testing.assert_array_equal(log.inputs["x"][:, 0], xs * 4)
    y = [0.5 * x + 2 for x in xs]
    np.testing.assert_allclose(log.outputs["scores"][:, 0], y * 2)
    np.testing.assert_allclose(log.outputs["outputs"], y * 2)
    kinds = [record.WhichOneof("log_type") for path in log.files
             for _, record in _request_logs._records(path)]  # pylint: disable=protected-access
    assert kinds == ["classify_log", "regress_log"] * 2
