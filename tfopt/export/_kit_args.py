"""Checks of `serving_kit`'s arguments, run before anything is read or written.

The rules are the ones the kit's readers apply later: Kubernetes object names
(RFC 1035 labels), resource quantities, Docker image tags. Catching them here
turns a manifest the cluster would refuse at ``kubectl apply`` into an error
that names the argument.
"""

import numbers
import os
import re

# An RFC 1035 label (a Kubernetes Service name), short enough that the longest
# derived name, "<name>-serving-config", stays within the 63 characters allowed.
_NAME = re.compile(r"[a-z]([-a-z0-9]*[a-z0-9])?$")
MAX_NAME_LENGTH = 63 - len("-serving-config")
# Kubernetes' resource.Quantity: a decimal number with an optional suffix.
_QUANTITY = re.compile(r"[0-9]+(\.[0-9]+)?(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][0-9]+)?$")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_RESOURCE_KEYS = ("cpu", "memory")


def validate_name(model_name):
    """Raises unless `model_name` can name the model and the kit's Kubernetes objects."""
    if not isinstance(model_name, str):
        raise TypeError(f"model_name must be a string, got {type(model_name).__name__} "
                        f"{model_name!r}.")
    if len(model_name) > MAX_NAME_LENGTH or not _NAME.match(model_name):
        raise ValueError(
            f"model_name={model_name!r} cannot name the serving kit's objects: KServe serves "
            "the model under its InferenceService name and Kubernetes names are DNS labels, "
            f"so use at most {MAX_NAME_LENGTH} lowercase letters, digits and '-', starting "
            "with a letter and not ending in '-' (e.g. 'digits', 'fashion-cnn'); export the "
            "model under such a name.")


def _validate_int(name, value, minimum, maximum):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}.")
    if not minimum <= value <= maximum:
        raise ValueError(f"{name} must be between {minimum} and {maximum}, got {value}.")


def validate_replicas(min_replicas, max_replicas):
    """Raises unless 1 <= min_replicas <= max_replicas."""
    _validate_int("min_replicas", min_replicas, 1, 1000)
    _validate_int("max_replicas", max_replicas, 1, 1000)
    if max_replicas < min_replicas:
        raise ValueError(f"max_replicas ({max_replicas}) is below min_replicas "
                         f"({min_replicas}); the autoscaler needs min_replicas <= "
                         "max_replicas: raise max_replicas or lower min_replicas.")


def validate_percent(name, value, minimum=0):
    """Raises unless `value` is an integer percentage of at least `minimum`."""
    _validate_int(name, value, minimum, 100)


def validate_quantity(name, value):
    """Raises unless `value` is a Kubernetes quantity string such as "500m" or "2Gi"."""
    if not isinstance(value, str) or not _QUANTITY.match(value):
        raise ValueError(f"{name}={value!r} is not a Kubernetes quantity; give a string "
                         "such as '500m' or '2' (CPUs) or '512Mi' or '2Gi' (bytes).")


def resources(name, value, default):
    """The {"cpu": ..., "memory": ...} dict `value` checked, or `default` when None."""
    if value is None:
        return dict(default)
    if not isinstance(value, dict):
        raise TypeError(f"{name} must be a dict such as {default!r}, got "
                        f"{type(value).__name__} {value!r}.")
    unknown = sorted(set(value) - set(_RESOURCE_KEYS))
    if unknown or not value:
        raise ValueError(f"{name} takes the keys {list(_RESOURCE_KEYS)}, got {sorted(value)}; "
                         f"e.g. {default!r}.")
    for key in _RESOURCE_KEYS:
        if key in value:
            validate_quantity(f"{name}[{key!r}]", value[key])
    return {key: value[key] for key in _RESOURCE_KEYS if key in value}


def validate_tag(tag):
    """Raises unless `tag` is a Docker image tag such as "2.21.0"."""
    if not isinstance(tag, str) or not _TAG.match(tag):
        raise ValueError(f"tf_serving_version={tag!r} is not a Docker image tag; give a "
                         "tensorflow/serving release such as '2.21.0'.")


def directory(name, path, must_exist):
    """`path` as an absolute path, checked to be a directory (when `must_exist`)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path, got {type(path).__name__} {path!r}.")
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"{name}={path!r} is a file; give a directory.")
    if must_exist and not os.path.isdir(path):
        raise ValueError(f"{name}={path!r} does not exist; export the model there first "
                         "(tfopt-export --base_path=<export root>/<model name> ...).")
    return path
