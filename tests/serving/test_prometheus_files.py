"""serving/prometheus/: the scrape configs and alert rules, checked by promtool.

promtool (Debian's ``prometheus`` package; CI installs it) checks the configs
and rules and runs the alerts' unit tests (alerts_test.yml). The other tests
keep the files in step with the code: the metric names, labels and bucket
bounds the alerts and their tests use are the ones tfopt-serve's `Metrics`
exports, and the scrape targets, paths and Kubernetes relabeling match the
kit (_layout, docker-compose.yml, the Deployment's annotations).
"""

import os
import re
import shutil
import subprocess

import pytest
import yaml
from prometheus_client import parser
from tensorflow_serving.apis import get_model_status_pb2

from tfopt.export import _layout
from tfopt.serving import _metrics
from tests.export.conftest import EXAMPLE_MODEL
from tests.export.conftest import SERVING_DIR

PROMETHEUS_DIR = os.path.join(SERVING_DIR, "prometheus")
LOCAL_CONFIG = os.path.join(PROMETHEUS_DIR, "prometheus.yml")
KUBERNETES_CONFIG = os.path.join(PROMETHEUS_DIR, "prometheus-kubernetes.yml")
ALERTS = os.path.join(PROMETHEUS_DIR, "alerts.yml")
ALERTS_TEST = os.path.join(PROMETHEUS_DIR, "alerts_test.yml")
# A PromQL metric name (Prometheus' own name syntax) followed by its label matchers or range.
_METRIC = re.compile(r"(?<![\w:])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*[{\[]")


