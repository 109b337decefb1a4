"""from_tf_keras(): a plain tf-keras model rebuilt as a Keras 3 model, weights included.

Keras 3 cannot read a tf-keras model directly: its `.keras` files name a
class Keras 3 does not have ("Functional"), and its `.h5` configs carry
arguments Keras 3's layers refuse. So the model is rebuilt layer by layer:
each tf-keras layer becomes the Keras 3 layer of the same class, made from the
config arguments the Keras 3 class takes (the others are dropped and logged),
called on the same inputs in the same graph (nested models stay nested), and
given the same weights. TF ops applied to Keras tensors (``x + 1``,
``tf.nn.relu(x)``) become the matching ``keras.ops`` calls. The result is
checked against the tf-keras model on a probe batch before it is returned
(not for a quantization-aware model, which computes with quantized values).

A model still being pruned or quantization-aware is stripped first (logged):
tfopt PruneWrappers and tfmot pruning wrappers keep their zeros, tfmot
quantization wrappers give back their float layers (the learned ranges are
not carried over: quantize the Keras 3 model again with
`tfopt.keras3.quantization`).
"""

import inspect
import os

import keras
import numpy as np
from absl import logging

# tf-keras TF-op symbols (TFOpLambda layers) -> keras.ops functions taking the same
# positional arguments.
_OPS = {
    "__operators__.add": keras.ops.add, "math.add": keras.ops.add,
    "__operators__.sub": keras.ops.subtract, "math.subtract": keras.ops.subtract,
    "__operators__.mul": keras.ops.multiply, "math.multiply": keras.ops.multiply,
    "__operators__.truediv": keras.ops.divide, "math.truediv": keras.ops.divide,
    "math.divide": keras.ops.divide, "math.maximum": keras.ops.maximum,
    "math.minimum": keras.ops.minimum, "math.negative": keras.ops.negative,
    "math.abs": keras.ops.abs, "math.square": keras.ops.square, "math.sqrt": keras.ops.sqrt,
    "math.exp": keras.ops.exp, "math.sigmoid": keras.ops.sigmoid, "math.tanh": keras.ops.tanh,
    "nn.relu": keras.ops.relu, "nn.relu6": keras.ops.relu6, "nn.elu": keras.ops.elu,
    "nn.selu": keras.ops.selu, "nn.gelu": keras.ops.gelu, "nn.silu": keras.ops.silu,
    "nn.swish": keras.ops.silu, "nn.softmax": keras.ops.softmax,
    "identity": lambda x: x,
}
# Keras base-layer arguments every Keras 3 layer takes through **kwargs.
_BASE_ARGUMENTS = frozenset(("name", "trainable", "dtype", "activity_regularizer", "autocast"))
# Probe outputs may differ by float rounding only.
_TOLERANCE = 1e-4


def from_tf_keras(model_or_path):
    """A Keras 3 copy of a tf-keras (Keras 2) model, weights included.

    For users leaving ``TF_USE_LEGACY_KERAS=1``: the copy trains, saves
    (``.keras``) and exports like any Keras 3 model, and takes
    `tfopt.keras3`'s pruning, quantization and distillation.

    Args:
      model_or_path: a built tf-keras Sequential or Functional model, or the
        path of one saved by tf-keras (``.keras``, ``.h5`` or a SavedModel
        directory). Models being pruned (tfopt or tfmot wrappers) or
        quantization-aware (tfmot wrappers) are stripped first, which is
        logged; quantization ranges are not carried over.

    Returns:
      A new Keras 3 model (Sequential for a Sequential) whose outputs equal the
      tf-keras model's.

    Raises:
      ValueError: for a Keras 3 model, a subclassed model, a layer Keras 3
        has no class for, or a TF op with no keras.ops counterpart (named,
        with what to do).

    Example:
      >>> import tfopt.keras3
      >>> model3 = tfopt.keras3.from_tf_keras("legacy_model.keras")
    """
    import tf_keras
    model = _load(model_or_path, tf_keras)
    quantization_aware = _quantization_aware(model, tf_keras)
    model = _stripped(model, tf_keras)
    converted = _convert_model(model, tf_keras)
    if not quantization_aware:  # a QAT model computes with fake-quantized values
        _check(model, converted)
    return converted


