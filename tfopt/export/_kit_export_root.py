"""Reading an export root for the deployment kit, and refusing one TF Serving cannot start from.

TF Serving started on models.config waits for every model it lists to load: a
base path with no version directory keeps it from ever serving, and a config
that fails to parse stops it at once. The kit checks both here, through TF
Serving's own protos, so the mistake shows when the kit is made rather than as
a container that never turns healthy.
"""

import collections
import os
import posixpath

from tfopt.export import _layout

ExportRoot = collections.namedtuple("ExportRoot", ["path", "configs", "prometheus_path"])
ExportRoot.__doc__ = """An export root as the kit needs it.

Attributes:
  path: the export root, absolute.
  configs: {file name: text} of models.config, batching.config, monitoring.config.
  prometheus_path: the REST path of the Prometheus metrics, or None when disabled.
"""

def _readers():
    """{config file name: the function that parses and checks it}."""
    from tfopt.export import _model_server_config
    from tfopt.export import _server_flags_config
    return {_layout.MODELS_CONFIG: _model_server_config.read_model_server_config,
            _layout.BATCHING_CONFIG: _server_flags_config.read_batching_config,
            _layout.MONITORING_CONFIG: _server_flags_config.read_monitoring_config}


def host_path(root, container):
    """The file or directory under the export root `root` that the container sees at `container`.

    The inverse of `_layout.container_path`; raises ValueError for a path
    outside the mount.
    """
    relative = posixpath.relpath(posixpath.normpath(container), _layout.CONTAINER_ROOT)
    if not posixpath.isabs(container) or relative.startswith(os.pardir):
        raise ValueError(f"{container!r} is not under {_layout.CONTAINER_ROOT}, where the "
                         "container mounts the export root.")
    return os.path.normpath(os.path.join(root, *relative.split("/")))


def versions(base_path):
    """The version numbers TF Serving would load from `base_path` (integer-named SavedModels)."""
    found = []
    for name in os.listdir(base_path):
        version_dir = os.path.join(base_path, name)
        if name.isdigit() and any(os.path.isfile(os.path.join(version_dir, pb)) for pb in
                                  ("saved_model.pb", "saved_model.pbtxt")):
            found.append(int(name))
    return sorted(found)


def _read(root, name, reader):
    """The text of the config `name` and its message, parsed by `reader`."""
    path = os.path.join(root, name)
    if not os.path.isfile(path):
        raise ValueError(f"The export root {root!r} has no {name}; the kit serves what "
                         "tfopt-export wrote: export the model there first.")
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    # The readers raise ValueError in TF Serving's wording for a file it would refuse.
    return text, reader(path)


def _validate_models(root, model_name, config):
    listed = [model.name for model in config.model_config_list.config]
    if model_name not in listed:
        raise ValueError(f"{_layout.MODELS_CONFIG} in {root!r} does not list a model named "
                         f"{model_name!r} (it lists {listed}); export it with "
                         f"--model_name={model_name}, or pick a listed name.")
    for model in config.model_config_list.config:
        base_path = host_path(root, model.base_path)
        if not os.path.isdir(base_path) or not versions(base_path):
            raise ValueError(
                f"Model {model.name!r} in {_layout.MODELS_CONFIG} has base path "
                f"{model.base_path!r}, but {base_path!r} holds no version directory with a "
                "SavedModel, so TF Serving would wait for it forever; export a version there "
                f"or remove the model from {_layout.MODELS_CONFIG}.")


def read(export_root, model_name):
    """The export root `export_root`, checked to serve `model_name`.

    Args:
      export_root: the directory holding the configs and the model's base path.
      model_name: the model the kit is for.

    Returns:
      An `ExportRoot`.

    Raises:
      ValueError: a config is missing or does not parse, models.config does
        not list `model_name`, or a model it lists has no version to load.
    """
    if not isinstance(export_root, (str, os.PathLike)):
        raise TypeError(f"export_root must be a path, got {type(export_root).__name__} "
                        f"{export_root!r}.")
    root = os.path.abspath(os.fspath(export_root))
    if not os.path.isdir(root):
        raise ValueError(f"export_root={root!r} is not a directory; export the model first "
                         f"(its base path is <export root>/{model_name}).")
    read_files = {name: _read(root, name, reader) for name, reader in _readers().items()}
    configs = {name: text for name, (text, _) in read_files.items()}
    messages = {name: message for name, (_, message) in read_files.items()}
    if not messages[_layout.MODELS_CONFIG].HasField("model_config_list"):
        raise ValueError(f"{_layout.MODELS_CONFIG} in {root!r} has no model_config_list; "
                         "write it with tfopt-export or export.model_server_config.")
    _validate_models(root, model_name, messages[_layout.MODELS_CONFIG])
    prometheus = messages[_layout.MONITORING_CONFIG].prometheus_config
    prometheus_path = (prometheus.path or _layout.PROMETHEUS_PATH) if prometheus.enable else None
    return ExportRoot(root, configs, prometheus_path)
