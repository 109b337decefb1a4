"""models.config: the ModelServerConfig that tells TF Serving which models and versions to serve.

Built with `tensorflow_serving.config.model_server_config_pb2` (tensorflow-serving-api)
and written in the text format ``tensorflow_model_server --model_config_file``
reads. Everything TF Serving would reject at start-up or at the first poll
(duplicate names, relative base paths, labels on versions it does not serve) is
refused here, before the file is written.
"""

import collections.abc
import dataclasses

from tensorflow_serving.config import model_server_config_pb2

from tfopt.export import _layout
from tfopt.export import _serving_config

# The platforms a stock tensorflow_model_server knows (model_servers/model_platform_types.h);
# others need a --platform_config_file, which tfopt does not write.
PLATFORMS = ("tensorflow",)
_URI_SCHEMES = ("gs://", "s3://", "hdfs://", "file://")
_ACTION = "model_server_config"
_FLAG = "--model_config_file"


@dataclasses.dataclass(frozen=True)
class ServedModel:
    """One model in a models.config: where it is, and which of its versions TF Serving serves.

    The version policy is one of: the latest `latest` versions (the default,
    latest 1, is TF Serving's own), ``versions="all"``, or a list of specific
    versions. Labels (e.g. ``{"stable": 1, "canary": 2}``) let clients ask for
    ``/v1/models/NAME/labels/canary``; they need specific versions (or "all"),
    so that the labelled versions are certain to be served. TF Serving only
    accepts labels on versions it has loaded, so a config with labels read at
    start-up needs ``--allow_version_labels_for_unavailable_models=true``.

    Args:
      name: the model name clients use (letters, digits, ``.``, ``_``, ``-``).
      base_path: the directory holding the numbered versions, as the server
        sees it: an absolute path or a gs://, s3://, hdfs:// URI. Defaults to
        ``/models/<name>``, where the deployment kit mounts the export root.
      platform: "tensorflow" (default), the only platform of a stock server.
      versions: None (default: serve the latest), "all", or a list of
        positive version numbers.
      latest: how many of the newest versions to serve when `versions` is
        None. Defaults to 1.
      labels: a dict from label to version. Defaults to no labels.

    Example:
      >>> ServedModel("digits", versions=[1, 2], labels={"stable": 1, "canary": 2})
    """

    name: str
    base_path: str = None
    platform: str = "tensorflow"
    versions: object = None
    latest: int = None
    labels: dict = None

    def __post_init__(self):
        name = _serving_config.validate_name(self.name, "ServedModel name")
        where = f"ServedModel {name!r}:"
        set_ = lambda field, value: object.__setattr__(self, field, value)  # noqa: E731
        set_("base_path", _validate_base_path(self.base_path, name, where))
        if self.platform not in PLATFORMS:
            raise ValueError(f"{where} platform={self.platform!r} is not one a stock "
                             f"tensorflow_model_server serves; use one of {list(PLATFORMS)}.")
        versions, latest = _validate_policy(self.versions, self.latest, where)
        set_("versions", versions)
        set_("latest", latest)
        set_("labels", _validate_labels(self.labels, versions, where))

    def with_version(self, version, label=None):
        """This model with `version` served too, and `label` (if given) moved to it.

        What the export CLI does when it adds a version: with specific versions,
        `version` joins them; "all" and latest-N policies serve a new version
        without a change. A label needs specific versions or "all".

        Args:
          version: the positive version number.
          label: a label to point at `version` (a label already on another
            version moves). Defaults to None.

        Returns:
          A new ServedModel.
        """
        version = _serving_config.validate_integer(version, f"ServedModel {self.name!r}: "
                                                   "version", 1)
        versions = self.versions
        if isinstance(versions, tuple):
            versions = tuple(sorted(set(versions) | {version}))
        labels = dict(self.labels)
        if label is not None:
            labels[label] = version
        return dataclasses.replace(self, versions=versions, labels=labels)

    def to_proto(self):
        """This model as a `tensorflow.serving.ModelConfig` message."""
        config = model_server_config_pb2.ModelConfig(
            name=self.name, base_path=self.base_path, model_platform=self.platform)
        policy = config.model_version_policy
        if self.versions == "all":
            policy.all.SetInParent()
        elif self.versions is None:
            policy.latest.num_versions = self.latest
        else:
            policy.specific.versions.extend(self.versions)
        config.version_labels.update(self.labels)
        return config

    @classmethod
    def from_proto(cls, config):
        """The ServedModel a `tensorflow.serving.ModelConfig` message describes.

        Raises ValueError, naming the model, for entries tfopt would not
        write (a relative base path, an unknown platform, labels on versions
        the policy may not serve).
        """
        policy = config.model_version_policy
        kind = policy.WhichOneof("policy_choice")
        versions, latest = None, None
        if kind == "all":
            versions = "all"
        elif kind == "specific":
            versions = list(policy.specific.versions)
        else:  # latest, or no policy: TF Serving serves the latest 1 (num_versions 0 too).
            latest = policy.latest.num_versions or 1
        # model_type is the deprecated spelling of the platform.
        platform = config.model_platform or (
            "tensorflow" if config.model_type == model_server_config_pb2.TENSORFLOW else "")
        return cls(config.name, config.base_path, platform, versions, latest,
                   dict(config.version_labels))


