"""The Kubernetes manifests of the deployment kit: TF Serving as a scalable Deployment.

The export root lives on a PersistentVolumeClaim mounted read-only at /models
(where models.config's base paths point); the three configs come from a
ConfigMap mounted as a directory, so editing it (moving a version label, say)
reaches the running servers without a restart: the kubelet refreshes the files
and TF Serving re-reads models.config every `_kit_server.CONFIG_POLL_SECONDS`.
"""

from tfopt.export import _kit_server
from tfopt.export import _layout

# Where the ConfigMap is mounted; outside /models, which is the read-only volume.
CONFIG_DIR = "/etc/tfserving"
CONTAINER = "tfserving"


def names(model_name):
    """The names of the kit's Kubernetes objects for `model_name`, by kind."""
    return {"app": f"{model_name}-serving", "config": f"{model_name}-serving-config",
            "claim": f"{model_name}-models"}


def _labels(model_name):
    return {"app.kubernetes.io/name": names(model_name)["app"],
            "app.kubernetes.io/component": "tfserving",
            "app.kubernetes.io/managed-by": "tfopt"}


def _metadata(model_name, kind):
    return {"name": names(model_name)[kind], "labels": _labels(model_name)}


def config_map(model_name, configs):
    """A ConfigMap holding `configs`, {file name: text} read from the export root."""
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": _metadata(model_name, "config"),
            "data": dict(configs)}


def claim(model_name, storage):
    """The PersistentVolumeClaim that holds the export root."""
    return {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": _metadata(model_name, "claim"),
        # Every replica mounts it, possibly on different nodes, and it is filled
        # once with kubectl cp: a ReadWriteMany class (NFS, EFS, Filestore, ...).
        "spec": {"accessModes": ["ReadWriteMany"],
                 "resources": {"requests": {"storage": storage}}},
    }


def _pod_metadata(model_name, prometheus_path):
    metadata = {"labels": _labels(model_name)}
    if prometheus_path:
        # The convention most Prometheus setups discover scrape targets by.
        metadata["annotations"] = {"prometheus.io/scrape": "true",
                                   "prometheus.io/port": str(_layout.REST_PORT),
                                   "prometheus.io/path": prometheus_path}
    return metadata


def deployment(model_name, image, prometheus_path, resources):
    """The Deployment running TF Serving; `resources` is {"requests": ..., "limits": ...}.

    `prometheus_path` (None when monitoring is off) goes into the pods'
    scrape annotations.
    """
    selector = {"app.kubernetes.io/name": names(model_name)["app"]}
    container = {
        "name": CONTAINER,
        "image": image,
        "args": _kit_server.server_args(CONFIG_DIR),
        "ports": [{"name": "grpc", "containerPort": _layout.GRPC_PORT},
                  {"name": "http", "containerPort": _layout.REST_PORT}],
        # TF Serving opens its ports only once the models in models.config have
        # loaded: the startup probe gives a big model five minutes for that,
        # before liveness can restart the pod.
        "startupProbe": {"tcpSocket": {"port": "grpc"}, "periodSeconds": 5,
                         "failureThreshold": 60},
        "livenessProbe": {"tcpSocket": {"port": "grpc"}, "periodSeconds": 10,
                          "failureThreshold": 3},
        "readinessProbe": {"exec": {"command": _kit_server.health_check(model_name)},
                           "periodSeconds": 5, "timeoutSeconds": 3, "failureThreshold": 3},
        "resources": resources,
        "volumeMounts": [
            {"name": "models", "mountPath": _layout.CONTAINER_ROOT, "readOnly": True},
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        ],
    }
    return {
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": _metadata(model_name, "app"),
        # No replicas: the HorizontalPodAutoscaler owns the count, and a count
        # here would reset it on every kubectl apply.
        "spec": {
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": _pod_metadata(model_name, prometheus_path),
                "spec": {
                    "containers": [container],
                    "volumes": [
                        {"name": "models", "persistentVolumeClaim": {
                            "claimName": names(model_name)["claim"], "readOnly": True}},
                        {"name": "config", "configMap": {"name": names(model_name)["config"]}},
                    ],
                },
            },
        },
    }


def service(model_name):
    """The Service in front of the Deployment's ready pods: gRPC and REST."""
    return {
        "apiVersion": "v1", "kind": "Service", "metadata": _metadata(model_name, "app"),
        "spec": {
            "selector": {"app.kubernetes.io/name": names(model_name)["app"]},
            "ports": [
                {"name": "grpc", "port": _layout.GRPC_PORT, "targetPort": "grpc",
                 "appProtocol": "grpc"},
                {"name": "http", "port": _layout.REST_PORT, "targetPort": "http",
                 "appProtocol": "http"},
            ],
        },
    }


def autoscaler(model_name, min_replicas, max_replicas, cpu_utilization):
    """A HorizontalPodAutoscaler (autoscaling/v2) scaling the Deployment on CPU."""
    return {
        "apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
        "metadata": _metadata(model_name, "app"),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                               "name": names(model_name)["app"]},
            "minReplicas": min_replicas,
            "maxReplicas": max_replicas,
            "metrics": [{"type": "Resource", "resource": {
                "name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": cpu_utilization}}}],
        },
    }
