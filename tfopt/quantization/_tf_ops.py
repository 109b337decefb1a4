"""Recorded ``tf.*`` ops (TFOpLambda layers), rewritten as Keras layers tfmot can wrap.

A Functional model records ``x + 3.0``, ``x * (1 / 6)`` or ``a + b`` on Keras
tensors as TFOpLambda layers (MobileNetV3's hard-swish, ConvNeXt's residual
adds). tfmot cannot wrap them: its QuantizeWrapper hands the op a list where
it takes a tensor. Each such op has a Keras layer that computes the same and
that tfopt's registry quantizes: ``x op constant`` becomes a Rescaling (whose
output `quantize` fake-quantizes), ``a op b`` an Add, Subtract, Multiply,
Maximum or Minimum layer. The new layer keeps the op's name, so anything
keyed by layer name (the layers `quantize` was asked to quantize) still
applies.
"""

import numbers

import tf_keras as keras

# function -> (merge layer for two tensors, (scale, offset) for `x op c`, or None).
_BINARY = {
    "__operators__.add": ("Add", lambda c: (1.0, c)),
    "math.add": ("Add", lambda c: (1.0, c)),
    "math.subtract": ("Subtract", lambda c: (1.0, -c)),
    "math.multiply": ("Multiply", lambda c: (c, 0.0)),
    "math.truediv": (None, lambda c: (1.0 / c, 0.0)),
    "math.divide": (None, lambda c: (1.0 / c, 0.0)),
    "math.maximum": ("Maximum", None),
    "math.minimum": ("Minimum", None),
}


def _is_ref(value):
    # A Keras tensor in a node config: [layer name, node index, tensor index].
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], str)
            and all(isinstance(i, int) for i in value[1:]))


def _call(entry):
    """(x, y) of a TFOpLambda layer config called once as ``f(x, y)``, else None."""
    nodes = entry["inbound_nodes"]
    if len(nodes) != 1 or not isinstance(nodes[0], list) or len(nodes[0]) != 4:
        return None
    name, node, tensor, kwargs = nodes[0]
    if not isinstance(name, str) or name == "_CONSTANT_VALUE" or not isinstance(kwargs, dict):
        return None
    if set(kwargs) - {"y", "name"}:
        return None
    return [name, node, tensor], kwargs.get("y")


def _replacement(entry):
    """The Keras layer config replacing one TFOpLambda config entry, or None."""
    if entry.get("class_name") != "TFOpLambda":
        return None
    rule = _BINARY.get(entry["config"].get("function"))
    call = _call(entry)
    if rule is None or call is None:
        return None
    (merge, affine), (x, y) = rule, call
    name = entry["config"]["name"]
    if _is_ref(y) and merge is not None:
        return {"class_name": merge, "config": {"name": name},
                "inbound_nodes": [[x + [{}], y + [{}]]]}
    if isinstance(y, numbers.Real) and not isinstance(y, bool) and affine is not None:
        if y == 0 and rule[0] is None:
            return None  # division by zero: leave it to the check's error
        scale, offset = affine(float(y))
        return {"class_name": "Rescaling", "config": {"name": name, "scale": scale,
                                                      "offset": offset},
                "inbound_nodes": [[x + [{}]]]}
    return None


def rewritable(layer):
    """Whether `replace_tf_ops` turns this layer into a Keras layer."""
    if type(layer).__name__ != "TFOpLambda" or len(layer._inbound_nodes) != 1:
        return False
    data = layer._inbound_nodes[0].serialize(lambda name, index: f"{name}_ib-{index}", {})
    entry = {"class_name": "TFOpLambda", "config": layer.get_config(), "inbound_nodes": [data]}
    return _replacement(entry) is not None


def replace_tf_ops(model):
    """A copy of a Functional `model` with every rewritable TFOpLambda replaced.

    Args:
      model: a Functional model (others are returned unchanged).

    Returns:
      `model` itself if nothing was replaced, else a new model with the same
      layer names and weights.
    """
    if isinstance(model, keras.Sequential) or not any(
            type(layer).__name__ == "TFOpLambda" for layer in model.layers):
        return model
    config = model.get_config()
    replaced = False
    for i, entry in enumerate(config["layers"]):
        new = _replacement(entry)
        if new is not None:
            config["layers"][i] = {**new, "name": entry["name"]}
            replaced = True
    if not replaced:
        return model
    custom = {type(layer).__name__: type(layer) for layer in model.layers}
    rebuilt = keras.Model.from_config(config, custom_objects=custom)
    for layer in rebuilt.layers:
        if layer.weights:
            layer.set_weights(model.get_layer(layer.name).get_weights())
    return rebuilt