def _quantization_aware(model, tf_keras):
    return any(type(layer).__name__ in ("QuantizeWrapper", "QuantizeWrapperV2", "QuantizeLayer")
               for layer in _all_layers(model, tf_keras))


def _load(model_or_path, tf_keras):
    if isinstance(model_or_path, (str, os.PathLike)):
        path = os.fspath(model_or_path)
        if not os.path.exists(path):
            raise ValueError(f"from_tf_keras: {path!r} does not exist. Pass a tf-keras model or "
                             "the path of one saved by tf-keras (.keras, .h5 or a SavedModel).")
        from tfopt import pruning  # noqa: F401  (registers tfopt's tf-keras layers for loading)
        from tfopt import quantization
        return quantization.load_model(path)
    if isinstance(model_or_path, keras.Model):
        raise ValueError(f"from_tf_keras converts tf-keras (Keras 2) models; "
                         f"{model_or_path.name!r} is a Keras 3 model already.")
    if not isinstance(model_or_path, tf_keras.Model):
        raise ValueError(f"from_tf_keras takes a tf-keras model or a path, got "
                         f"{type(model_or_path).__module__}.{type(model_or_path).__name__}.")
    return model_or_path


def _stripped(model, tf_keras):
    if not (isinstance(model, tf_keras.Sequential) or getattr(model, "_is_graph_network", False)):
        raise ValueError(f"from_tf_keras supports Sequential and Functional models; "
                         f"{model.name!r} is a subclassed model ({type(model).__name__}), whose "
                         "layers and connections cannot be read. Rebuild it with Keras 3 and "
                         "copy the weights with set_weights.")
    names = {type(layer).__name__ for layer in _all_layers(model, tf_keras)}
    if "PruneWrapper" in names:
        from tfopt import pruning
        logging.info("tfopt.keras3.from_tf_keras: %r holds tfopt pruning wrappers; converting "
                     "tfopt.pruning.strip(model) (zeros kept).", model.name)
        model = pruning.strip(model)
    if "PruneLowMagnitude" in names:
        import tensorflow_model_optimization as tfmot
        logging.info("tfopt.keras3.from_tf_keras: %r holds tfmot pruning wrappers; converting "
                     "tfmot.sparsity.keras.strip_pruning(model) (zeros kept).", model.name)
        model = tfmot.sparsity.keras.strip_pruning(model)
    if _quantization_aware(model, tf_keras):
        logging.warning("tfopt.keras3.from_tf_keras: %r is quantization-aware; its float layers "
                        "are converted and its quantization ranges dropped. Quantize the Keras 3 "
                        "model again with tfopt.keras3.quantization.quantize.", model.name)
    return model


def _all_layers(model, tf_keras):
    for layer in model.layers:
        yield layer
        if isinstance(layer, tf_keras.Model):
            yield from _all_layers(layer, tf_keras)


def _convert_model(model, tf_keras):
    """Keras 3 twin of a tf-keras Sequential or Functional model, weights set."""
    if isinstance(model, tf_keras.Sequential) and not any(
            type(layer).__name__ in ("QuantizeLayer", "TFOpLambda") for layer in model.layers):
        inputs = keras.Input(batch_shape=tuple(model.inputs[0].shape),
                             dtype=model.inputs[0].dtype.name)
        layers = [_convert_layer(layer, tf_keras) for layer in model.layers]
        converted = keras.Sequential([inputs] + [layer for layer, _ in layers], name=model.name)
        for (layer, weights_from), _ in zip(layers, model.layers):
            _set_weights(layer, weights_from)
        return converted
    return _convert_functional(model, tf_keras)


