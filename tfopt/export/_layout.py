"""Where an export puts each file, on disk and inside the TF Serving container.

One place for the names, ports and paths that `tfopt-export`, the serving
configs and the deployment kit share, so the three cannot drift apart.

An export root is the directory mounted at ``/models`` in the container::

    <export root>/
      <model name>/<version>/     SavedModel (saved_model.pb, variables/, assets.extra/)
      tflite/<model name>_<mode>.tflite
      models.config               ModelServerConfig, base paths under /models
      batching.config             BatchingParameters
      monitoring.config           MonitoringConfig (Prometheus)

A model's base path is ``<export root>/<model name>``; TF Serving loads its
integer-named children as versions.
"""

import os

# Ports and paths of the official tensorflow/serving image (tools/docker/Dockerfile).
GRPC_PORT = 8500
REST_PORT = 8501
CONTAINER_ROOT = "/models"
IMAGE = "tensorflow/serving"
# TF Serving's default when a MonitoringConfig leaves the path empty.
PROMETHEUS_PATH = "/monitoring/prometheus/metrics"

MODELS_CONFIG = "models.config"
BATCHING_CONFIG = "batching.config"
MONITORING_CONFIG = "monitoring.config"
TFLITE_DIR = "tflite"
WARMUP_FILE = os.path.join("assets.extra", "tf_serving_warmup_requests")


def export_root(base_path):
    """The export root holding the model whose base path is `base_path`."""
    return os.path.dirname(os.path.abspath(base_path))


def tflite_path(root, model_name, mode):
    """Where the `mode` TFLite file of `model_name` goes under the export root `root`."""
    return os.path.join(root, TFLITE_DIR, f"{model_name}_{mode}.tflite")


def container_path(root, path):
    """`path`, a file or directory under the export root `root`, as the container sees it."""
    relative = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    if relative == os.curdir:
        return CONTAINER_ROOT
    if relative.startswith(os.pardir):
        raise ValueError(f"{path!r} is not inside the export root {root!r}, which the "
                         f"container mounts at {CONTAINER_ROOT}; export it there.")
    return "/".join([CONTAINER_ROOT] + relative.split(os.sep))
