"""serving_kit: the kit rendered for an exported model names only paths that exist.

The checked-in serving/ folder is the kit for the example model (``digits``,
export root serving/models); it is rendered again here and must be identical.
"""

import contextlib
import functools
import http.server
import os
import subprocess
import threading

import pytest
import tensorflow as tf
import yaml
from google.protobuf import json_format
from tensorflow_serving.apis import get_model_status_pb2

from tests.export.conftest import EXAMPLE_MODEL
from tests.export.conftest import SERVING_DIR
from tests.export.conftest import write_export_root
from tfopt import export
from tfopt.export import _kit
from tfopt.export import _kit_export_root
from tfopt.export import _kit_kubernetes
from tfopt.export import _kit_server
from tfopt.export import _layout


@pytest.fixture(scope="module")
def kit(tmp_path_factory):
    """(kit folder, written files) for the example model, laid out as serving/ is."""
    folder = tmp_path_factory.mktemp("kit")
    write_export_root(str(folder / "models"))
    return str(folder), export.serving_kit(str(folder / "models"), EXAMPLE_MODEL, str(folder))


def _load(path):
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def test_checked_in_kit_is_what_serving_kit_writes(kit):
    folder, written = kit
    checked_in = sorted(
        os.path.relpath(os.path.join(directory, name), SERVING_DIR).replace(os.sep, "/")
        for directory, _, names in os.walk(SERVING_DIR) for name in names
        if name.endswith((".yml", ".yaml")))
    assert checked_in == sorted(written), "serving/ holds other YAML files than the kit"
    for name, path in written.items():
        with open(path, encoding="utf-8") as new, \
                open(os.path.join(SERVING_DIR, name), encoding="utf-8") as old:
            assert old.read() == new.read(), (
                f"serving/{name} is out of date: regenerate it (serving/README.md, 'The kit').")


def test_compose_paths_exist_under_the_export_root(kit):
    folder, written = kit
    service = _load(written[_kit.COMPOSE_FILE])["services"][EXAMPLE_MODEL]
    [volume] = service["volumes"]
    root = os.path.normpath(os.path.join(folder, volume["source"]))
    assert root == os.path.join(folder, "models") and volume["target"] == _layout.CONTAINER_ROOT
    paths = _kit_server.config_paths(service["command"])
    assert set(paths) == {"model_config_file", "batching_parameters_file",
                          "monitoring_config_file"}
    for container in paths.values():
        assert os.path.isfile(_kit_export_root.host_path(root, container)), container
    config = export.read_model_server_config(
        _kit_export_root.host_path(root, paths["model_config_file"]))
    for model in config.model_config_list.config:
        assert _kit_export_root.versions(_kit_export_root.host_path(root, model.base_path))
    assert service["healthcheck"]["test"][1:] == _kit_server.health_check(EXAMPLE_MODEL)


def test_kubernetes_objects_refer_to_each_other_and_the_export_root(kit):
    folder, written = kit
    root = os.path.join(folder, "models")
    docs = {name.split("/")[-1].split(".")[0]: _load(path) for name, path in written.items()}
    pod = docs["deployment"]["spec"]["template"]
    [container] = pod["spec"]["containers"]
    volumes = {volume["name"]: volume for volume in pod["spec"]["volumes"]}
    mounts = {mount["mountPath"]: volumes[mount["name"]] for mount in container["volumeMounts"]}
    # /models is the claim holding the export root; the configs are the ConfigMap's keys.
    claim = docs["pvc"]["metadata"]["name"]
    assert mounts[_layout.CONTAINER_ROOT]["persistentVolumeClaim"]["claimName"] == claim
    config_map = docs["configmap"]
    assert mounts[_kit_kubernetes.CONFIG_DIR]["configMap"]["name"] == config_map["metadata"]["name"]
    for container_path in _kit_server.config_paths(container["args"]).values():
        directory, name = container_path.rsplit("/", 1)
        assert directory == _kit_kubernetes.CONFIG_DIR
        with open(os.path.join(root, name), encoding="utf-8") as stream:
            assert config_map["data"][name] == stream.read()
    # The Service and the autoscaler find the Deployment and its named ports.
    labels = pod["metadata"]["labels"]
    assert docs["service"]["spec"]["selector"].items() <= labels.items()
    port_names = {port["name"] for port in container["ports"]}
    assert {port["targetPort"] for port in docs["service"]["spec"]["ports"]} == port_names
    assert docs["hpa"]["spec"]["scaleTargetRef"]["name"] == docs["deployment"]["metadata"]["name"]
    # KServe reads the model's base path from the same claim.
    uri = docs["inferenceservice"]["spec"]["predictor"]["model"]["storageUri"]
    assert uri == f"pvc://{claim}/{EXAMPLE_MODEL}"
    assert _kit_export_root.versions(os.path.join(root, uri.split("/", 3)[3]))
    assert docs["inferenceservice"]["metadata"]["name"] == EXAMPLE_MODEL