def _convert_functional(model, tf_keras):
    tensors, made = {}, {}
    inputs = []
    for tensor in model.inputs:
        x = keras.Input(batch_shape=tuple(tensor.shape), dtype=tensor.dtype.name,
                        name=tensor._keras_history.layer.name)
        tensors[id(tensor)] = x
        inputs.append(x)
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            layer = node.layer
            if node.is_input:
                continue
            args = _mapped(node.call_args, tensors)
            kwargs = _mapped(node.call_kwargs, tensors)
            outputs = _apply(layer, args, kwargs, made, tf_keras)
            for old, new in zip(_flat(node.outputs), _flat(outputs)):
                tensors[id(old)] = new
    outputs = _mapped(model._nested_outputs, tensors)
    converted = keras.Model(_mapped(model._nested_inputs, tensors), outputs, name=model.name)
    for layer, weights_from in made.values():
        _set_weights(layer, weights_from)
    return converted


def _flat(structure):
    import tensorflow as tf
    return tf.nest.flatten(structure)


def _mapped(structure, tensors):
    import tensorflow as tf
    return tf.nest.map_structure(
        lambda value: tensors.get(id(value), value) if hasattr(value, "_keras_history")
        else value, structure)


def _apply(layer, args, kwargs, made, tf_keras):
    """Calls the Keras 3 twin of `layer` (made once, shared if reused) on converted inputs."""
    kind = type(layer).__name__
    kwargs = {k: v for k, v in kwargs.items() if k not in ("name", "training")}
    if kind in ("TFOpLambda", "SlicingOpLambda"):
        function = _OPS.get(layer.symbol)
        if function is None:
            raise ValueError(
                f"from_tf_keras: layer {layer.name!r} applies tf.{layer.symbol}, which has no "
                f"keras.ops counterpart here (supported: {', '.join(sorted(_OPS))}). Replace it "
                "in the tf-keras model with a Keras layer (e.g. keras.layers.Lambda is not "
                "portable either: use a built-in layer), then convert.")
        # A reloaded TFOpLambda names its tensor arguments (tf.math.add(x=..., y=...)).
        args = list(args) + [kwargs.pop(n) for n in ("x", "y", "features") if n in kwargs]
        return function(*args, **kwargs)
    if kind == "QuantizeLayer":
        return args[0]  # quantizes its input in QAT; the identity in float
    if id(layer) not in made:
        made[id(layer)] = _convert_layer(layer, tf_keras)
    return made[id(layer)][0](*args, **kwargs)


def _convert_layer(layer, tf_keras):
    """(Keras 3 layer, the tf-keras layer to copy weights from)."""
    if isinstance(layer, tf_keras.Model):
        return _convert_model(layer, tf_keras), None  # weights set inside
    if type(layer).__name__ in ("QuantizeWrapper", "QuantizeWrapperV2"):
        return _convert_layer(layer.layer, tf_keras)[0], layer
    kind = type(layer).__name__
    cls = getattr(keras.layers, kind, None)
    if cls is None or not issubclass(cls, keras.layers.Layer):
        raise ValueError(
            f"from_tf_keras: layer {layer.name!r} is a {kind}, which Keras 3 does not have. "
            "Replace it in the tf-keras model with built-in layers, or rebuild it in Keras 3 "
            "and copy its weights with set_weights.")
    config = layer.get_config()
    if kind in ("Bidirectional", "TimeDistributed"):
        config["layer"] = _convert_layer(layer.layer if kind == "TimeDistributed"
                                         else layer.forward_layer, tf_keras)[0]
        if kind == "Bidirectional":
            config["backward_layer"] = _convert_layer(layer.backward_layer, tf_keras)[0]
    return cls(**_accepted(cls, config, layer.name)), layer


