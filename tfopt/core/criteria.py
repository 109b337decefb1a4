"""Importance criteria: which weights to keep.

A criterion scores every weight; pruning removes the lowest scores (or, for
channel pruning, the units with the lowest summed score). Criteria that need
gradients observe them inside the training step `fit` already runs, through
``observe``, and the wrapper keeps an exponential moving average of what they
return; ``scores`` then turns weights and that average into importances.
"""

import inspect
import zlib

import numpy as np

from tfopt._config import ConfigEquality


class Criterion(ConfigEquality):
    """Base class: subclass and implement `scores` (and `observe` to use gradients).

    Attributes:
      needs_gradients: whether the wrapper should collect `observe` statistics.
      decay: moving-average decay of the gradient statistics.
    """

    needs_gradients = False
    decay = 0.0

    def observe(self, weight, gradient):
        """Per-step statistic (a tensor shaped like `weight`), averaged over steps."""
        raise NotImplementedError

    def scores(self, weight, statistic, key):
        """Elementwise importance (numpy, shaped like `weight`); higher is kept.

        Args:
          weight: the current weight values.
          statistic: the moving average of `observe`, or None.
          key: a stable name of the weight (for seeded criteria).
        """
        raise NotImplementedError

    def get_config(self):
        return {}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class Magnitude(Criterion):
    """|w|: the L1 criterion, tfmot's only one. Channels rank by their L1 norm."""

    def scores(self, weight, statistic, key):
        return np.abs(weight)


class L2(Criterion):
    """w**2: same order as |w| per weight; channels rank by their L2 norm."""

    def scores(self, weight, statistic, key):
        return np.square(weight)


class Random(Criterion):
    """Random importance, reproducible from `seed` (a baseline for ablations).

    Each weight gets fixed random scores derived from `seed`, the position of
    its layer in the model and the weight's name, so repeated pruning steps
    remove nested sets of weights, and two identically built models pruned
    with the same seed get the same masks (in one process or across runs).

    Args:
      seed: integer seed. Defaults to 0.
    """

    def __init__(self, seed=0):
        if not isinstance(seed, (int, np.integer)) or isinstance(seed, bool):
            raise ValueError(f"Random(seed=...) needs an integer seed, got {seed!r}.")
        self.seed = int(seed)

    def scores(self, weight, statistic, key):
        rng = np.random.default_rng([self.seed, zlib.crc32(key.encode())])
        return rng.random(np.shape(weight))

    def get_config(self):
        return {"seed": self.seed}


class Taylor(Criterion):
    """First-order Taylor importance |w * dL/dw| (Molchanov et al., 2017/2019).

    The estimate of how much the loss changes when a weight is removed. The
    gradient comes from the backward pass `fit` already runs (no extra forward
    pass) and is averaged over recent steps with an exponential moving average.
    Before any gradient is seen, weights rank by magnitude.

    Args:
      decay: moving-average decay per training step, in [0, 1). Defaults to
        0.95 (about the last 20 steps).
    """

    needs_gradients = True

    def __init__(self, decay=0.95):
        if not isinstance(decay, (int, float)) or not 0.0 <= decay < 1.0:
            raise ValueError(f"Taylor(decay=...) must be in [0, 1), got {decay!r}.")
        self.decay = float(decay)

    def observe(self, weight, gradient):
        # Python operators only: works on TensorFlow, JAX and numpy tensors alike.
        return abs(weight * gradient)

    def scores(self, weight, statistic, key):
        if statistic is None or not np.any(statistic):
            return np.abs(weight)
        return statistic

    def get_config(self):
        return {"decay": self.decay}


