"""How the deployment kit starts TF Serving and asks whether a model is ready.

docker compose and Kubernetes run the same server the same way; only where
the configs are mounted differs. Flags and their rules are TF Serving's
(``model_servers/main.cc``); the image's entrypoint already passes
``--port``, ``--rest_api_port``, ``--model_name`` and ``--model_base_path``,
and ``--model_config_file`` overrides the last two.
"""

import posixpath

from tfopt.export import _layout

# TF Serving re-reads models.config this often, so moving a version label
# (stable/canary) or adding a model needs no restart.
CONFIG_POLL_SECONDS = 60

# The official image is Ubuntu with ca-certificates added: no curl, no wget.
# bash opens TCP connections itself (/dev/tcp) and grep is part of every
# Ubuntu base, so the check needs nothing else. The status answer lists every
# version with its state (pretty-printed JSON), so the check passes only when
# some version is AVAILABLE: a LOADING or failed version, an unknown model (404)
# or a server that does not answer all fail it.
_HEALTH_CHECK = ("exec 3<>/dev/tcp/127.0.0.1/{port} && "
                 "printf 'GET /v1/models/{model} HTTP/1.0\\r\\n\\r\\n' >&3 && "
                 "grep -Eq '\"state\" *: *\"AVAILABLE\"' <&3")


def server_args(config_dir):
    """Flags for tensorflow_model_server when the three configs are in `config_dir`.

    Args:
      config_dir: the container directory holding models.config,
        batching.config and monitoring.config.

    Returns:
      A list of ``--flag=value`` strings, in a fixed order.
    """
    return [
        f"--model_config_file={posixpath.join(config_dir, _layout.MODELS_CONFIG)}",
        f"--model_config_file_poll_wait_seconds={CONFIG_POLL_SECONDS}",
        # models.config may label a version that is still loading (a canary);
        # without this flag TF Serving refuses such a config at startup.
        "--allow_version_labels_for_unavailable_models=true",
        # The parameters file without this flag is a startup error.
        "--enable_batching=true",
        f"--batching_parameters_file={posixpath.join(config_dir, _layout.BATCHING_CONFIG)}",
        f"--monitoring_config_file={posixpath.join(config_dir, _layout.MONITORING_CONFIG)}",
    ]


def config_paths(args):
    """The container paths the flags of `server_args` name, by flag name."""
    return {arg[2:].split("=")[0]: arg.split("=", 1)[1]
            for arg in args if arg.split("=")[0].endswith("_file")}


def health_check(model_name, port=_layout.REST_PORT):
    """A bash command that succeeds only when a version of `model_name` is AVAILABLE.

    Args:
      model_name: the model as TF Serving knows it (the name in models.config).
      port: the REST port inside the container. Defaults to 8501.

    Returns:
      The argv of the check: ``["bash", "-c", script]``.
    """
    return ["bash", "-c", _HEALTH_CHECK.format(port=port, model=model_name)]
