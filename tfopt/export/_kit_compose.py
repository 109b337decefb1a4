"""The docker-compose.yml of the deployment kit: one TF Serving container.

The export root is mounted read-only at /models, where models.config's base
paths point; the server reads its three configs from there too. Written in the
Compose Specification (no ``version`` key), which Docker Compose v2 and
docker-compose 1.29 both read.
"""

from tfopt.export import _kit_server
from tfopt.export import _layout


def compose_file(model_name, export_root, image):
    """The docker-compose.yml document for serving `model_name`.

    Args:
      model_name: the model, as named in models.config; also the service name.
      export_root: the export root relative to the folder of docker-compose.yml
        (Compose resolves relative bind sources against it), e.g. "./models".
      image: the TF Serving image with its tag.

    Returns:
      The document as a dict.
    """
    return {
        "services": {
            model_name: {
                "image": image,
                # Appended to the image's entrypoint, which already sets the ports.
                "command": _kit_server.server_args(_layout.CONTAINER_ROOT),
                "ports": [f"{port}:{port}" for port in (_layout.GRPC_PORT, _layout.REST_PORT)],
                "volumes": [{"type": "bind", "source": export_root,
                             "target": _layout.CONTAINER_ROOT, "read_only": True}],
                "healthcheck": {
                    "test": ["CMD", *_kit_server.health_check(model_name)],
                    "interval": "10s",
                    "timeout": "5s",
                    "retries": 3,
                    # Loading and warming up a model happens before the ports open.
                    "start_period": "60s",
                },
                "restart": "unless-stopped",
            },
        },
    }
