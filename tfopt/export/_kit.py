"""The deployment kit: docker compose, Kubernetes and KServe files for an exported model.

`serving_kit` writes them from what an export left in its export root (see
`tfopt.export._layout`): the model name, the container paths of its base path
and configs, and the configs' own text. Nothing is typed twice, so the kit and
the export cannot disagree; the kit checks the export root first and refuses
one TF Serving could not start from.
"""

import os

from tfopt import _files
from tfopt.export import _kit_compose
from tfopt.export import _kit_export_root
from tfopt.export import _kit_kserve
from tfopt.export import _kit_kubernetes
from tfopt.export import _kit_args
from tfopt.export import _kit_yaml
from tfopt.export import _layout

# The tensorflow/serving image tag: the TF Serving release that goes with the
# tensorflow and tensorflow-serving-api versions tfopt is pinned to.
TF_SERVING_VERSION = "2.21.0"

COMPOSE_FILE = "docker-compose.yml"
KUBERNETES_DIR = "kubernetes"
KSERVE_FILE = os.path.join("kserve", "inferenceservice.yaml")

_DEFAULT_REQUESTS = {"cpu": "1", "memory": "1Gi"}
_DEFAULT_LIMITS = {"cpu": "2", "memory": "2Gi"}


def serving_kit(export_root, model_name, output_dir, min_replicas=1, max_replicas=4,
                cpu_utilization=70, requests=None, limits=None, storage="1Gi",
                canary_traffic_percent=10, tf_serving_version=TF_SERVING_VERSION):
    """Writes the deployment kit for the model `model_name` exported under `export_root`.

    Files written under `output_dir`: ``docker-compose.yml`` (the export root
    mounted read-only at /models, ports 8500/8501, a health check that passes
    once a version is AVAILABLE); ``kubernetes/`` (ConfigMap with the export
    root's three configs, PersistentVolumeClaim for the export root,
    Deployment, Service, HorizontalPodAutoscaler); and
    ``kserve/inferenceservice.yaml`` (KServe's TensorFlow predictor with a
    canary split). Each file starts with a comment saying how to regenerate it.

    Args:
      export_root: the directory tfopt-export wrote (models.config,
        batching.config, monitoring.config and ``<model_name>/<version>/``).
      model_name: the model to serve, as named in models.config: lowercase
        letters, digits and '-', starting with a letter (KServe and
        Kubernetes name objects after it).
      output_dir: where the kit goes; docker compose mounts the export root by
        its path relative to this directory.
      min_replicas: the fewest serving pods. Defaults to 1.
      max_replicas: the most serving pods the autoscaler starts. Defaults to 4.
      cpu_utilization: the average CPU use, in percent of the request, that
        the autoscaler keeps pods at. Defaults to 70.
      requests: Kubernetes resource requests of a pod, {"cpu": ..., "memory":
        ...}. Defaults to None (1 CPU, 1Gi).
      limits: resource limits of a pod, same keys. Defaults to None (2 CPUs, 2Gi).
      storage: the size of the volume holding the export root. Defaults to "1Gi".
      canary_traffic_percent: the share of requests KServe sends to a new
        revision. Defaults to 10.
      tf_serving_version: the tensorflow/serving image tag. Defaults to the
        release matching tfopt's TensorFlow.

    Returns:
      {path relative to `output_dir`: absolute path} of the files written.

    Raises:
      ValueError: on a bad argument, or an export root TF Serving could not
        start from (missing config, model not in models.config, base path
        without a version), before anything is written.

    Example:
      >>> export.serving_kit("serving/models", "digits", "serving")
      {'docker-compose.yml': ..., 'kubernetes/deployment.yaml': ..., ...}
    """
    _kit_args.validate_name(model_name)
    _kit_args.validate_replicas(min_replicas, max_replicas)
    _kit_args.validate_percent("cpu_utilization", cpu_utilization, minimum=1)
    _kit_args.validate_percent("canary_traffic_percent", canary_traffic_percent)
    resources = {"requests": _kit_args.resources("requests", requests, _DEFAULT_REQUESTS),
                 "limits": _kit_args.resources("limits", limits, _DEFAULT_LIMITS)}
    _kit_args.validate_quantity("storage", storage)
    _kit_args.validate_tag(tf_serving_version)
    output_dir = _kit_args.directory("output_dir", output_dir, must_exist=False)
    root = _kit_export_root.read(export_root, model_name)

    image = f"{_layout.IMAGE}:{tf_serving_version}"
    relative_root = os.path.relpath(root.path, output_dir).replace(os.sep, "/")
    # Compose reads a bind source without ./ or ../ as a named volume.
    compose_root = (relative_root if relative_root.split("/")[0] in (os.curdir, os.pardir)
                    else "./" + relative_root)

    def comment(what, *notes):
        return _kit_yaml.header(what, model_name, relative_root, notes)

    files = {
        COMPOSE_FILE: _kit_yaml.dump(
            [_kit_compose.compose_file(model_name, compose_root, image)],
            comment(f"TF Serving for {model_name!r}: docker compose up, then "
                    f"curl localhost:{_layout.REST_PORT}/v1/models/{model_name}")),
    }
    kubernetes = {
        "configmap.yaml": ("The export root's configs, mounted at "
                           f"{_kit_kubernetes.CONFIG_DIR}.",
                           _kit_kubernetes.config_map(model_name, root.configs)),
        "pvc.yaml": (f"The volume holding the export root, mounted at {_layout.CONTAINER_ROOT}.",
                     _kit_kubernetes.claim(model_name, storage)),
        "deployment.yaml": (f"TF Serving pods for {model_name!r}.",
                            _kit_kubernetes.deployment(model_name, image, root.prometheus_path,
                                                       resources)),
        "service.yaml": (f"gRPC ({_layout.GRPC_PORT}) and REST ({_layout.REST_PORT}) in front "
                         "of the ready pods.", _kit_kubernetes.service(model_name)),
        "hpa.yaml": ("Scales the Deployment on CPU use.",
                     _kit_kubernetes.autoscaler(model_name, min_replicas, max_replicas,
                                                cpu_utilization)),
    }
    for name, (what, document) in kubernetes.items():
        files[os.path.join(KUBERNETES_DIR, name)] = _kit_yaml.dump([document], comment(what))
    files[KSERVE_FILE] = _kit_yaml.dump(
        [_kit_kserve.inference_service(model_name, tf_serving_version, canary_traffic_percent,
                                       min_replicas, max_replicas, resources)],
        comment(f"KServe InferenceService for {model_name!r} (TensorFlow predictor = TF "
                "Serving), on the volume of kubernetes/pvc.yaml.",
                *_kit_kserve.PROMOTE_AND_ROLL_BACK))

    written = {}
    for name, text in files.items():
        path = os.path.join(output_dir, name)
        with _files.atomic_path(path) as temporary:
            with open(temporary, "w", encoding="utf-8") as stream:
                stream.write(text)
        written[name.replace(os.sep, "/")] = path
    return written
