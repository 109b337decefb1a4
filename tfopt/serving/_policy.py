"""Which versions of a model to serve, and the config checks TF Serving makes.

The versions a ``ModelVersionPolicy`` asks for out of those on disk
(``file_system_storage_path_source.cc``: latest N, all, or specific), and the
checks ``ServerCore`` makes of a ``ModelServerConfig`` before it realizes it.
"""

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
    seen = set()
    for model in config.model_config_list.config:
        if not model.name:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "ModelConfig is missing a name (config list entry "
                               f"with base_path {model.base_path!r}).")
        if model.name in seen:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Illegal to list model {model.name} multiple times in "
                               "config list")
        seen.add(model.name)
        if not model.base_path:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Model {model.name} has no base_path.")
        if model.model_platform not in ("", PLATFORM):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Model {model.name} requested unsupported platform "
                               f"{model.model_platform}; this server runs '{PLATFORM}'.")
    return list(config.model_config_list.config)
