"""tfopt.serving Client end to end over loopback sockets: gRPC servicers and the REST app."""

import socket
import threading
import time
from concurrent import futures

import grpc
import numpy as np
import pytest
from tensorflow.core.example import example_pb2

from tests.serving import grpc_servers
from tests.serving.rest_server import RunningApp
from tfopt.serving import _client_examples
from tfopt.serving import _json_examples
from tfopt.serving._client import Client
from tfopt.serving._client_rest import status_code
from tfopt.serving._errors import ServingError
from tfopt.serving._grpc import add_servicers
from tfopt.serving._rest import make_rest_app

VERSION = grpc_servers.HALF_PLUS_TWO_VERSION
PROTOCOLS = ["grpc", "rest"]


@pytest.fixture(scope="module")
def manager(tmp_path_factory, half_plus_two_base):
    manager = grpc_servers.start_manager(tmp_path_factory.mktemp("client_models"),
                                         half_plus_two_base)
    yield manager
    manager.stop()


@pytest.fixture(scope="module")
def ports(manager):
    app = RunningApp(make_rest_app(manager))
    try:
        with grpc_servers.grpc_server(manager) as grpc_port:
            yield {"grpc_port": grpc_port, "rest_port": app.port}
    finally:
        app.stop()


@pytest.fixture(scope="module", params=PROTOCOLS)
def connect(request, ports):
    clients = []

    def connect(model_name="half_plus_two", **kwargs):
        client = Client("127.0.0.1", model_name=model_name, protocol=request.param,
                        **{**ports, **kwargs})
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


def test_predict_one_input_from_a_bare_array(connect):
    outputs = connect().predict(np.array([[1.0], [2.0], [5.0]], np.float32))
    np.testing.assert_array_equal(outputs, np.array([[2.5], [3.0], [4.5]], np.float32))
    assert outputs.dtype == np.float32


@pytest.mark.parametrize("x", [[[1.0], [2.0]], np.array([[1], [2]]), np.array([[1.0], [2.0]])],
                         ids=["list", "int64", "float64"])
def test_numbers_are_cast_to_the_signatures_dtype(connect, x):
    outputs = connect().predict(x)
    assert outputs.dtype == np.float32
    np.testing.assert_array_equal(outputs, [[2.5], [3.0]])


@pytest.mark.parametrize("rows", [1, 3])
def test_predict_two_inputs_equals_in_process_outputs(connect, manager, rows):
    inputs = grpc_servers.pair_inputs(rows)
    _, expected = manager.servable("pair").predict(inputs)
    outputs = connect("pair").predict(inputs)
    assert set(outputs) == {"sum", "logits"}
    for alias, array in expected.items():
        np.testing.assert_array_equal(outputs[alias], array)


def test_predict_one_input_tfopt_model_by_name_and_by_array(connect, manager):
    x = np.arange(8, dtype=np.float32).reshape(2, 4)
    _, expected = manager.servable("one").predict({"features": x})
    client = connect("one")
    np.testing.assert_array_equal(client.predict(x), expected["logits"])
    np.testing.assert_array_equal(client.predict({"features": x}), expected["logits"])


def test_outputs_keep_the_signatures_dtypes(connect, manager):
    x = np.array([[1.0, 2.6], [-4.0, 0.1]], np.float32)
    _, expected = manager.servable("typed").predict({"x": x})
    outputs = connect("typed").predict(x)
    assert (outputs["third"].dtype, outputs["rounded"].dtype) == (np.float64, np.int32)
    # A float64 read back as float32 (what JSON numbers alone suggest) would differ here.
    np.testing.assert_array_equal(outputs["third"], expected["third"])
    np.testing.assert_array_equal(outputs["rounded"], [[1, 3], [-4, 0]])


def test_rest_row_and_columnar_forms_agree(ports):
    client = Client("127.0.0.1", model_name="pair", protocol="rest", **ports)
    inputs = grpc_servers.pair_inputs(2)
    row, columnar = (client.predict(inputs, form=form) for form in ("row", "columnar"))
    for alias in ("sum", "logits"):
        np.testing.assert_array_equal(row[alias], columnar[alias])
    # Inputs of different batch sizes can only go columnar; the client picks it.
    scalar = Client("127.0.0.1", model_name="half_plus_two", protocol="rest", **ports)
    assert float(scalar.predict(np.float32(4.0))) == 4.0


