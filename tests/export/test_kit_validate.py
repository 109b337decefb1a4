"""The checked-in kit passes real validators offline, and each validator catches a broken file.

- docker-compose.yml: the Compose Specification's JSON schema, and Debian's
  docker-compose (``config -q`` needs no Docker engine).
- Kubernetes manifests: the `kubernetes` client's models; a strict round trip
  (load, serialize back, compare) loses misspelled fields, and the models
  enforce types and required fields.
- KServe: the InferenceService CRD's openAPIV3Schema, with unknown fields
  refused as the API server's strict field validation does.
"""

import copy
import functools
import json
import os
import shutil
import subprocess

import jsonschema
import pytest
import yaml
from kubernetes import client

SERVING_DIR = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "serving")
THIRD_PARTY = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "third_party")
COMPOSE_FILE = os.path.join(SERVING_DIR, "docker-compose.yml")
KSERVE_FILE = os.path.join(SERVING_DIR, "kserve", "inferenceservice.yaml")
KUBERNETES_DIR = os.path.join(SERVING_DIR, "kubernetes")
MANIFESTS = sorted(os.listdir(KUBERNETES_DIR))

# (apiVersion, kind) -> the client's model class. A kind missing here fails the test.
_MODELS = {
    ("v1", "ConfigMap"): client.V1ConfigMap,
    ("v1", "PersistentVolumeClaim"): client.V1PersistentVolumeClaim,
    ("v1", "Service"): client.V1Service,
    ("apps/v1", "Deployment"): client.V1Deployment,
    ("autoscaling/v2", "HorizontalPodAutoscaler"): client.V2HorizontalPodAutoscaler,
}


def _load(path):
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


@functools.lru_cache(maxsize=None)
def _compose_validator():
    with open(os.path.join(THIRD_PARTY, "compose-spec", "compose-spec.json")) as stream:
        schema = json.load(stream)
    return jsonschema.Draft7Validator(schema)


def compose_errors(document):
    """The Compose Specification schema's complaints about `document`."""
    return [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
            for error in _compose_validator().iter_errors(document)]


def docker_compose_errors(document, directory):
    """docker-compose's complaints about `document`, written into `directory` ('' if none)."""
    path = os.path.join(directory, "docker-compose.yml")
    with open(path, "w", encoding="utf-8") as stream:
        yaml.safe_dump(document, stream)
    result = subprocess.run(["docker-compose", "-f", path, "config", "-q"], capture_output=True,
                            text=True, timeout=60)
    return "" if result.returncode == 0 else result.stderr.strip() or f"exit {result.returncode}"


def _differences(expected, actual, path=""):
    """Where two JSON-like values differ, as 'path: expected -> actual' lines."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        return [line for key in sorted(set(expected) | set(actual), key=str)
                for line in _differences(expected.get(key), actual.get(key), f"{path}/{key}")]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        return [line for index, (a, b) in enumerate(zip(expected, actual))
                for line in _differences(a, b, f"{path}[{index}]")]
    return [] if expected == actual else [f"{path}: {expected!r} -> {actual!r}"]


def _round_trip_errors(model, document):
    try:
        loaded = model.from_dict(document)
    except (ValueError, TypeError) as error:  # pydantic's ValidationError is a ValueError
        return [f"{model.__name__}: {error}"]
    return _differences(document, client.ApiClient().sanitize_for_serialization(loaded))


def kubernetes_errors(document):
    """What the kubernetes client's model of `document`'s kind refuses or drops."""
    model = _MODELS.get((document.get("apiVersion"), document.get("kind")))
    if model is None:
        return [f"no model for {document.get('apiVersion')} {document.get('kind')}"]
    return _round_trip_errors(model, document)


def _strict(schema):
    """`schema` with unknown fields refused wherever the CRD does not preserve them."""
    if isinstance(schema, list):
        return [_strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    schema = {key: _strict(value) for key, value in schema.items()}
    if (schema.get("type") == "object" and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        schema["additionalProperties"] = False
    return schema


@functools.lru_cache(maxsize=None)
def _kserve_crd():
    with open(os.path.join(THIRD_PARTY, "kserve", "serving.kserve.io_inferenceservices.json")) \
            as stream:
        crd = json.load(stream)
    [version] = [v for v in crd["spec"]["versions"] if v["served"] and v["storage"]]
    schema = _strict(version["schema"]["openAPIV3Schema"])
    return (f"{crd['spec']['group']}/{version['name']}", crd["spec"]["names"]["kind"],
            jsonschema.Draft4Validator(schema))


def kserve_errors(document):
    """What KServe's API server (strict field validation) would refuse in `document`."""
    api_version, kind, validator = _kserve_crd()
    errors = [f"{key} must be {want!r}" for key, want in (("apiVersion", api_version),
                                                          ("kind", kind))
              if document.get(key) != want]
    errors += [f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
               for error in validator.iter_errors(document)]
    # The CRD leaves metadata open: the API server checks it as an ObjectMeta.
    return errors + _round_trip_errors(client.V1ObjectMeta, document.get("metadata") or {})


