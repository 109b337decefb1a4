"""ServableManager: the models a server serves, loaded and unloaded as TF Serving does.

For each model of a ``ModelServerConfig`` it watches the base path: children
whose names parse as integers are versions (``tfopt/export/_versions.py``),
the version policy picks the ones to serve, each is loaded with the TF1
SavedModel loader (tag ``serve``), its warmup file replayed, and only then
marked AVAILABLE. A polling thread repeats this, loading new versions and
unloading those no longer wanted; a version that fails to load is reported
in the status as END with its error, as TF Serving reports it. Unloading a
version only drops the manager's reference: a request holding the Servable
finishes on it, and its session closes with the last reference.
"""

import os
import threading

import grpc
from absl import logging
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.config import model_server_config_pb2

from tfopt.export import _versions
from tfopt.serving import _policy
from tfopt.serving import _warmup_replay
from tfopt.serving._errors import ServingError

_State = get_model_status_pb2.ModelVersionStatus.State


class _Model:
    """One configured model: its config, every version's state, the loaded Servables."""

    def __init__(self, config):
        self.config = config
        self.states = {}      # version -> (state, grpc.StatusCode, message)
        self.available = {}   # version -> Servable
        self.failed = set()   # versions whose load failed, not retried while on disk
        self.labels = {}


