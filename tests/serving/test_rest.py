"""The REST app over real loopback sockets: TF Serving's endpoints, JSON, errors and codes.

One manager serves three models: TF Serving's half_plus_two (version 123), a
one-input and a two-input Keras model exported with tfopt.export.saved_model.
Two apps run on uvicorn: a plain one, and one with a Batcher and a small body
limit.
"""

import base64
import concurrent.futures
import json
import os
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

import tfopt  # noqa: F401  (before tf_keras)
import tf_keras as keras
from tensorflow_serving.config import model_server_config_pb2

from tests.serving.rest_server import RunningApp
from tfopt import export
from tfopt.export._protos import session_bundle_config_pb2
from tfopt.serving._batching import Batcher
from tfopt.serving._manager import ServableManager
from tfopt.serving._rest import make_rest_app

HPT = "half_plus_two"
SMALL_LIMIT = 64 * 1024


def _one_input_model():
    inputs = keras.Input((3,), name="x")
    outputs = keras.layers.Dense(2, name="y", kernel_initializer="glorot_uniform")(inputs)
    return keras.Model(inputs, outputs)


def _two_input_model():
    a = keras.Input((2,), name="a")
    b = keras.Input((3,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    return keras.Model([a, b], [keras.layers.Dense(1, name="sum")(joined),
                                keras.layers.Dense(2, name="pair")(joined)])


@pytest.fixture(scope="module")
def served(tmp_path_factory, half_plus_two_base):
    """(plain app, batching app with a 64 KiB limit, {name: keras model}); stopped at the end."""
    keras.utils.set_random_seed(0)
    root = tmp_path_factory.mktemp("rest_models")
    models = {"one": _one_input_model(), "two": _two_input_model()}
    config = model_server_config_pb2.ModelServerConfig()
    for name, model in models.items():
        export.saved_model(model, str(root / name), version=1, verify=False)
    for name, base in [(HPT, half_plus_two_base), ("one", root / "one"), ("two", root / "two")]:
        config.model_config_list.config.add(name=name, base_path=str(base),
                                            model_platform="tensorflow")
    config.model_config_list.config[1].version_labels["stable"] = 1
    # Labels in a config at start-up need this, as in TF Serving.
    manager = ServableManager(config, file_system_poll_wait_seconds=0,
                              allow_version_labels_for_unavailable_models=True)
    manager.start()
    parameters = session_bundle_config_pb2.BatchingParameters()
    parameters.max_batch_size.value = 64
    parameters.batch_timeout_micros.value = 20_000
    parameters.num_batch_threads.value = 2
    batcher = Batcher(parameters)
    plain = RunningApp(make_rest_app(manager))
    batching = RunningApp(make_rest_app(manager, batcher=batcher, max_body_bytes=SMALL_LIMIT))
    yield plain, batching, models
    plain.stop()
    batching.stop()
    batcher.stop()
    manager.stop()


@pytest.fixture(scope="module")
def client():
    with httpx.Client(timeout=20) as session:
        yield session


def _post(client, app, path, body):
    content = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return client.post(app.url + path, content=content)


def _is_json(response):
    return response.headers["content-type"] == "application/json"


def test_status_lists_the_version_as_tf_serving_does(served, client):
    response = client.get(served[0].url + f"/v1/models/{HPT}")
    assert response.status_code == 200 and _is_json(response)
    assert response.json() == {"model_version_status": [{
        "version": "123", "state": "AVAILABLE",
        "status": {"error_code": "OK", "error_message": ""}}]}
    assert client.get(served[0].url + f"/v1/models/{HPT}/versions/123").json() == response.json()


def test_metadata_has_the_model_spec_and_signatures(served, client):
    response = client.get(served[0].url + f"/v1/models/{HPT}/metadata")
    assert response.status_code == 200 and _is_json(response)
    body = response.json()
    assert body["model_spec"] == {"name": HPT, "signature_name": "", "version": "123"}
    signatures = body["metadata"]["signature_def"]["signature_def"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(signatures)
    x = signatures["serving_default"]["inputs"]["x"]
    assert x["dtype"] == "DT_FLOAT" and x["tensor_shape"]["dim"][0]["size"] == "-1"


@pytest.mark.parametrize("body, expected", [
    ({"instances": [1.0, 2.0, 5.0]}, {"predictions": [2.5, 3.0, 4.5]}),
    ({"inputs": [[1.0], [2.0]]}, {"outputs": [[2.5], [3.0]]}),
    ({"signature_name": "serving_default", "instances": [[1, 2], [3, 4]]},
     {"predictions": [[2.5, 3.0], [3.5, 4.0]]}),
], ids=["row", "columnar", "shape_not_enforced"])
def test_predict_half_plus_two(served, client, body, expected):
    for app in served[:2]:
        response = _post(client, app, f"/v1/models/{HPT}:predict", body)
        assert response.status_code == 200 and _is_json(response), response.text
        assert response.json() == expected


@pytest.mark.parametrize("path", [f"/v1/models/{HPT}/versions/123:predict",
                                  f"/V1/MODELS/{HPT}:predict",
                                  "/v1/models/half%5Fplus_two:predict"])
def test_predict_paths_with_version_case_and_escapes(served, client, path):
    response = _post(client, served[0], path, {"instances": [0.0]})
    assert response.status_code == 200 and response.json() == {"predictions": [2.0]}


def test_labels_resolve_for_predict_and_metadata_and_are_ignored_by_status(served, client):
    x = [[1.0, 2.0, 3.0]]
    labelled = _post(client, served[0], "/v1/models/one/labels/stable:predict", {"instances": x})
    latest = _post(client, served[0], "/v1/models/one:predict", {"instances": x})
    assert labelled.status_code == 200 and labelled.json() == latest.json()
    metadata = client.get(served[0].url + "/v1/models/one/labels/stable/metadata").json()
    assert metadata["model_spec"]["version"] == "1"
    # get_model_status_impl.cc ignores the label, even an unknown one: all versions.
    status = client.get(served[0].url + "/v1/models/one/labels/nope").json()
    assert [v["version"] for v in status["model_version_status"]] == ["1"]
    unknown = client.get(served[0].url + "/v1/models/one/labels/nope/metadata")
    assert unknown.status_code == 400
    assert unknown.json() == {"error": "Unrecognized servable version label: nope"}


def test_classify_and_regress_on_half_plus_two(served, client):
    url = f"/v1/models/{HPT}"
    body = {"signature_name": "classify_x_to_y", "examples": [{"x": 1.0}, {"x": 4.0}]}
    response = _post(client, served[0], url + ":classify", body)
    assert response.status_code == 200 and _is_json(response), response.text
    assert response.json() == {"results": [[["", 2.5]], [["", 4.0]]]}
    body = {"signature_name": "regress_x_to_y", "context": {"x": 9.0},
            "examples": [{"x": 1.0}, {}]}
    response = _post(client, served[0], url + ":regress", body)
    assert response.status_code == 200 and response.json() == {"results": [2.5, 6.5]}


@pytest.mark.parametrize("form", ["row", "columnar"])
def test_predict_one_and_two_input_models_match_keras(served, client, form):
    rng = np.random.default_rng(0)
    one, two = served[2]["one"], served[2]["two"]
    x = rng.normal(size=(4, 3)).astype(np.float32)
    a, b = rng.normal(size=(4, 2)).astype(np.float32), rng.normal(size=(4, 3)).astype(np.float32)
    if form == "row":
        one_body = {"instances": x.tolist()}
        two_body = {"instances": [{"a": ai.tolist(), "b": bi.tolist()} for ai, bi in zip(a, b)]}
    else:
        one_body = {"inputs": x.tolist()}
        two_body = {"inputs": {"a": a.tolist(), "b": b.tolist()}}
    for app in served[:2]:
        got = _post(client, app, "/v1/models/one:predict", one_body).json()
        values = got["predictions"] if form == "row" else got["outputs"]
        np.testing.assert_allclose(values, one(x).numpy(), rtol=1e-5, atol=1e-5)
        got = _post(client, app, "/v1/models/two:predict", two_body).json()
        want_sum, want_pair = (t.numpy() for t in two([a, b]))
        if form == "row":
            np.testing.assert_allclose([r["sum"] for r in got["predictions"]], want_sum,
                                       rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose([r["pair"] for r in got["predictions"]], want_pair,
                                       rtol=1e-5, atol=1e-5)
        else:
            np.testing.assert_allclose(got["outputs"]["sum"], want_sum, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(got["outputs"]["pair"], want_pair, rtol=1e-5, atol=1e-5)


# (method, path, body, HTTP code, the error text or its start), from TF Serving's handler,
# JSON tensor and e2e tests.
_ERRORS = [
    ("GET", "/v1/models", None, 400, "Missing model name in request."),
    ("GET", f"/v1/models/{HPT}:predict", None, 400,
     f"Malformed request: GET /v1/models/{HPT}:predict"),
    ("POST", f"/v1/models/{HPT}", "{}", 400, f"Malformed request: POST /v1/models/{HPT}"),
    ("GET", f"/v1/models/{HPT}/version/50", None, 400, "Malformed request: GET"),
    ("GET", f"/v1/models/{HPT}/versions/HELLO", None, 400, "Malformed request: GET"),
    ("GET", f"/v1/models/{HPT}/versions/1/labels/a", None, 400, "Malformed request: GET"),
    ("POST", f"/v1/models/{HPT}:explain", "{}", 400, "Malformed request: POST"),
    ("POST", f"/v1/models/{HPT}:PREDICT", "{}", 400, "Malformed request: POST"),
    # ParseModelInfo converts the version before the verb is compared.
    ("POST", f"/v1/models/{HPT}/versions/99999999999999999999:PREDICT", "{}", 400,
     "Failed to convert version: 99999999999999999999 to numeric."),
    ("PUT", f"/v1/models/{HPT}:predict", "{}", 400, f"Malformed request: PUT /v1/models/{HPT}"),
    ("DELETE", f"/v1/models/{HPT}", None, 400, f"Malformed request: DELETE /v1/models/{HPT}"),
    # The regexes see the query string: it becomes part of the model name.
    ("GET", f"/v1/models/{HPT}?x=1", None, 404, f"Could not find any versions of model {HPT}?x=1"),
    ("POST", f"/v1/models/{HPT}:predict?x=1", "{}", 400, "Malformed request: POST"),
    ("GET", f"/v1/models/{HPT}/versions/99999999999999999999", None, 400,
     "Failed to convert version: 99999999999999999999 to numeric."),
    ("GET", "/v1/models/nope", None, 404, "Could not find any versions of model nope"),
    ("GET", f"/v1/models/{HPT}/versions/9", None, 404, f"Could not find version 9 of model {HPT}"),
    ("GET", "/v1/models/nope/metadata", None, 404, "Servable not found for request: Latest(nope)"),
    ("GET", f"/v1/models/{HPT}/versions/9/metadata", None, 404,
     f"Servable not found for request: Specific({HPT}, 9)"),
    ("POST", "/v1/models/nope:predict", '{"instances": [1.0]}', 404,
     "Servable not found for request: Latest(nope)"),
    ("POST", f"/v1/models/{HPT}/versions/9:predict", '{"instances": [1.0]}', 404,
     f"Servable not found for request: Specific({HPT}, 9)"),
    ("POST", f"/v1/models/{HPT}/labels/stable:predict", '{"instances": [1.0]}', 400,
     "Unrecognized servable version label: stable"),
    ("POST", f"/v1/models/{HPT}:predict", "", 400, "JSON Parse error: The document is empty"),
    ("POST", f"/v1/models/{HPT}:predict", "{bad", 400, "JSON Parse error: "),
    ("POST", f"/v1/models/{HPT}:predict", '{"signature_name": 5, "instances": [1.0]}', 400,
     "'signature_name' key must be a string value."),
    ("POST", f"/v1/models/{HPT}:predict", '{"signature_name": "nope", "instances": [1.0]}', 400,
     'Serving signature name: "nope" not found in signature def'),
    ("POST", f"/v1/models/{HPT}:predict", '{"instances": [1.0], "inputs": [1.0]}', 400,
     "Not formatted correctly expecting only one of 'inputs' or 'instances' keys"),
    ("POST", f"/v1/models/{HPT}:predict", '{"x": [1.0]}', 400,
     "Missing 'inputs' or 'instances' key"),
    ("POST", f"/v1/models/{HPT}:predict", '{"instances": []}', 400,
     "No values in 'instances' array"),
    ("POST", f"/v1/models/{HPT}:predict", '{"instances": ["a"]}', 400,
     "is not of expected type: float"),
    ("POST", "/v1/models/two:predict", '{"instances": [{"a": [1, 2]}]}', 400,
     "keys must be equal to: a,b"),
    ("POST", "/v1/models/two:predict", '{"inputs": {"a": [[1, 2]], "z": [[1]]}}', 400,
     "Missing named input: b in 'inputs' object."),
    ("POST", "/v1/models/one:predict", '{"instances": [[1, 2, 3], [1, 2]]}', 400,
     "Expecting tensor size: 3 but got: 2"),
    ("POST", "/v1/models/one:predict", '{"instances": [[1, 2]]}', 400, "Matrix size-incompatible"),
    ("POST", f"/v1/models/{HPT}:classify", '{"signature_name": "classify_x_to_y"}', 400,
     "When method is classify, key 'examples' is expected and was not found"),
    ("POST", f"/v1/models/{HPT}:regress", '{"examples": []}', 400,
     "'examples' value is an empty array"),
    ("POST", f"/v1/models/{HPT}:classify", '{"examples": [{"x": 1.0}]}', 400,
     "No classification inputs found in SignatureDef"),
    ("POST", f"/v1/models/{HPT}:regress", '{"signature_name": "nope", "examples": [{"x": 1.0}]}',
     400, "No signature was found with the name: nope"),
]


@pytest.mark.parametrize("method, path, body, code, text", _ERRORS,
                         ids=[f"{i}_{e[4][:24]}" for i, e in enumerate(_ERRORS)])
def test_errors_have_tf_servings_code_and_text_and_the_server_keeps_answering(
        served, client, method, path, body, code, text):
    response = client.request(method, served[0].url + path, content=body)
    assert response.status_code == code, response.text
    assert _is_json(response)
    assert text in response.json()["error"]
    assert client.get(served[0].url + f"/v1/models/{HPT}").status_code == 200


def test_paths_outside_v1_are_the_http_servers_404(served, client):
    response = client.get(served[0].url + "/statuspage")
    assert response.status_code == 404 and not _is_json(response)


# http_server.cc: RE2::PartialMatch(origin, "https?://"), so the scheme may appear anywhere.
@pytest.mark.parametrize("origin, code", [("https://example.com", 200), ("file://x", 400),
                                          ("null, http://example.com", 200), ("", 400)])
def test_options_preflight(served, client, origin, code):
    response = client.options(served[0].url + f"/v1/models/{HPT}:predict",
                              headers={"Origin": origin})
    assert response.status_code == code
    # No handler ran: no Content-Type, no body, whatever the status.
    assert "content-type" not in response.headers and response.content == b""


@pytest.mark.parametrize("chunked", [False, True], ids=["content_length", "chunked"])
def test_bodies_over_the_limit_get_413_and_the_server_keeps_answering(served, client, chunked):
    body = b'{"instances": [' + b"1.0," * (SMALL_LIMIT // 4) + b"1.0]}"
    content = iter([body[i:i + 8192] for i in range(0, len(body), 8192)]) if chunked else body
    response = client.post(served[1].url + f"/v1/models/{HPT}:predict", content=content)
    assert response.status_code == 413 and _is_json(response)
    assert str(SMALL_LIMIT) in response.json()["error"]
    ok = _post(client, served[1], f"/v1/models/{HPT}:predict", {"instances": [1.0]})
    assert ok.json() == {"predictions": [2.5]}


def test_concurrent_requests_through_the_batcher_get_their_own_rows(served):
    one = served[2]["one"]
    rng = np.random.default_rng(1)
    rows = [rng.normal(size=(1 + i % 3, 3)).astype(np.float32) for i in range(48)]

    def call(x):
        with httpx.Client(timeout=20) as session:
            response = session.post(served[1].url + "/v1/models/one:predict",
                                    content=json.dumps({"instances": x.tolist()}))
        return np.array(response.json()["predictions"], np.float32)

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(call, rows))
    for x, answer in zip(rows, answers):
        np.testing.assert_allclose(answer, one(x).numpy(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("manager, limit, error", [
    (object(), 100, TypeError), (None, 0, ValueError), (None, True, ValueError),
    (None, "1MB", ValueError)])
def test_make_rest_app_refuses_bad_arguments(served, manager, limit, error):
    with pytest.raises(error, match="make_rest_app"):
        make_rest_app(manager or _FakeManager(), max_body_bytes=limit)


class _FakeManager:
    def servable(self, *args):
        raise AssertionError("not called")

    status = servable


class _RecordingMetrics:
    path = "/monitoring/prometheus/metrics"

    def __init__(self):
        self.records = []

    def render(self):
        return b"# TYPE requests counter\nrequests 1\n", "text/plain; version=0.0.4"

    def record(self, model_name, api, code, seconds, entrypoint):
        self.records.append((model_name, api, code.name, seconds >= 0, entrypoint))


def test_metrics_are_served_at_their_path_and_each_call_is_recorded(served, client):
    metrics = _RecordingMetrics()
    manager = served[0].server.config.app.manager
    app = RunningApp(make_rest_app(manager, metrics=metrics))
    try:
        response = client.get(app.url + metrics.path)
        assert response.status_code == 200 and response.text.startswith("# TYPE")
        assert response.headers["content-type"].startswith("text/plain")
        _post(client, app, f"/v1/models/{HPT}:predict", {"instances": [1.0]})
        _post(client, app, "/v1/models/nope:predict", {"instances": [1.0]})
        client.get(app.url + f"/v1/models/{HPT}/metadata")
    finally:
        app.stop()
    # http_server.cc: API is the POST path's method, empty for a GET; entrypoint "REST".
    assert metrics.records == [(HPT, "predict", "OK", True, "REST"),
                               ("nope", "predict", "NOT_FOUND", True, "REST"),
                               (HPT, "", "OK", True, "REST")]


def test_versions_added_and_removed_under_load_fail_no_request(tmp_path, half_plus_two_base):
    base = tmp_path / HPT
    shutil.copytree(half_plus_two_base, base)
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=HPT, base_path=str(base), model_platform="tensorflow")
    manager = ServableManager(config, file_system_poll_wait_seconds=0.1)
    manager.start()
    app = RunningApp(make_rest_app(manager))
    stop = threading.Event()
    answers, failures = [], []

    def load():
        with httpx.Client(timeout=20) as session:
            while not stop.is_set():
                response = session.post(app.url + f"/v1/models/{HPT}:predict",
                                        content='{"instances": [2.0]}')
                (answers if response.status_code == 200 else failures).append(response.text)

    threads = [threading.Thread(target=load) for _ in range(4)]
    try:
        for thread in threads:
            thread.start()
        for version in (124, 125):  # added, each replacing the one before
            shutil.copytree(base / "123", base / f".tmp{version}")
            os.rename(base / f".tmp{version}", base / str(version))
            _wait_for_latest(manager, version)
        shutil.rmtree(base / "125")  # removed: 124 is served again
        _wait_for_latest(manager, 124)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=20)
        app.stop()
        manager.stop()
    assert failures == [] and len(answers) > 20
    assert all(json.loads(text) == {"predictions": [3.0]} for text in answers)


def _wait_for_latest(manager, version, seconds=30):
    deadline = time.monotonic() + seconds
    while manager.servable(HPT).version != version:
        assert time.monotonic() < deadline, f"version {version} not served in {seconds} s"
        time.sleep(0.05)


def test_a_classify_signature_can_be_predicted_with_b64_examples(served, client):
    from tests.serving import half_plus_two  # pylint: disable=import-outside-toplevel

    examples = [half_plus_two.example(x) for x in (1.0, 3.0)]
    body = {"signature_name": "classify_x_to_y",
            "instances": [{"b64": base64.b64encode(e).decode("ascii")} for e in examples]}
    response = _post(client, served[0], f"/v1/models/{HPT}:predict", body)
    assert response.status_code == 200, response.text
    assert response.json() == {"predictions": [[2.5], [3.5]]}


def test_the_request_content_type_is_ignored(served, client):
    # curl -d sends application/x-www-form-urlencoded; TF Serving reads the body as JSON.
    response = client.post(served[0].url + f"/v1/models/{HPT}:predict",
                           content='{"instances": [1.0]}',
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 200 and response.json() == {"predictions": [2.5]}
