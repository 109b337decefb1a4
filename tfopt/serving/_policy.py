"""Which versions of a model to serve, and the config checks TF Serving makes.

The versions a ``ModelVersionPolicy`` asks for out of those on disk
(``file_system_storage_path_source.cc``: latest N, all, or specific), and the
checks ``ServerCore`` makes of a ``ModelServerConfig`` before it realizes it.
"""

import os

import grpc

from tfopt.serving._errors import ServingError

PLATFORM = "tensorflow"


def aspired(policy, on_disk):
    """The versions of `on_disk` (numbers) that `policy` serves."""
    choice = policy.WhichOneof("policy_choice")
    if choice == "all":
        return set(on_disk)
    if choice == "specific":
        return set(on_disk) & set(policy.specific.versions)
    # Unset policy, or latest: the newest num_versions (TF Serving's default is 1).
    count = max(1, policy.latest.num_versions) if choice == "latest" else 1
    return set(sorted(on_disk, reverse=True)[:count])


def model_configs(config):
    """``[ModelConfig]`` of a ModelServerConfig, checked as ServerCore checks it.

    Raises:
      ServingError: INVALID_ARGUMENT / FAILED_PRECONDITION with the reason.
    """
    kind = config.WhichOneof("config")
    if kind is None:
        return []
    if kind != "model_config_list":
        raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                           "Cannot transition to requested config. It is only legal to "
                           "transition from one ModelConfigList to another.")
    models = list(config.model_config_list.config)
    for model in models:  # tfopt's own check: TF Serving would serve a model named ""
        if not model.name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "ModelConfig is missing a name (config list entry "
                               f"with base_path {model.base_path!r}).")
    # ValidateModelConfigList (server_core.cc): unique names first, then every base path
    # absolute (tensorflow_model_server sets no model_config_list_root_dir).
    seen = set()
    for model in models:
        if model.name in seen:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Illegal to list model {model.name} multiple times in "
                               "config list")
        seen.add(model.name)
    for model in models:
        if _is_relative(model.base_path):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Expected model {model.name} to have an absolute path or URI; "
                               f"got base_path()={model.base_path}")
    # CreateStoragePathRoutes (server_core.cc); "" stays tfopt's shorthand for tensorflow.
    for model in models:
        if model.model_platform not in ("", PLATFORM):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Model {model.name} requests unsupported platform "
                               f"{model.model_platform}")
    return models


def _is_relative(base_path):
    """UriIsRelativePath (server_core.cc): no scheme, no host, not an absolute path."""
    return "://" not in base_path and not os.path.isabs(base_path)