def _validate_base_path(base_path, name, where):
    if base_path is None:
        return f"{_layout.CONTAINER_ROOT}/{name}"
    if not isinstance(base_path, str):
        raise TypeError(f"{where} base_path must be a string, got {base_path!r}.")
    if not (base_path.startswith("/") or base_path.startswith(_URI_SCHEMES)):
        raise ValueError(f"{where} base_path={base_path!r} is relative; TF Serving needs an "
                         f"absolute path as the server sees it (e.g. "
                         f"'{_layout.CONTAINER_ROOT}/{name}' in the container) or a URI "
                         f"({', '.join(_URI_SCHEMES)}).")
    return base_path


def _validate_policy(versions, latest, where):
    """Returns (versions, latest): versions None, "all" or a sorted tuple; latest an int or None."""
    if versions is None:
        latest = 1 if latest is None else latest
        # num_versions is a uint32.
        return None, _serving_config.validate_integer(latest, f"{where} latest", 1,
                                                      _serving_config.UINT32_MAX)
    if latest is not None:
        raise ValueError(f"{where} give versions={versions!r} or latest={latest!r}, not both: "
                         "latest only applies when versions is None.")
    if versions == "all":
        return "all", None
    if isinstance(versions, (str, bytes)) or not isinstance(versions, collections.abc.Iterable):
        raise TypeError(f"{where} versions must be None, 'all' or a list of version numbers, "
                        f"got {versions!r}.")
    versions = [_serving_config.validate_integer(v, f"{where} each of versions", 1)
                for v in versions]
    if not versions:
        raise ValueError(f"{where} versions=[] serves nothing; list at least one version, or "
                         "pass versions=None to serve the latest.")
    repeated = sorted({v for v in versions if versions.count(v) > 1})
    if repeated:
        raise ValueError(f"{where} versions={versions} lists {repeated} more than once.")
    return tuple(sorted(versions)), None


def _validate_labels(labels, versions, where):
    if labels is None:
        return {}
    if not isinstance(labels, collections.abc.Mapping):
        raise TypeError(f"{where} labels must be a dict from label to version, got {labels!r}.")
    checked = {}
    for label, version in labels.items():
        _serving_config.validate_name(label, f"{where} label {label!r}")
        checked[label] = _serving_config.validate_integer(
            version, f"{where} the version of label {label!r}", 1)
    if checked and versions is None:
        raise ValueError(f"{where} labels={checked} need the labelled versions to be served, "
                         f"which the latest-N policy does not promise; pass "
                         f"versions={sorted(set(checked.values()))} (or versions='all').")
    if isinstance(versions, tuple):
        unserved = {label: v for label, v in checked.items() if v not in versions}
        if unserved:
            raise ValueError(f"{where} labels {unserved} name versions that "
                             f"versions={list(versions)} does not serve; add them to versions "
                             "or label a served version.")
    return checked


