"""The KServe InferenceService of the deployment kit: TF Serving run by KServe.

KServe's ``tensorflow`` model format selects its kserve-tensorflow-serving
runtime, which runs the official tensorflow/serving image with
``--model_name=<InferenceService name> --model_base_path=/mnt/models``, where
the storage initializer puts what ``storageUri`` names: a model's base path
(its numeric version directories), not the whole export root. So the
InferenceService is named after the model, and clients use the same
``/v1/models/NAME`` paths as with docker compose.

KServe splits traffic between revisions of the InferenceService, not between
versions in one base path (each revision's TF Serving serves the highest
version it finds), so a canary is a new revision with a new ``storageUri``.
"""

from tfopt.export import _kit_kubernetes

PROMOTE_AND_ROLL_BACK = (
    "Canary rollout (KServe keeps the last revision that had 100% of the traffic):",
    "  1. copy the new version into a new base path on the volume, e.g. <model>-v2/<version>/,",
    "     and point storageUri at it: the new revision gets canaryTrafficPercent % of requests;",
    "  2. promote: delete canaryTrafficPercent (or set it to 100) and kubectl apply again;",
    "  3. roll back: set canaryTrafficPercent to 0 and kubectl apply: all traffic returns to",
    "     the previous revision; then restore the previous storageUri.",
)


def inference_service(model_name, tf_serving_version, canary_traffic_percent,
                      min_replicas, max_replicas, resources):
    """The InferenceService (serving.kserve.io/v1beta1) for `model_name`.

    Args:
      model_name: the model; the InferenceService's name, which KServe's
        runtime passes to TF Serving as the model name.
      tf_serving_version: the tensorflow/serving image tag (KServe's runtime
        defaults to an old one, which may not load today's SavedModels).
      canary_traffic_percent: the share of requests a new revision gets.
      min_replicas: the fewest predictor pods.
      max_replicas: the most predictor pods.
      resources: {"requests": ..., "limits": ...} of the predictor container.

    Returns:
      The document as a dict.
    """
    return {
        "apiVersion": "serving.kserve.io/v1beta1",
        "kind": "InferenceService",
        "metadata": {"name": model_name,
                     "labels": {"app.kubernetes.io/managed-by": "tfopt"}},
        "spec": {
            "predictor": {
                "minReplicas": min_replicas,
                "maxReplicas": max_replicas,
                # Ignored on the first rollout: it splits traffic between the
                # newest revision and the previous one at 100%.
                "canaryTrafficPercent": canary_traffic_percent,
                "model": {
                    "modelFormat": {"name": "tensorflow"},
                    "runtimeVersion": tf_serving_version,
                    # The deployment's volume (same namespace), at the model's base path.
                    "storageUri": (f"pvc://{_kit_kubernetes.names(model_name)['claim']}/"
                                   f"{model_name}"),
                    "resources": resources,
                },
            },
        },
    }
