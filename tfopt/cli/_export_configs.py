"""The serving configs tfopt-export keeps in the export root, updated, never clobbered.

models.config may already list other models, and this model's other versions
and labels (a canary beside a stable version): the tool reads it before any
export, changes only this model's entry and writes it back. batching.config
and monitoring.config are written with defaults when missing and otherwise
left as the user tuned them.
"""

import contextlib
import os

from tfopt import export
from tfopt.cli._app import UsageError
from tfopt.export import _layout
from tfopt.export import _versions

_OTHER_CONFIGS = ((_layout.BATCHING_CONFIG, export.batching_config),
                  (_layout.MONITORING_CONFIG, export.monitoring_config))


def validate_version_free(base_path, version, overwrite):
    """Raises UsageError if --version names an existing version and --overwrite is not given.

    Directory names count as TF Serving reads them: "007" is version 7.
    """
    if version is None or overwrite:
        return
    names = _versions.versions(base_path).get(version)
    if names:
        raise UsageError(f"--version={version}: {os.path.join(base_path, names[0])} exists "
                         "already; give --overwrite to replace it, or leave --version out to "
                         "write the next version.")


class ConfigUpdate:
    """This model's entry in the export root's models.config, read before anything is exported.

    Labels given move to the new version; the model's other labels stay. TF
    Serving answers a label only while its version is loaded, so when the
    model has labels, the version policy lists every labelled version and the
    new one (a policy serving all versions stays as it is). Without labels the
    policy is kept: `latest` serves the new version by itself; `specific`
    versions get it added. A model new to the file is served by TF Serving's
    default, the latest version, unless it gets labels.
    """

    def __init__(self, root, name, base_path, labels):
        self._root = root
        self._name = name
        self._base_path = _layout.container_path(root, base_path)
        self._labels = list(labels)
        self._path = os.path.join(root, _layout.MODELS_CONFIG)
        self._existed = os.path.exists(self._path)
        self._current = self._read() if self._existed else None
        self._written = []

    def _read(self):
        """This model's entry as a ServedModel, or None; UsageError if the file is unusable."""
        try:
            config = export.read_model_server_config(self._path)
            for entry in config.model_config_list.config:
                if entry.name == self._name:
                    return export.ServedModel.from_proto(entry)
        except (ValueError, TypeError, OSError) as error:
            raise UsageError(f"--base_path: the export root's {self._path} cannot be updated: "
                             f"{error} Fix or remove the file.") from error
        if config.WhichOneof("config") == "custom_model_config":
            raise UsageError(f"--base_path: the export root's {self._path} holds a "
                             "custom_model_config, to which tfopt-export cannot add a model. "
                             "Export into another directory, or remove the file.")
        return None

    def served_model(self, version):
        """This model's entry once `version` is exported, a ServedModel."""
        current = self._current
        labels = {} if current is None else dict(current.labels)
        labels = {key: value for key, value in labels.items() if key not in self._labels}
        labels.update({label: version for label in self._labels})
        specific = current is not None and isinstance(current.versions, tuple)
        versions, latest = None, None
        if current is not None and current.versions == "all":
            versions = "all"
        elif specific or labels:
            versions = sorted(set(current.versions if specific else ())
                              | set(labels.values()) | {version})
        elif current is not None:
            latest = current.latest
        return export.ServedModel(self._name, self._base_path, versions=versions,
                                                latest=latest, labels=labels)

    def write(self, version):
        """Writes the configs; a failure removes the files it created, models.config stays."""
        model = self.served_model(version)  # checked before any file is touched
        created = []
        try:
            written = []
            for name, writer in _OTHER_CONFIGS:
                path = os.path.join(self._root, name)
                if os.path.exists(path):
                    written.append(f"{name} (kept)")
                else:
                    writer(path)
                    created.append(path)
                    written.append(f"{name} (written)")
            # Last: it is the one file that replaces an existing one (atomically).
            export.update_model_server_config(model, self._path)
        except BaseException:
            for path in created:
                with contextlib.suppress(OSError):
                    os.remove(path)
            raise
        state = "updated" if self._existed else "written"
        self._written = [f"{_layout.MODELS_CONFIG} ({state})"] + written

    def summary(self):
        """One line: which config files this run wrote or kept, and where."""
        return f"configs in {self._root}: {', '.join(self._written)}"