def test_kit_follows_the_export_root_configs(tmp_path):
    """Labels, a second model and a Prometheus path in the export root reach the kit."""
    root = write_export_root(str(tmp_path / "export"), "fashion", versions=(1, 2))
    write_export_root(root, "other")
    export.model_server_config(
        [export.ServedModel("fashion", versions=[1, 2],
                                          labels={"stable": 1, "canary": 2}),
         export.ServedModel("other")], os.path.join(root, _layout.MODELS_CONFIG))
    export.monitoring_config(os.path.join(root, _layout.MONITORING_CONFIG),
                                           metrics_path="/metrics")
    written = export.serving_kit(root, "fashion", str(tmp_path / "kit"))
    config_map = _load(written["kubernetes/configmap.yaml"])
    assert 'key: "canary"' in config_map["data"][_layout.MODELS_CONFIG]
    pod = _load(written["kubernetes/deployment.yaml"])["spec"]["template"]
    assert pod["metadata"]["annotations"]["prometheus.io/path"] == "/metrics"
    compose = _load(written[_kit.COMPOSE_FILE])
    assert compose["services"]["fashion"]["volumes"][0]["source"] == "../export"


def _status(*states):
    response = get_model_status_pb2.GetModelStatusResponse()
    for version, state in enumerate(states, 1):
        status = response.model_version_status.add(version=version)
        status.state = get_model_status_pb2.ModelVersionStatus.State.Value(state)
    return json_format.MessageToJson(response)