class Custom(Criterion):
    """A user function ``fn(weights, gradients) -> scores`` as a criterion.

    `weights` is a numpy array; `gradients` is the moving average of dL/dw over
    recent training steps (zeros before the first step). Register `fn` with
    ``keras.utils.register_keras_serializable`` so pruned models save and load.

    This class holds no Keras: each Keras path subclasses it to (de)serialize
    `fn` through its own registry (`_serialize_fn`, `_deserialize_fn`).

    Args:
      fn: the scoring function; higher scores are kept.
      decay: moving-average decay of the gradients. Defaults to 0.9.
    """

    needs_gradients = True

    def __init__(self, fn, decay=0.9):
        if isinstance(fn, dict):
            fn = self._deserialize_fn(fn)
        if not callable(fn):
            raise ValueError(f"Custom criterion needs a callable, got {fn!r}.")
        if isinstance(decay, bool) or not isinstance(decay, (int, float)) \
                or not 0.0 <= decay < 1.0:
            raise ValueError(f"Custom(decay=...) must be a number in [0, 1), got {decay!r}.")
        self.fn = fn
        self.decay = float(decay)
        self._validate_fn()

    def _validate_fn(self):
        """Calls `fn` once on a small weight, so a wrong signature fails here, not in `fit`."""
        name = getattr(self.fn, "__name__", repr(self.fn))
        try:
            inspect.signature(self.fn).bind(None, None)
        except TypeError:
            raise ValueError(
                f"The criterion function {name!r} must take two arguments, (weights, "
                "gradients), and return one score per weight; its signature is "
                f"{inspect.signature(self.fn)}."
            ) from None
        except ValueError:
            pass  # builtins and C functions have no signature to check
        weight = np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)
        try:
            result = self.fn(weight, np.zeros_like(weight))
        except Exception as error:
            raise ValueError(
                f"The criterion function {name!r} failed on a test weight of shape (3, 4) "
                f"with zero gradients: {type(error).__name__}: {error}. It is called with "
                "two numpy arrays (weights, gradient moving average) and must return one "
                "score per weight."
            ) from error
        if np.shape(result) != weight.shape:
            raise ValueError(
                f"The criterion function {name!r} returned scores of shape "
                f"{np.shape(result)} for a weight of shape (3, 4); it must return one score "
                "per weight (an array of the weight's shape)."
            )

    def observe(self, weight, gradient):
        return gradient

    @staticmethod
    def _serialize_fn(fn):
        """The config of `fn`; a Keras path overrides this with its serializer."""
        return fn

    @staticmethod
    def _deserialize_fn(config):
        raise TypeError(
            f"Custom criterion got the serialized function {config!r}, which needs a Keras "
            "registry: use tfopt.pruning.Custom (tf-keras) or the Keras 3 path's Custom."
        )

    def scores(self, weight, statistic, key):
        statistic = np.zeros_like(weight) if statistic is None else statistic
        result = np.asarray(self.fn(weight, statistic))
        if result.shape != np.shape(weight):
            raise ValueError(
                f"Criterion {getattr(self.fn, '__name__', self.fn)!r} returned scores "
                f"of shape {result.shape} for weight {key!r} of shape "
                f"{np.shape(weight)}; it must return one score per weight."
            )
        return result

    def get_config(self):
        return {"fn": self._serialize_fn(self.fn), "decay": self.decay}

    def __eq__(self, other):
        return type(self) is type(other) and self.fn is other.fn and self.decay == other.decay

    def __hash__(self):
        return hash(self.fn)

    def __repr__(self):
        return f"Custom({getattr(self.fn, '__name__', self.fn)})"


_ALIASES = {"magnitude": Magnitude, "l1": Magnitude, "l2": L2, "random": Random, "taylor": Taylor}


def get(identifier, custom=Custom):
    """Resolves a criterion from a name, an instance or a callable.

    Args:
      identifier: "magnitude" ("l1"), "l2", "random", "taylor", a `Criterion`,
        or a function (weights, gradients) -> scores.
      custom: the `Custom` class that wraps a function (each Keras path passes
        its own, which serializes the function). Defaults to `Custom`.

    Example:
      >>> get("taylor")
      Taylor(decay=0.95)
    """
    if isinstance(identifier, Criterion):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _ALIASES:
        return _ALIASES[identifier.lower()]()
    if callable(identifier) and not isinstance(identifier, type):
        return custom(identifier)
    raise ValueError(
        f"Unknown pruning criterion {identifier!r}. Use one of {sorted(_ALIASES)}, "
        "a tfopt.pruning.Criterion instance, or a function (weights, gradients) -> scores."
    )