def test_compose_file_matches_the_compose_specification():
    assert compose_errors(_load(COMPOSE_FILE)) == []


def test_docker_compose_accepts_the_compose_file(tmp_path):
    assert shutil.which("docker-compose"), (
        "docker-compose is not installed: apt-get install docker-compose (CI installs it).")
    shutil.copytree(SERVING_DIR, tmp_path / "serving",
                    ignore=shutil.ignore_patterns("models"))
    assert docker_compose_errors(_load(COMPOSE_FILE), tmp_path / "serving") == ""


@pytest.mark.parametrize("name", MANIFESTS)
def test_kubernetes_manifest_survives_a_strict_round_trip(name):
    assert kubernetes_errors(_load(os.path.join(KUBERNETES_DIR, name))) == []


def test_kubernetes_kit_has_every_kind():
    kinds = {_load(os.path.join(KUBERNETES_DIR, name))["kind"] for name in MANIFESTS}
    assert kinds == {kind for _, kind in _MODELS}


def test_inference_service_matches_kserve_crd():
    assert kserve_errors(_load(KSERVE_FILE)) == []


def _container(document):
    return document["spec"]["template"]["spec"]["containers"][0]


def _rename(mapping, old, new):
    mapping[new] = mapping.pop(old)


_COMPOSE_BREAKS = {
    "misspelled field": lambda d: _rename(d["services"]["digits"], "healthcheck", "healthchek"),
    # Compose takes strings for most scalars (they may hold ${VARIABLES}), not for mappings.
    "wrong type": lambda d: d["services"]["digits"].update(healthcheck="bash -c true"),
    "missing required field": lambda d: d["services"]["digits"]["volumes"][0].pop("type"),
}
_MANIFEST_BREAKS = {
    "misspelled field": ("deployment.yaml",
                         lambda d: _rename(_container(d), "readinessProbe", "readynessProbe")),
    "wrong type": ("hpa.yaml", lambda d: d["spec"].update(minReplicas="one")),
    "missing required field": ("deployment.yaml", lambda d: d["spec"].pop("selector")),
    "missing required nested field": ("deployment.yaml", lambda d: _container(d).pop("name")),
    "misspelled metadata": ("service.yaml", lambda d: _rename(d["metadata"], "labels", "label")),
}
_KSERVE_BREAKS = {
    "misspelled field": lambda d: _rename(d["spec"]["predictor"], "canaryTrafficPercent",
                                          "canaryTraficPercent"),
    "wrong type": lambda d: d["spec"]["predictor"].update(canaryTrafficPercent="10"),
    "missing required field": lambda d: d["spec"]["predictor"]["model"]["modelFormat"].pop("name"),
    "misspelled metadata": lambda d: _rename(d["metadata"], "labels", "lables"),
    "wrong kind": lambda d: d.update(kind="InferenceServce"),
}


def _broken(path, breaks):
    document = copy.deepcopy(_load(path))
    breaks(document)
    return document


@pytest.mark.parametrize("case", sorted(_COMPOSE_BREAKS))
def test_compose_validators_catch_a_broken_file(case, tmp_path):
    document = _broken(COMPOSE_FILE, _COMPOSE_BREAKS[case])
    assert compose_errors(document)
    assert docker_compose_errors(document, tmp_path)


@pytest.mark.parametrize("case", sorted(_MANIFEST_BREAKS))
def test_kubernetes_round_trip_catches_a_broken_manifest(case):
    name, breaks = _MANIFEST_BREAKS[case]
    assert kubernetes_errors(_broken(os.path.join(KUBERNETES_DIR, name), breaks))


@pytest.mark.parametrize("case", sorted(_KSERVE_BREAKS))
def test_kserve_schema_catches_a_broken_inference_service(case):
    assert kserve_errors(_broken(KSERVE_FILE, _KSERVE_BREAKS[case]))