def _accepted(cls, config, name):
    """The config arguments `cls` takes; the others are logged and dropped."""
    parameters = set()
    for klass in cls.__mro__:
        if "__init__" in vars(klass):
            parameters |= set(inspect.signature(klass.__init__).parameters)
    allowed = parameters | _BASE_ARGUMENTS
    dropped = {k: v for k, v in config.items() if k not in allowed}
    if dropped:
        logging.info("tfopt.keras3.from_tf_keras: %s: Keras 3's %s takes no %s; dropped.",
                     name, cls.__name__, dropped)
    kept = {k: _plain(v) for k, v in config.items() if k in allowed}
    if cls.__name__ == "BatchNormalization" and isinstance(kept.get("axis"), list) \
            and len(kept["axis"]) == 1:
        kept["axis"] = kept["axis"][0]  # a built tf-keras layer lists its one axis
    activation = kept.get("activation")
    if isinstance(activation, dict):  # tfmot's QAT wraps the activation in place
        kind = activation.get("class_name")
        if kind == "QuantizeAwareActivation":
            kept["activation"] = activation["config"]["activation"]
        elif kind == "NoOpActivation":
            kept["activation"] = "linear"
    if isinstance(kept.get("dtype"), dict):  # a tf-keras policy config
        kept["dtype"] = kept["dtype"].get("config", {}).get("name", "float32")
    return kept


def _plain(value):
    """tf-keras' tracked lists and dicts (ListWrapper) as plain ones."""
    if isinstance(value, dict) or type(value).__name__ == "_DictWrapper":
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) or type(value).__name__ == "ListWrapper":
        return type(value)(_plain(v) for v in value) if isinstance(value, tuple) \
            else [_plain(v) for v in value]
    return value


def _set_weights(layer, weights_from):
    if weights_from is None:
        return
    if type(weights_from).__name__ in ("QuantizeWrapper", "QuantizeWrapperV2"):
        # tfmot moves the kernel out of the inner layer; the wrapper lists the inner
        # layer's own variables first, in the layer's order, then its quantizers'.
        prefix = f"{weights_from.layer.name}/"
        weights = [v.numpy() for v in weights_from.weights if v.name.startswith(prefix)]
        weights_from = weights_from.layer
    else:
        weights = weights_from.get_weights()
    if len(weights) != len(layer.weights):
        raise ValueError(
            f"from_tf_keras: layer {weights_from.name!r} ({type(weights_from).__name__}) has "
            f"{len(weights)} weights in tf-keras and {len(layer.weights)} in Keras 3; tfopt "
            "cannot map them. Rebuild it in Keras 3 and set its weights by hand.")
    layer.set_weights(weights)


def _probe(model):
    """A batch of 2 examples per input, deterministic, of the inputs' shapes and dtypes."""
    rng = np.random.default_rng(0)
    batch = []
    for tensor in model.inputs:
        shape = [2] + [4 if d is None else d for d in tensor.shape[1:]]
        if tensor.dtype.is_integer:
            batch.append(np.zeros(shape, tensor.dtype.as_numpy_dtype))
        else:
            batch.append(rng.random(shape).astype(tensor.dtype.as_numpy_dtype))
    return batch if len(batch) > 1 else batch[0]


def _check(model, converted):
    probe = _probe(model)
    expected = _flat(model(probe, training=False))
    got = _flat(converted(probe, training=False))
    for a, b in zip(expected, got):
        a, b = np.asarray(a), keras.ops.convert_to_numpy(b)
        scale = max(1.0, float(np.max(np.abs(a))) if a.size else 1.0)
        difference = float(np.max(np.abs(a - b))) if a.size else 0.0
        if a.shape != b.shape or difference > _TOLERANCE * scale:
            raise ValueError(
                f"from_tf_keras: the Keras 3 copy of {model.name!r} computes differently (output "
                f"shapes {a.shape} and {b.shape}, largest difference {difference:.3g}). A layer's "
                "arguments or weights did not carry over; please report it with the model.")