def test_version_label_and_signature(connect):
    client = connect()
    x = np.array([[2.0]], np.float32)
    np.testing.assert_array_equal(client.predict(x, version=VERSION), [[3.0]])
    examples = np.array([grpc_servers_example(2.0)], object)
    np.testing.assert_array_equal(client.predict({"inputs": examples},
                                                 signature_name="regress_x_to_y2"), [[4.0]])


def grpc_servers_example(x):
    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(x)
    return example.SerializeToString()


@pytest.mark.parametrize("call, code, message", [
    (lambda c: c.predict(np.ones((1, 1), np.float32), version=7), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(half_plus_two, 7)"),
    (lambda c: c.predict(np.ones((1, 1), np.float32), label="canary"),
     grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: canary"),
    (lambda c: c.predict({"z": np.ones((1, 1), np.float32)}), grpc.StatusCode.INVALID_ARGUMENT,
     None),
    (lambda c: c.regress([{"x": 1.0}], signature_name="nope"), grpc.StatusCode.INVALID_ARGUMENT,
     "No signature was found with the name: nope"),
    (lambda c: c.metadata(version=7), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Specific(half_plus_two, 7)"),
])
def test_server_errors_raise_serving_error_with_code_and_message(connect, call, code, message):
    client = connect()
    with pytest.raises(ServingError) as info:
        call(client)
    assert info.value.code == code
    if message is not None:
        assert info.value.message == message
    # The server and the client still work afterwards.
    np.testing.assert_array_equal(client.predict(np.array([[0.0]], np.float32)), [[2.0]])


def test_unknown_model(connect):
    with pytest.raises(ServingError) as info:
        connect("nope").predict(np.ones((1, 1), np.float32), signature_name="serving_default")
    assert info.value.code == grpc.StatusCode.NOT_FOUND
    assert info.value.message == "Servable not found for request: Latest(nope)"


@pytest.mark.parametrize("context", [None, {"x": 10.0}])
def test_classify_and_regress(connect, context):
    client = connect()
    examples = [{"x": 1.0}, {"x": 3.0}]
    labels, scores = client.classify(examples, context=context, signature_name="classify_x_to_y")
    np.testing.assert_array_equal(scores, [[2.5], [3.5]])
    assert labels.tolist() == [[b""], [b""]]
    values = client.regress(examples, context=context, signature_name="regress_x_to_y")
    np.testing.assert_array_equal(values, np.array([2.5, 3.5], np.float32))
    # tf.train.Example protos work as well as dicts.
    proto = example_pb2.Example()
    proto.features.feature["x"].float_list.value.append(5.0)
    np.testing.assert_array_equal(client.regress([proto], signature_name="regress_x_to_y2"),
                                  [5.5])


def test_classify_a_tfopt_classifier_has_its_class_names(connect, manager):
    features = [1.0, 2.0, 3.0, 4.0]
    labels, scores = connect("one").classify([{"features": features}], signature_name="classify")
    example = example_pb2.Example()
    example.features.feature["features"].float_list.value.extend(features)
    _, classes, expected = manager.servable("one").classify([example.SerializeToString()],
                                                            "classify")
    assert labels.tolist() == classes.tolist()
    np.testing.assert_allclose(scores, expected, rtol=1e-6)


def test_metadata_and_status(connect):
    client = connect()
    signatures = client.metadata().signature_def
    assert set(signatures) == {"serving_default", "classify_x_to_y", "regress_x_to_y",
                               "regress_x_to_y2"}
    assert list(signatures["serving_default"].inputs) == ["x"]
    (status,) = client.status().model_version_status
    assert (status.version, status.state, status.status.error_code) == (VERSION, 30, 0)
    assert client.status(version=VERSION).model_version_status[0].version == VERSION
    with pytest.raises(ServingError) as info:
        connect("nope").status()
    assert info.value.code == grpc.StatusCode.NOT_FOUND


def test_http_statuses_map_back_to_codes():
    assert status_code(400) == grpc.StatusCode.INVALID_ARGUMENT
    assert status_code(404) == grpc.StatusCode.NOT_FOUND
    assert status_code(503) == grpc.StatusCode.UNAVAILABLE
    assert status_code(504) == grpc.StatusCode.DEADLINE_EXCEEDED
    assert status_code(413) == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status_code(500) == grpc.StatusCode.INTERNAL
    assert status_code(418) == grpc.StatusCode.INVALID_ARGUMENT


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_refused_connections_are_retried_then_unavailable(protocol):
    port = free_port()
    client = Client("127.0.0.1", model_name="m", grpc_port=port, rest_port=port,
                    protocol=protocol, retries=2, timeout=5)
    start = time.monotonic()
    with pytest.raises(ServingError) as info:
        client.status()
    assert info.value.code == grpc.StatusCode.UNAVAILABLE
    assert f"127.0.0.1:{port}" in info.value.message
    # Two retries after 0.05 s and 0.1 s: well within the deadline.
    assert 0.14 < time.monotonic() - start < 3


def test_a_server_that_starts_late_is_reached_by_retries(manager):
    port = free_port()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    add_servicers(server, manager)
    server.add_insecure_port(f"127.0.0.1:{port}")
    starter = threading.Timer(0.3, server.start)
    starter.start()
    try:
        client = Client("127.0.0.1", model_name="half_plus_two", grpc_port=port, retries=8,
                        timeout=10)
        np.testing.assert_array_equal(client.predict(np.array([[1.0]], np.float32)), [[2.5]])
        client.close()
    finally:
        starter.join()
        server.stop(grace=None)


class SlowManager:
    """Answers like `manager` after `delay` seconds."""

    def __init__(self, manager, delay):
        self.manager, self.delay = manager, delay

    def servable(self, *args, **kwargs):
        time.sleep(self.delay)
        return self.manager.servable(*args, **kwargs)

    def status(self, *args, **kwargs):
        return self.manager.status(*args, **kwargs)

    def reload_config(self, config):
        raise AssertionError("not called")


def test_grpc_calls_have_a_deadline(manager):
    with grpc_servers.grpc_server(SlowManager(manager, 2.0)) as port:
        client = Client("127.0.0.1", model_name="half_plus_two", grpc_port=port, timeout=0.3)
        start = time.monotonic()
        with pytest.raises(ServingError) as info:
            client.predict({"x": np.ones((1, 1), np.float32)})
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - start < 1.5
        client.close()


def test_the_metadata_lookup_counts_against_the_calls_deadline(manager):
    # A bare array needs the input's name from the metadata first: 0.25 s for it,
    # 0.25 s for the call, 0.4 s for both.
    with grpc_servers.grpc_server(SlowManager(manager, 0.25)) as port:
        client = Client("127.0.0.1", model_name="half_plus_two", grpc_port=port, timeout=0.4)
        with pytest.raises(ServingError) as info:
            client.predict(np.ones((1, 1), np.float32))
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        client.close()


def test_rest_calls_have_a_deadline():
    # A server that accepts the connection and never answers.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(4)
        client = Client("127.0.0.1", model_name="m", rest_port=listener.getsockname()[1],
                        protocol="rest", timeout=0.3)
        start = time.monotonic()
        with pytest.raises(ServingError) as info:
            client.status()
        assert info.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - start < 1.5


def test_eight_threads_of_200_requests_equal_in_process_outputs(ports, manager):
    client = Client("127.0.0.1", model_name="pair", grpc_port=ports["grpc_port"])
    inputs = [grpc_servers.pair_inputs(rows=1 + index % 3, seed=index) for index in range(8)]
    expected = [manager.servable("pair").predict(item)[1] for item in inputs]

    def run(index):
        for _ in range(200):
            outputs = client.predict(inputs[index])
            for alias, array in expected[index].items():
                np.testing.assert_array_equal(outputs[alias], array)
        return index

    with futures.ThreadPoolExecutor(8) as pool:
        assert sorted(pool.map(run, range(8))) == list(range(8))
    client.close()


@pytest.mark.parametrize("kwargs, error, text", [
    ({"host": ""}, ValueError, "host must be a non-empty str"),
    ({"host": None}, TypeError, "host must be a non-empty str"),
    ({"model_name": None}, TypeError, "model_name must be a non-empty str"),
    ({"model_name": ""}, ValueError, "model_name must be a non-empty str"),
    ({"grpc_port": 0}, ValueError, "grpc_port must be a port number"),
    ({"grpc_port": "8500"}, ValueError, "grpc_port must be a port number"),
    ({"rest_port": True}, ValueError, "rest_port must be a port number"),
    ({"rest_port": 70000}, ValueError, "rest_port must be a port number"),
    ({"protocol": "http"}, ValueError, "protocol must be one of"),
    ({"timeout": 0}, ValueError, "timeout must be a number of seconds > 0"),
    ({"timeout": float("nan")}, ValueError, "timeout must be a number of seconds > 0"),
    ({"timeout": "10"}, ValueError, "timeout must be a number of seconds > 0"),
    ({"retries": -1}, ValueError, "retries must be an int >= 0"),
    ({"retries": 1.5}, ValueError, "retries must be an int >= 0"),
])
def test_constructor_misuse(kwargs, error, text):
    with pytest.raises(error, match=text):
        Client(**{"model_name": "m", **kwargs})


X = np.ones((1, 1), np.float32)


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize("call, error, text", [
    (lambda c: c.predict(None), TypeError, "inputs must be a numpy array"),
    (lambda c: c.predict("abc"), TypeError, "inputs must be a numpy array"),
    (lambda c: c.predict({}), ValueError, "inputs is an empty dict"),
    (lambda c: c.predict({1: X}), TypeError, "input names must be non-empty str"),
    (lambda c: c.predict(np.array(["2020"], "datetime64[D]")), TypeError, "dtype datetime64"),
    (lambda c: c.predict(X, version=-1), ValueError, "version must be None or a version"),
    (lambda c: c.predict(X, version="1"), ValueError, "version must be None or a version"),
    (lambda c: c.predict(X, version=True), ValueError, "version must be None or a version"),
    (lambda c: c.predict(X, label=""), ValueError, "label must be a non-empty str or None"),
    (lambda c: c.predict(X, version=1, label="a"), ValueError, "give version or label"),
    (lambda c: c.predict(X, signature_name=3), TypeError, "signature_name must be"),
    (lambda c: c.predict(X, form="rows"), ValueError, "form must be"),
    (lambda c: c.classify([]), ValueError, "examples must be a non-empty list"),
    (lambda c: c.classify({"x": 1.0}), ValueError, "examples must be a non-empty list"),
    (lambda c: c.regress([3]), TypeError, r"examples\[0\] must be a tf.train.Example"),
    (lambda c: c.regress([{"x": None}]), TypeError, r"examples\[0\]\['x'\] must be a float"),
    (lambda c: c.regress([{"x": [1, "a"]}]), TypeError, "mixes value types"),
    (lambda c: c.regress([{"x": 1.0}], context=[1]), TypeError, "context must be"),
    (lambda c: c.metadata(version=1.5), ValueError, "version must be None or a version"),
])
def test_call_misuse_fails_before_anything_is_sent(protocol, call, error, text):
    # The port has no server: a call that got as far as sending would be UNAVAILABLE.
    client = Client("127.0.0.1", model_name="m", grpc_port=free_port(), rest_port=free_port(),
                    protocol=protocol, retries=0)
    with pytest.raises(error, match=text):
        call(client)


def test_form_is_for_rest_only():
    client = Client("127.0.0.1", model_name="m", grpc_port=free_port(), retries=0)
    with pytest.raises(ValueError, match="applies to protocol='rest' only"):
        client.predict({"x": X}, form="row")


def test_examples_as_dicts_and_protos_build_the_same_example():
    features = {"f": [1.0, 2.5], "i": [3, -4], "b": [True], "s": ["é", b"\xff"], "one": 2.0}
    example = _client_examples.to_example(features)
    kinds = {name: feature.WhichOneof("kind")
             for name, feature in example.features.feature.items()}
    assert kinds == {"f": "float_list", "i": "int64_list", "b": "int64_list",
                     "s": "bytes_list", "one": "float_list"}
    assert list(example.features.feature["s"].bytes_list.value) == ["é".encode(), b"\xff"]
    # A proto sent over REST goes as a dict that the server turns back into the same proto.
    assert _client_examples.to_example(_client_examples.to_features(example)) == example
    # Whole floats stay floats in the JSON (80.0, not 80, which TF Serving reads as int64).
    body = _json_examples.encode_examples_request([_client_examples.to_features(
        _client_examples.to_example({"x": 80.0}))])
    assert body == '{"examples": [{"x": [80.0]}]}'