class ServableManager:
    """Loads, serves and unloads model versions as TF Serving's ServerCore does.

    Args:
      config: a ``tensorflow_serving.config.model_server_config_pb2.ModelServerConfig``.
      file_system_poll_wait_seconds: seconds between polls of the base paths;
        0 loads once and never polls. Defaults to 1.0.
      enable_model_warmup: replay each version's warmup file before it is
        AVAILABLE. Defaults to True.
      num_request_iterations_for_warmup: times each warmup record is
        replayed (0 means 1, as in TF Serving). Defaults to 1.
      allow_version_labels_for_unavailable_models: let labels point at
        versions not (yet) AVAILABLE. Defaults to False.
      session_config: a ``tf.compat.v1.ConfigProto`` for each version's
        session. Defaults to None.

    Example:
      >>> manager = ServableManager(config, file_system_poll_wait_seconds=0)
      >>> manager.start()
      >>> name, outputs = manager.servable("half_plus_two").predict({"x": x})
    """

    def __init__(self, config, *, file_system_poll_wait_seconds=1.0, enable_model_warmup=True,
                 num_request_iterations_for_warmup=1,
                 allow_version_labels_for_unavailable_models=False, session_config=None):
        if not isinstance(config, model_server_config_pb2.ModelServerConfig):
            raise TypeError(f"config must be a ModelServerConfig proto, got "
                            f"{type(config).__name__}; parse a models.config with "
                            "google.protobuf.text_format.Parse(text, ModelServerConfig()).")
        _validate_number("file_system_poll_wait_seconds", file_system_poll_wait_seconds)
        _validate_number("num_request_iterations_for_warmup", num_request_iterations_for_warmup,
                         integer=True)
        try:
            _policy.model_configs(config)
        except ServingError as error:
            raise ValueError(f"config: {error.message}") from None
        self._config = config
        self._poll_seconds = float(file_system_poll_wait_seconds)
        self._warmup = bool(enable_model_warmup)
        self._warmup_iterations = max(1, int(num_request_iterations_for_warmup))
        self._allow_unavailable_labels = bool(allow_version_labels_for_unavailable_models)
        self._session_config = session_config
        self._models = {}
        self._lock = threading.RLock()       # guards _models and what they hold
        self._poll_lock = threading.Lock()   # one poll or reload at a time
        self._stopped = threading.Event()
        self._thread = None

    def start(self):
        """Loads the config's models (synchronously), then starts polling.

        Raises:
          ServingError: a label pointing at a version that is not AVAILABLE
            (without allow_version_labels_for_unavailable_models).
        """
        self.reload_config(self._config)
        if self._poll_seconds > 0 and self._thread is None:
            self._stopped.clear()
            self._thread = threading.Thread(target=self._poll_forever, daemon=True,
                                            name="tfopt-serving-poll")
            self._thread.start()

    def stop(self):
        """Stops polling and unloads every version (in-flight requests finish)."""
        self._stopped.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        with self._lock:
            for model in self._models.values():
                _unload_all(model)

    def reload_config(self, config):
        """Serves exactly the models of `config`, as HandleReloadConfigRequest does.

        Models dropped from the list are unloaded, new ones loaded, kept ones
        take their new policy and labels; returns when the loads are done.

        Raises:
          TypeError: `config` is not a ModelServerConfig.
          ServingError: an illegal config, or a label on a version that is
            not AVAILABLE (nothing is changed then).
        """
        if not isinstance(config, model_server_config_pb2.ModelServerConfig):
            raise TypeError(f"config must be a ModelServerConfig proto, got "
                            f"{type(config).__name__}.")
        configs = _policy.model_configs(config)
        with self._poll_lock:
            with self._lock:
                for model_config in configs:  # labels first, as ServerCore does
                    self._check_labels(model_config)
                for name in [n for n in self._models if n not in {c.name for c in configs}]:
                    _unload_all(self._models.pop(name))
                for model_config in configs:
                    model = self._models.setdefault(model_config.name, _Model(model_config))
                    model.config = model_config
                    model.labels = dict(model_config.version_labels)
                self._config = config
            self._poll_once()

    def servable(self, model_name, version=None, label=None):
        """The AVAILABLE Servable a request names (latest, a version or a label).

        Raises:
          ServingError: INVALID_ARGUMENT for a missing name, an unknown label
            or both version and label; NOT_FOUND when nothing is AVAILABLE.
        """
        if not model_name:
            # ServerCore::ServableRequestFromModelSpec (server_core.cc).
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "ModelSpec has no name specified.")
        if version is not None and label is not None:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               "A ModelSpec names either a version or a version_label, "
                               f"not both (got version {version}, label {label!r}).")
        with self._lock:
            model = self._models.get(model_name)
            if label is not None:
                if model is None or label not in model.labels:
                    raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                       f"Unrecognized servable version label: {label}")
                version = model.labels[label]
            if version is None:
                if model is None or not model.available:
                    raise ServingError(grpc.StatusCode.NOT_FOUND,
                                       f"Servable not found for request: Latest({model_name})")
                return model.available[max(model.available)]
            found = model.available.get(int(version)) if model is not None else None
            if found is None:
                raise ServingError(grpc.StatusCode.NOT_FOUND, "Servable not found for "
                                   f"request: Specific({model_name}, {version})")
            return found

    def status(self, model_name, version=None, label=None):
        """The GetModelStatusResponse for a model (all versions, newest first) or one version.

        A label is ignored, as TF Serving's GetModelStatus ignores it.

        Raises:
          ServingError: NOT_FOUND for a model or version never seen.
        """
        del label  # get_model_status_impl.cc looks only at the version
        response = get_model_status_pb2.GetModelStatusResponse()
        with self._lock:
            model = self._models.get(model_name)
            if model is None or not model.states:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find any versions of model {model_name}")
            if version is not None and int(version) not in model.states:
                raise ServingError(grpc.StatusCode.NOT_FOUND,
                                   f"Could not find version {version} of model {model_name}")
            versions = [int(version)] if version is not None else sorted(model.states,
                                                                         reverse=True)
            for number in versions:
                state, code, message = model.states[number]
                entry = response.model_version_status.add(version=number, state=state)
                entry.status.error_code = code.value[0]
                entry.status.error_message = message
        return response

    def model_names(self):
        """The configured models' names, in config order."""
        with self._lock:
            return list(self._models)

    def _check_labels(self, model_config):
        if self._allow_unavailable_labels:
            return
        model = self._models.get(model_config.name)
        # Lowest version first, so the error names the same version every time.
        for version, label in sorted((v, k) for k, v in model_config.version_labels.items()):
            if model is None or version not in model.available:
                raise ServingError(
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"Request to assign label to version {version} of model "
                    f"{model_config.name}, which is not currently available for inference")

    def _poll_forever(self):
        while not self._stopped.wait(self._poll_seconds):
            with self._poll_lock:
                try:
                    self._poll_once()
                except Exception:  # keep serving; the next poll tries again
                    logging.exception("tfopt-serve: polling the model base paths failed")

    def _poll_once(self):
        """Loads aspired versions not yet loaded and unloads the others."""
        with self._lock:
            models = list(self._models.values())
        for model in models:
            base_path = model.config.base_path
            on_disk = {number: os.path.join(base_path, sorted(names)[0])
                       for number, names in _versions.versions(base_path).items()}
            wanted = _policy.aspired(model.config.model_version_policy, on_disk)
            with self._lock:
                model.failed &= wanted
            for number in sorted(wanted - set(model.available) - model.failed, reverse=True):
                self._load(model, number, on_disk[number])
            with self._lock:
                _unload_unwanted(model, wanted)

    def _load(self, model, number, path):
        from tfopt.serving import _loader  # TensorFlow loads only when a model does
        name = model.config.name
        with self._lock:
            model.states[number] = (_State.LOADING, grpc.StatusCode.OK, "")
        try:
            servable = _loader.load(name, number, path, self._session_config)
            if self._warmup:
                _warmup_replay.replay(servable, path, self._warmup_iterations)
        except ServingError as error:
            logging.warning("tfopt-serve: version %d of model %s failed to load: %s",
                            number, name, error.message)
            with self._lock:
                model.states[number] = (_State.END, error.code, error.message)
                model.failed.add(number)
            return
        with self._lock:
            if self._models.get(name) is not model:  # dropped by a reload meanwhile
                return
            model.available[number] = servable
            model.states[number] = (_State.AVAILABLE, grpc.StatusCode.OK, "")
        logging.info("tfopt-serve: version %d of model %s is AVAILABLE", number, name)


def _unload_unwanted(model, wanted):
    """Unloads versions no longer wanted, as TF Serving's AvailabilityPreservingPolicy.

    The oldest unwanted version goes while no version is wanted, a wanted
    one is AVAILABLE, or other unwanted ones remain up: so an old version
    keeps serving while its successor loads or after its successor failed.
    """
    while True:
        unwanted = sorted(v for v in model.available if v not in wanted)
        serving = any(v in model.available for v in wanted)
        if not unwanted or (wanted and not serving and len(unwanted) == 1):
            return
        del model.available[unwanted[0]]
        model.states[unwanted[0]] = (_State.END, grpc.StatusCode.OK, "")


def _unload_all(model):
    for number in list(model.available):
        del model.available[number]
        model.states[number] = (_State.END, grpc.StatusCode.OK, "")


def _validate_number(name, value, integer=False):
    allowed = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed) or value < 0:
        kind = "a non-negative int" if integer else "a non-negative number of seconds"
        raise (ValueError if isinstance(value, allowed) and not isinstance(value, bool)
               else TypeError)(f"{name} must be {kind}, got {type(value).__name__} {value!r}.")