def model_server_config(models, path):
    """Writes a models.config (text `tensorflow.serving.ModelServerConfig`) for `models`.

    Everything is checked before anything is written; the file is replaced
    atomically, so a server polling it (``--model_config_file_poll_wait_seconds``)
    never reads half of it.

    Args:
      models: a ServedModel, or a dict of its arguments, or a list of them.
        Names must be unique.
      path: the file to write (usually ``<export root>/models.config``).

    Returns:
      The `ModelServerConfig` message written.

    Raises:
      ValueError, TypeError: a model, or `path`, is not one TF Serving accepts
        (the message names the model and the field).

    Example:
      >>> export.model_server_config(
      ...     [export.ServedModel("digits", versions=[1, 2], labels={"stable": 1, "canary": 2}),
      ...      {"name": "fashion", "latest": 2}],
      ...     "export/models.config")
    """
    models = _validate_models(models)
    _serving_config.validate_file_path(path, _ACTION, _layout.MODELS_CONFIG)
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.extend(model.to_proto() for model in models)
    _serving_config.write_text_proto(config, path, _FLAG)
    return config


def read_model_server_config(path):
    """Parses a models.config file into a `tensorflow.serving.ModelServerConfig`.

    Args:
      path: the text-format file.

    Returns:
      The parsed message.

    Raises:
      FileNotFoundError: there is no file at `path`.
      ValueError: the file does not parse; the message starts as TF Serving's
        ("Error parsing text-format tensorflow.serving.ModelServerConfig") and
        names the line.
    """
    return _serving_config.read_text_proto(path, model_server_config_pb2.ModelServerConfig)


def update_model_server_config(model, path):
    """Adds `model` to the models.config at `path`, or replaces the entry with its name.

    The other models' entries are kept as they are, in their order; a missing
    file is created with `model` alone.

    Args:
      model: a ServedModel or a dict of its arguments.
      path: the models.config file.

    Returns:
      The `ModelServerConfig` message written.

    Example:
      >>> config = export.read_model_server_config("export/models.config")
      >>> digits = export.ServedModel.from_proto(config.model_config_list.config[0])
      >>> export.update_model_server_config(digits.with_version(2, label="canary"),
      ...                                   "export/models.config")
    """
    model = _validate_models([model])[0]
    _serving_config.validate_file_path(path, _ACTION, _layout.MODELS_CONFIG)
    config = model_server_config_pb2.ModelServerConfig()
    try:
        config = read_model_server_config(path)
    except FileNotFoundError:
        pass
    if config.WhichOneof("config") == "custom_model_config":
        raise ValueError(f"{path!r} holds a custom_model_config, not a model_config_list; "
                         "tfopt can only add models to a model_config_list.")
    entries = config.model_config_list.config
    names = [entry.name for entry in entries]
    if model.name in names:
        entries[names.index(model.name)].CopyFrom(model.to_proto())
    else:
        entries.append(model.to_proto())
    _serving_config.write_text_proto(config, path, _FLAG)
    return config


def _validate_models(models):
    """Returns `models` as a list of ServedModel with unique names."""
    if isinstance(models, (ServedModel, collections.abc.Mapping)):
        models = [models]
    if isinstance(models, (str, bytes)) or not isinstance(models, collections.abc.Iterable):
        raise TypeError(f"{_ACTION}: models must be a ServedModel, a dict of its arguments, or "
                        f"a list of them, got {models!r}.")
    models = [_as_served_model(model) for model in models]
    if not models:
        raise ValueError(f"{_ACTION}: models is empty; a models.config without models serves "
                         "nothing. Give at least one ServedModel.")
    names = [model.name for model in models]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f"{_ACTION}: model names must be unique (TF Serving refuses \"Illegal "
                         f"to list model {repeated[0]} multiple times\"); {repeated} appear more "
                         "than once.")
    return models


def _as_served_model(model):
    if isinstance(model, ServedModel):
        return model
    if not isinstance(model, collections.abc.Mapping):
        raise TypeError(f"{_ACTION}: each model must be a ServedModel or a dict of its "
                        f"arguments, got {model!r} ({type(model).__name__}).")
    allowed = [field.name for field in dataclasses.fields(ServedModel)]
    unknown = sorted(set(model) - set(allowed))
    if unknown or "name" not in model:
        problem = f"unknown keys {unknown}" if unknown else "no 'name'"
        raise ValueError(f"{_ACTION}: the model {dict(model)!r} has {problem}; its keys are "
                         f"{allowed} ('name' required).")
    return ServedModel(**model)