@contextlib.contextmanager
def _status_server(status, body):
    """A REST stub answering every GET with `status` and `body`, as TF Serving's status call."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802  (http.server's name)
            self.server.paths.append(self.path)
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(body.encode())

        def log_message(self, *unused):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    server.paths = []
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("status, body, healthy", [
    (200, _status("AVAILABLE"), True),
    (200, _status("END", "AVAILABLE"), True),
    (200, _status("LOADING"), False),
    (200, _status("END", "UNLOADING"), False),
    (404, '{ "error": "Could not find any versions of model digits" }', False),
], ids=["available", "second of two available", "loading", "unloaded", "unknown model"])
def test_health_check_passes_only_when_a_version_is_available(status, body, healthy):
    with _status_server(status, body) as server:
        check = _kit_server.health_check(EXAMPLE_MODEL, port=server.server_address[1])
        result = subprocess.run(check, timeout=10, capture_output=True)
    assert server.paths == [f"/v1/models/{EXAMPLE_MODEL}"]
    assert (result.returncode == 0) == healthy, (body, result.stderr)


def test_health_check_fails_when_nothing_listens():
    with _status_server(200, _status("AVAILABLE")) as server:
        port = server.server_address[1]
    result = subprocess.run(_kit_server.health_check(EXAMPLE_MODEL, port=port), timeout=10,
                            capture_output=True)
    assert result.returncode != 0


_BAD_ARGUMENTS = [
    (dict(model_name="My_Model"), ValueError, "model_name='My_Model'"),
    (dict(model_name="9lives"), ValueError, "starting with a letter"),
    (dict(model_name="a" * 49), ValueError, "at most 48"),
    (dict(model_name=3), TypeError, "model_name must be a string"),
    (dict(min_replicas=0), ValueError, "min_replicas must be between 1"),
    (dict(min_replicas=3, max_replicas=2), ValueError, "max_replicas (2) is below min_replicas"),
    (dict(max_replicas=2.5), TypeError, "max_replicas must be an integer"),
    (dict(cpu_utilization=0), ValueError, "cpu_utilization must be between 1 and 100"),
    (dict(canary_traffic_percent=101), ValueError, "canary_traffic_percent must be between 0"),
    (dict(canary_traffic_percent=True), TypeError, "canary_traffic_percent must be an integer"),
    (dict(requests={"cpu": "lots"}), ValueError, "requests['cpu']='lots' is not a Kubernetes"),
    (dict(requests={"gpu": "1"}), ValueError, "requests takes the keys ['cpu', 'memory']"),
    (dict(limits="2Gi"), TypeError, "limits must be a dict"),
    (dict(storage=1), ValueError, "storage=1 is not a Kubernetes quantity"),
    (dict(tf_serving_version="2.21 beta"), ValueError, "is not a Docker image tag"),
    (dict(output_dir=42), TypeError, "output_dir must be a path"),
]


@pytest.mark.parametrize("change, error, message", _BAD_ARGUMENTS,
                         ids=[str(change) for change, _, _ in _BAD_ARGUMENTS])
def test_bad_argument_is_refused_before_anything_is_written(kit, tmp_path, change, error,
                                                            message):
    folder, _ = kit
    arguments = dict(export_root=os.path.join(folder, "models"), model_name=EXAMPLE_MODEL,
                     output_dir=str(tmp_path / "out"))
    arguments.update(change)
    with pytest.raises(error) as raised:
        export.serving_kit(**arguments)
    assert message in str(raised.value)
    assert not os.path.exists(tmp_path / "out")


def _remove(name, root):
    os.remove(os.path.join(root, name))


def _write(name, text, root):
    with open(os.path.join(root, name), "w", encoding="utf-8") as stream:
        stream.write(text)


def _add_model(name, root):
    export.model_server_config(
        [export.ServedModel(EXAMPLE_MODEL), export.ServedModel(name)],
        os.path.join(root, _layout.MODELS_CONFIG))


_BAD_EXPORT_ROOTS = {
    "no models.config": (functools.partial(_remove, _layout.MODELS_CONFIG),
                         "has no models.config"),
    "no batching.config": (functools.partial(_remove, _layout.BATCHING_CONFIG),
                           "has no batching.config"),
    "models.config does not parse": (
        functools.partial(_write, _layout.MODELS_CONFIG, "model_config_list { confg {} }"),
        "Error parsing text-format tensorflow.serving.ModelServerConfig"),
    "monitoring.config does not parse": (
        functools.partial(_write, _layout.MONITORING_CONFIG, "prometheus_config { enable: 3 }"),
        "Error parsing text-format tensorflow.serving.MonitoringConfig"),
    "model not listed": (
        lambda root: export.model_server_config(
            [export.ServedModel("fashion")],
            os.path.join(root, _layout.MODELS_CONFIG)),
        "does not list a model named 'digits' (it lists ['fashion'])"),
    "listed model without versions": (functools.partial(_add_model, "fashion"),
                                      "Model 'fashion' in models.config has base path "
                                      "'/models/fashion'"),
    "no model_config_list": (functools.partial(_write, _layout.MODELS_CONFIG, ""),
                             "has no model_config_list"),
}


@pytest.mark.parametrize("case", sorted(_BAD_EXPORT_ROOTS))
def test_export_root_tf_serving_cannot_start_from_is_refused(tmp_path, case):
    root = write_export_root(str(tmp_path / "models"))
    spoil, message = _BAD_EXPORT_ROOTS[case]
    spoil(root)
    with pytest.raises(ValueError) as raised:
        export.serving_kit(root, EXAMPLE_MODEL, str(tmp_path / "out"))
    assert message in str(raised.value)
    assert not os.path.exists(tmp_path / "out")


def test_missing_export_root_is_refused(tmp_path):
    with pytest.raises(ValueError, match="is not a directory; export the model first"):
        export.serving_kit(str(tmp_path / "nowhere"), EXAMPLE_MODEL, str(tmp_path / "out"))


def test_tf_serving_image_matches_the_tensorflow_release():
    """The image's major.minor is TensorFlow's: an older server may not load today's ops."""
    assert _kit.TF_SERVING_VERSION.split(".")[:2] == tf.__version__.split(".")[:2]