def _load(path):
    with open(path, encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def _promtool(*args, cwd=PROMETHEUS_DIR):
    promtool = shutil.which("promtool")
    assert promtool, ("promtool not found: apt-get install prometheus (Debian's package ships "
                      "promtool; CI installs it).")
    result = subprocess.run([promtool, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"promtool {' '.join(args)}:\n{result.stdout}{result.stderr}"
    return result.stdout


def test_promtool_accepts_the_local_config_and_its_rules():
    assert "SUCCESS" in _promtool("check", "config", "prometheus.yml")


def test_promtool_accepts_the_kubernetes_config_with_a_static_target(tmp_path):
    """Debian's promtool has no Kubernetes discovery: the relabeling is checked on a static target."""
    config = _load(KUBERNETES_CONFIG)
    [job] = config["scrape_configs"]
    assert job.pop("kubernetes_sd_configs") == [{"role": "pod"}]
    job["static_configs"] = [{"targets": ["10.0.0.1:8501"]}]
    with open(tmp_path / "prometheus.yml", "w") as stream:
        yaml.safe_dump(config, stream)
    shutil.copy(ALERTS, tmp_path)
    _promtool("check", "config", "prometheus.yml", cwd=tmp_path)


def test_promtool_accepts_the_rules():
    assert "SUCCESS: 4 rules found" in _promtool("check", "rules", "alerts.yml")


def test_alerts_fire_on_failing_series_and_not_on_healthy_ones():
    _promtool("test", "rules", "alerts_test.yml")


def test_alert_unit_tests_cover_every_alert():
    alerts = {rule["alert"] for group in _load(ALERTS)["groups"] for rule in group["rules"]}
    tested = {case["alertname"] for test in _load(ALERTS_TEST)["tests"]
              for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert tested == alerts


class _Manager:
    """Stands in for a ServableManager: 'digits' version 1 AVAILABLE."""

    def model_names(self):
        return [EXAMPLE_MODEL]

    def status(self, model_name):
        response = get_model_status_pb2.GetModelStatusResponse()
        response.model_version_status.add(
            version=1, state=get_model_status_pb2.ModelVersionStatus.State.AVAILABLE)
        return response


@pytest.fixture(scope="module")
def exported():
    """{sample name: [label dicts]} that tfopt-serve's Metrics exports."""
    metrics = _metrics.Metrics(_layout.PROMETHEUS_PATH, _Manager())
    metrics.record(EXAMPLE_MODEL, "Predict", "OK", 0.002, "GRPC")
    metrics.record(EXAMPLE_MODEL, "Predict", "INVALID_ARGUMENT", 0.001, "GRPC")
    text, _ = metrics.render()
    samples = {}
    for family in parser.text_string_to_metric_families(text.decode()):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample.labels)
    return samples


def _rule_exprs():
    return [rule["expr"] for group in _load(ALERTS)["groups"] for rule in group["rules"]]


def test_alerts_use_metric_names_tfopt_serve_exports(exported):
    """A renamed metric in _metrics.py (or a typo in alerts.yml) fails here, not in production."""
    used = {name for expr in _rule_exprs() for name in _METRIC.findall(expr)} - {"up"}
    assert used == {_metrics.REQUEST_COUNT, _metrics.REQUEST_LATENCY + "_bucket",
                    _metrics.MODEL_VERSION_STATE}
    assert used <= set(exported), sorted(set(exported))


def test_alerts_group_and_filter_by_labels_tfopt_serve_exports(exported):
    labels = {label for samples in exported.values() for sample in samples for label in sample}
    for expr in _rule_exprs():
        named = re.findall(r"by \(([^)]*)\)", expr)
        named = {label.strip() for group in named for label in group.split(",")}
        named |= set(re.findall(r"(\w+)\s*(?:!=|=~|!~|=)\s*\"", expr))
        assert named - {"job", "instance"} <= labels, expr
    assert {"AVAILABLE"} <= {sample["state"] for sample in exported[_metrics.MODEL_VERSION_STATE]}


def test_alert_unit_tests_use_tfopt_serves_series(exported):
    """The synthetic series: exported names, label names and latency bucket bounds."""
    series = [item["series"] for test in _load(ALERTS_TEST)["tests"]
              for item in test["input_series"]]
    bounds = {sample["le"] for sample in exported[_metrics.REQUEST_LATENCY + "_bucket"]}
    for text in series:
        name, body = re.fullmatch(r"([^{]+)\{(.*)\}", text).groups()
        labels = dict(re.findall(r'(\w+)="([^"]*)"', body))
        labels.pop("job")
        if name == "up":
            continue
        assert name in exported, text
        assert set(labels) == set(exported[name][0]), text
        if "le" in labels:
            assert labels["le"] in bounds, text


def _static_jobs():
    return {job["job_name"]: job for job in _load(LOCAL_CONFIG)["scrape_configs"]}


def test_local_jobs_scrape_the_rest_port_at_the_monitoring_path():
    with open(os.path.join(SERVING_DIR, "docker-compose.yml"), encoding="utf-8") as stream:
        [service] = yaml.safe_load(stream)["services"]
    jobs = _static_jobs()
    assert set(jobs) == {"tfserving", "tfopt-serve"}
    for job, host in (("tfserving", service), ("tfopt-serve", "localhost")):
        assert jobs[job]["metrics_path"] == _layout.PROMETHEUS_PATH
        [static] = jobs[job]["static_configs"]
        assert static["targets"] == [f"{host}:{_layout.REST_PORT}"]


def _relabel(rules, labels):
    """Prometheus' relabeling (replace and keep), enough for the rules of the Kubernetes job."""
    labels = dict(labels)
    for rule in rules:
        value = rule.get("separator", ";").join(labels.get(name, "")
                                                 for name in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        action = rule.get("action", "replace")
        if action == "keep":
            if not match:
                return None
        elif action == "replace":
            if match:
                replacement = re.sub(r"\$(\d+)", r"\\g<\1>", rule.get("replacement", "$1"))
                labels[rule["target_label"]] = match.expand(replacement)
        else:
            raise AssertionError(f"action {action} not simulated here")
    return labels


def _pod_targets(annotations):
    """The discovered targets of a kit pod: one per container port (Prometheus' pod role)."""
    meta = {"__meta_kubernetes_pod_annotation_" + re.sub(r"[^a-zA-Z0-9_]", "_", key): value
            for key, value in annotations.items()}
    meta.update(__meta_kubernetes_namespace="default", __meta_kubernetes_pod_name="digits-0",
                __metrics_path__="/metrics")
    return [dict(meta, __address__=f"10.1.2.3:{port}")
            for port in (_layout.GRPC_PORT, _layout.REST_PORT)]


def test_kubernetes_job_scrapes_the_kit_pods_where_their_annotations_say():
    with open(os.path.join(SERVING_DIR, "kubernetes", "deployment.yaml"), encoding="utf-8") as f:
        annotations = yaml.safe_load(f)["spec"]["template"]["metadata"]["annotations"]
    [job] = _load(KUBERNETES_CONFIG)["scrape_configs"]
    targets = [_relabel(job["relabel_configs"], target) for target in _pod_targets(annotations)]
    for target in targets:
        assert target["__address__"] == f"10.1.2.3:{_layout.REST_PORT}"
        assert target["__metrics_path__"] == _layout.PROMETHEUS_PATH
        assert target["pod"] == "digits-0" and target["namespace"] == "default"
    unannotated = _pod_targets({})
    assert [_relabel(job["relabel_configs"], target) for target in unannotated] == [None, None]


def test_both_configs_load_the_alert_rules():
    for path in (LOCAL_CONFIG, KUBERNETES_CONFIG):
        assert _load(path)["rule_files"] == ["alerts.yml"]


def test_readme_promtool_commands_run_as_written():
    """serving/README.md's marked promtool block, in bash from serving/."""
    with open(os.path.join(SERVING_DIR, "README.md"), encoding="utf-8") as stream:
        [block] = re.findall(r"<!-- runs in tests/serving/test_prometheus_files.py -->\n"
                             r"```bash\n(.*?)```", stream.read(), flags=re.S)
    assert shutil.which("promtool"), "apt-get install prometheus (CI installs it)."
    result = subprocess.run(["bash", "-e", "-c", block], cwd=SERVING_DIR, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, f"{block}\n{result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout
