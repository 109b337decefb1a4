"""ServableManager: versions, policies, labels, polling, warmup and status as TF Serving."""

import gc
import os
import shutil
import time
import weakref

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from tfopt.export import _layout
from tfopt.serving._errors import ServingError
from tfopt.serving._manager import ServableManager

NAME = "half_plus_two"
AVAILABLE, END = 30, 50
X = {"x": np.array([[1.0]], np.float32)}


@pytest.fixture
def base(tmp_path, half_plus_two_base):
    """add(version) copies half_plus_two's version 123 in as `version`; returns the base path."""
    path = tmp_path / NAME
    path.mkdir()

    def add(*versions, name=None):
        for version in versions:
            shutil.copytree(os.path.join(half_plus_two_base, "123"), path / (name or str(version)))
        return str(path)
    return add


def config(base_path, extra=""):
    return text_format.Parse(
        f'model_config_list {{ config {{ name: "{NAME}" base_path: "{base_path}" '
        f'model_platform: "tensorflow" {extra} }} }}', model_server_config_pb2.ModelServerConfig())


def started(base_path, extra="", **kwargs):
    kwargs.setdefault("file_system_poll_wait_seconds", 0)
    manager = ServableManager(config(base_path, extra), **kwargs)
    manager.start()
    return manager


def states(manager):
    return [(s.version, s.state) for s in manager.status(NAME).model_version_status]


def wait_for(condition, seconds=20):
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


@pytest.mark.parametrize("policy, served", [
    ("", [3]),
    ("model_version_policy { latest { num_versions: 2 } }", [3, 2]),
    ("model_version_policy { all {} }", [3, 2, 1]),
    ("model_version_policy { specific { versions: 1 versions: 3 versions: 9 } }", [3, 1]),
])
def test_version_policies(base, policy, served):
    manager = started(base(1, 2, 3), policy)
    assert states(manager) == [(v, AVAILABLE) for v in served]
    assert manager.servable(NAME).version == served[0]
    for version in served:
        assert manager.servable(NAME, version).predict(X)[1]["y"].tolist() == [[2.5]]
    assert manager.model_names() == [NAME]


def test_only_integer_names_are_versions(base):
    base(name="tmp.123")
    manager = started(base(7, name="007"))
    assert states(manager) == [(7, AVAILABLE)]


@pytest.mark.parametrize("call, code, message", [
    (lambda m: m.servable("other"), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(other)"),
    (lambda m: m.servable(NAME, 9), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(half_plus_two, 9)"),
    (lambda m: m.servable(NAME, label="canary"), grpc.StatusCode.INVALID_ARGUMENT,
     "Unrecognized servable version label: canary"),
    # ServerCore::ServableRequestFromModelSpec (server_core.cc).
    (lambda m: m.servable(""), grpc.StatusCode.INVALID_ARGUMENT,
     "ModelSpec has no name specified."),
    (lambda m: m.status("other"), grpc.StatusCode.NOT_FOUND,
     "Could not find any versions of model other"),
    (lambda m: m.status(NAME, 9), grpc.StatusCode.NOT_FOUND,
     "Could not find version 9 of model half_plus_two"),
])
def test_request_errors(base, call, code, message):
    manager = started(base(1))
    with pytest.raises(ServingError) as raised:
        call(manager)
    assert (raised.value.code, raised.value.message) == (code, message)


LABELS = ('model_version_policy { all {} } version_labels { key: "stable" value: 1 } '
          'version_labels { key: "canary" value: 2 }')


def test_labels_at_startup_need_the_flag(base):
    path = base(1, 2)
    with pytest.raises(ServingError) as raised:
        started(path, LABELS)
    assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
    assert raised.value.message == ("Request to assign label to version 1 of model "
                                    "half_plus_two, which is not currently available for "
                                    "inference")
    manager = started(path, LABELS, allow_version_labels_for_unavailable_models=True)
    assert manager.servable(NAME, label="stable").version == 1
    assert manager.servable(NAME, label="canary").version == 2
    # The status of a label lists every version, as TF Serving's does.
    assert [s.version for s in manager.status(NAME, label="stable").model_version_status] == [2, 1]


def test_labels_by_reload_once_versions_are_available(base):
    path = base(1, 2)
    manager = started(path, "model_version_policy { all {} }")
    manager.reload_config(config(path, LABELS))
    assert manager.servable(NAME, label="canary").version == 2
    with pytest.raises(ServingError, match="version 5 of model half_plus_two, which is not"):
        manager.reload_config(config(path, LABELS + ' version_labels { key: "x" value: 5 }'))
    assert manager.servable(NAME, label="stable").version == 1  # nothing changed


def test_reload_config_drops_and_adds_models(base, tmp_path):
    path = base(1)
    manager = started(path)
    other = config(path)
    other.model_config_list.config[0].name = "renamed"
    manager.reload_config(other)
    assert manager.model_names() == ["renamed"]
    assert manager.servable("renamed").version == 1
    with pytest.raises(ServingError, match=r"Latest\(half_plus_two\)"):
        manager.servable(NAME)
    twice = config(path)
    twice.model_config_list.config.add().CopyFrom(twice.model_config_list.config[0])
    with pytest.raises(ServingError, match="Illegal to list model half_plus_two multiple times"):
        manager.reload_config(twice)


def test_polling_loads_new_versions_and_unloads_removed_ones(base):
    path = base(1)
    manager = started(path, file_system_poll_wait_seconds=0.05)
    try:
        held = manager.servable(NAME)
        base(2)
        wait_for(lambda: manager.servable(NAME).version == 2)
        wait_for(lambda: states(manager) == [(2, AVAILABLE), (1, END)])
        # A request still holding version 1 finishes on it after the unload.
        assert held.predict(X)[1]["y"].tolist() == [[2.5]]
        shutil.rmtree(os.path.join(path, "2"))
        wait_for(lambda: states(manager) == [(2, END), (1, AVAILABLE)])
        assert manager.servable(NAME).version == 1
    finally:
        manager.stop()
    with pytest.raises(ServingError, match="Servable not found"):
        manager.servable(NAME)


def test_failed_load_is_reported_and_the_old_version_keeps_serving(base):
    path = base(1)
    manager = started(path)
    os.makedirs(os.path.join(path, "2"))
    manager.reload_config(config(path))  # a poll, run now
    status = manager.status(NAME).model_version_status
    assert [(s.version, s.state) for s in status] == [(2, END), (1, AVAILABLE)]
    assert status[0].status.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert status[0].status.error_message.startswith("Could not find SavedModel .pb or .pbtxt")
    assert manager.servable(NAME).version == 1


def _predict_log(x, signature=""):
    request = predict_pb2.PredictRequest()
    request.model_spec.signature_name = signature
    request.inputs["x"].CopyFrom(tf.make_tensor_proto(np.asarray(x, np.float32)))
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString()


def _bad_tensor_log():
    request = predict_pb2.PredictRequest()
    request.inputs["x"].dtype = 1  # DT_FLOAT
    request.inputs["x"].tensor_shape.dim.add(size=2)
    request.inputs["x"].tensor_content = b"\x00\x01\x02"  # 3 bytes, not 2 floats
    return prediction_log_pb2.PredictionLog(
        predict_log=prediction_log_pb2.PredictLog(request=request)).SerializeToString()


def _classify_log(signature):
    request = classification_pb2.ClassificationRequest()
    request.model_spec.signature_name = signature
    request.input.example_list.examples.add().ParseFromString(
        __import__("tests.serving.half_plus_two", fromlist=["x"]).example(1.0))
    return prediction_log_pb2.PredictionLog(
        classify_log=prediction_log_pb2.ClassifyLog(request=request)).SerializeToString()


@pytest.mark.parametrize("records, code, message", [
    ([_predict_log([[1.0]]), _classify_log("classify_x_to_y")], None, ""),
    # The record's bytes as they are, not a Python bytes repr (saved_model_warmup_util.cc).
    ([_predict_log([[1.0]]), b"\xff not a proto"], grpc.StatusCode.INVALID_ARGUMENT,
     "Failed to parse warmup record: \\xff not a proto from "),
    ([_predict_log([[1.0]], "nope")], grpc.StatusCode.FAILED_PRECONDITION,
     'Serving signature key "nope" not found.'),
    ([_classify_log("serving_default")], grpc.StatusCode.INVALID_ARGUMENT,
     "No classification inputs found in SignatureDef"),
    # RunWarmupRequest (saved_model_warmup.cc) skips a log of no kind; tfopt-serve also
    # skips multi_inference logs, which TF Serving runs (it has no MultiInference).
    ([prediction_log_pb2.PredictionLog().SerializeToString(), _predict_log([[1.0]])], None, ""),
    ([prediction_log_pb2.PredictionLog(multi_inference_log={}).SerializeToString()], None, ""),
    # saved_model::GetInputValues' text for a tensor that does not parse.
    ([_bad_tensor_log()], grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: x"),
    # An empty Input is reported after the signature checks, as TF Serving orders them.
    ([prediction_log_pb2.PredictionLog(classify_log=prediction_log_pb2.ClassifyLog(
        request=classification_pb2.ClassificationRequest())).SerializeToString()],
     grpc.StatusCode.INVALID_ARGUMENT, "No classification inputs found in SignatureDef"),
    ([_predict_log([[1.0]])] * 1001, grpc.StatusCode.INVALID_ARGUMENT,
     "Number of warmup records exceeds the maximum (1000) at "),
    ([prediction_log_pb2.PredictionLog(session_run_log={}).SerializeToString()],
     grpc.StatusCode.UNIMPLEMENTED, "Unsupported log_type for warmup: 5"),
])
def test_warmup_replay_before_available(base, records, code, message):
    path = base(1)
    warmup = os.path.join(path, "1", _layout.WARMUP_FILE)
    os.makedirs(os.path.dirname(warmup))
    with tf.io.TFRecordWriter(warmup) as writer:
        for record in records:
            writer.write(record)
    (status,) = started(path).status(NAME).model_version_status
    if code is None:
        assert status.state == AVAILABLE
    else:
        assert (status.state, status.status.error_code) == (END, code.value[0])
        assert status.status.error_message.startswith(message)
    # Without warmup the same version loads.
    assert states(started(path, enable_model_warmup=False)) == [(1, AVAILABLE)]


def test_truncated_warmup_file_is_data_loss(base):
    path = base(1)
    warmup = os.path.join(path, "1", _layout.WARMUP_FILE)
    os.makedirs(os.path.dirname(warmup))
    with tf.io.TFRecordWriter(warmup) as writer:
        writer.write(_predict_log([[1.0]]))
    with open(warmup, "r+b") as file:
        file.truncate(os.path.getsize(warmup) - 3)
    (status,) = started(path).status(NAME).model_version_status
    assert status.status.error_code == grpc.StatusCode.DATA_LOSS.value[0]
    assert status.status.error_message.endswith("Please verify your warmup data is in TFRecord "
                                                "format.")


@pytest.mark.parametrize("kwargs, error, message", [
    ({"config": "models.config"}, TypeError, "config must be a ModelServerConfig"),
    ({"file_system_poll_wait_seconds": -1}, ValueError, "file_system_poll_wait_seconds"),
    ({"file_system_poll_wait_seconds": "1"}, TypeError, "file_system_poll_wait_seconds"),
    ({"num_request_iterations_for_warmup": 1.5}, TypeError, "num_request_iterations"),
    ({"config": text_format.Parse('model_config_list { config { name: "m" base_path: "/m" '
                                  'model_platform: "pytorch" } }',
                                  model_server_config_pb2.ModelServerConfig())},
     ValueError, "^config: Model m requests unsupported platform pytorch$"),
    # ValidateModelConfigList (server_core.cc): base paths must be absolute.
    ({"config": text_format.Parse('model_config_list { config { name: "m" } }',
                                  model_server_config_pb2.ModelServerConfig())},
     ValueError, r"^config: Expected model m to have an absolute path or URI; got base_path\(\)=$"),
    ({"config": text_format.Parse('model_config_list { config { name: "m" base_path: "m/1" } }',
                                  model_server_config_pb2.ModelServerConfig())},
     ValueError, r"^config: Expected model m to have an absolute path or URI; "
     r"got base_path\(\)=m/1$"),
])
def test_bad_arguments(tmp_path, kwargs, error, message):
    kwargs.setdefault("config", config(str(tmp_path)))
    with pytest.raises(error, match=message):
        ServableManager(kwargs.pop("config"), **kwargs)


def test_unloaded_version_is_released_with_its_last_request(base):
    path = base(1)
    manager = started(path)
    held = manager.servable(NAME)
    base(2)
    manager.reload_config(config(path))  # a poll: 2 loads, 1 unloads
    assert states(manager) == [(2, AVAILABLE), (1, END)]
    assert held.predict(X)[1]["y"].tolist() == [[2.5]]
    released = weakref.ref(held)
    del held
    gc.collect()
    assert released() is None  # the manager keeps no reference: its session can close
