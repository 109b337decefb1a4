"""The layer graph of a Keras 3 model, for the core channel plan.

`Graph` reads a Functional or built Sequential Keras 3 model's nodes into a
`tfopt.core.channels.LayerGraph`. Keras 3 records raw ops called on Keras
tensors (``keras.ops.add(x, y)``, ``x * 0.5``) as `Operation` nodes, not
layers; the element-wise ones pass channels on like tf-keras' TFOpLambda
layers. What layers do to channels, and the plan itself, are `tfopt.core`'s.

Example:
  >>> groups, reasons = channel_plan(model)
"""

import functools

import keras

from tfopt.core import channel_plan as _plan
from tfopt.core import channels
from tfopt.core import layer_specs

# keras.ops functions by the class of the Operation they record.
_SUMS = frozenset(("Add", "Subtract", "Maximum", "Minimum"))
_PRODUCTS = frozenset(("Multiply",))
_ELEMENTWISE = frozenset((
    "Divide", "TrueDivide", "Negative", "Absolute", "Abs", "Square", "Sqrt", "Exp", "Sigmoid",
    "Tanh", "Relu", "Relu6", "Elu", "Selu", "Gelu", "Silu", "LeakyRelu", "HardSigmoid",
    "Softplus", "Cast"))


def class_name(layer):
    """The name of the first public Keras 3 layer class `layer` is an instance of, or None.

    A user's subclass of Dense is a "Dense"; raw ops (`keras.ops.add`) are no
    layer and give None.
    """
    return _builtin_name(type(layer))


@functools.lru_cache(maxsize=None)
def _builtin_name(cls):
    return next((base.__name__ for base in cls.__mro__
                 if getattr(keras.layers, base.__name__, None) is base), None)


def spec_for(layer):
    """The core `LayerSpec` of a Keras 3 layer, or None when tfopt does not prune it."""
    name = class_name(layer)
    wrapped = None
    if name == "Bidirectional":
        wrapped = (class_name(layer.forward_layer), class_name(layer.backward_layer))
    spec = layer_specs.spec_for(name, getattr(layer, "use_bias", False), wrapped)
    return layer_specs.renamed(spec, layer_specs.KERAS3_PATHS.get(name))


def per_channel_spec(layer):
    """The core per-channel spec of a Keras 3 layer (BatchNormalization, depthwise), or None."""
    name = class_name(layer)
    if name == "BatchNormalization":
        spec = getattr(layer, "input_spec", None)
        return layer_specs.per_channel_spec(
            name, axis=layer.axis, ndim=None if spec is None else spec.ndim,
            scale=getattr(layer, "gamma", None) is not None,
            center=getattr(layer, "beta", None) is not None)
    spec = layer_specs.per_channel_spec(
        name, use_bias=getattr(layer, "use_bias", False),
        depth_multiplier=getattr(layer, "depth_multiplier", 1))
    return layer_specs.renamed(spec, layer_specs.KERAS3_PATHS.get(name))


def graph_model(model):
    """The Functional graph of a Keras 3 Functional or Sequential model, or None."""
    if isinstance(model, keras.Sequential):
        return getattr(model, "_functional", None)
    return model if hasattr(model, "_nodes_by_depth") else None


def _is_raw_op(operation):
    return not isinstance(operation, keras.layers.Layer)


class Graph(channels.LayerGraph):
    """Producer/consumer links between the nodes of one Keras 3 model level.

    Args:
      model: a Keras 3 Functional model, or a Sequential built with
        `keras.Input`.
    """

    def __init__(self, model):
        super().__init__()
        functional = graph_model(model)
        if functional is None:
            raise ValueError(
                f"tfopt needs the layer graph of {model.name!r} ({type(model).__name__}); "
                "build it from keras.Input (a Sequential model: start it with "
                "keras.Input(shape)).")
        self.nodes = {}  # name -> its last node (the only one of a layer called once)
        for depth in sorted(functional._nodes_by_depth, reverse=True):
            for node in functional._nodes_by_depth[depth]:
                operation = node.operation
                name = self.add(operation.name, operation)
                if name not in self.order:
                    self.order.append(name)
                if node.is_input:
                    continue
                self.calls[name] += 1
                self.nodes[name] = node
                for tensor in node.input_tensors:
                    producer = tensor._keras_history.operation
                    self.link(self.add(producer.name, producer), name)
        self.outputs = {t._keras_history.operation.name for t in functional.outputs}

    def class_of(self, layer):
        return class_name(layer)

    def shapes(self, name):
        node = self.nodes.get(name)
        if node is None:
            return None
        (output,) = node.outputs
        return [tuple(t.shape) for t in node.input_tensors], tuple(output.shape)

    def channel_capable(self, name):
        spec = spec_for(self.layers[name])
        return spec is not None and spec.channel_capable

    def per_channel(self, name):
        return per_channel_spec(self.layers[name]) is not None

    def op_family(self, name):
        operation = self.layers[name]
        if not _is_raw_op(operation):
            return None
        op = type(operation).__name__
        if op in _SUMS:
            return channels.SUM
        if op in _PRODUCTS:
            return channels.PRODUCT
        return channels.ELEMENTWISE_OP if op in _ELEMENTWISE else None

    def scalar_constants(self, name):
        node = self.nodes.get(name)
        if node is None:
            return False
        arguments = node.arguments
        constants = [v for v in keras.tree.flatten((arguments.args, arguments.kwargs))
                     if not isinstance(v, keras.KerasTensor)]
        return all(v is None or isinstance(v, (bool, int, float, str)) for v in constants)

    def op_function(self, name):
        operation = self.layers[name]
        if not _is_raw_op(operation):
            return None
        arguments = self.nodes[name].arguments

        def call(x):
            args, kwargs = arguments.convert(
                lambda v: x if isinstance(v, keras.KerasTensor) else v)
            return operation(*args, **kwargs)

        return call

    def tensor(self, array):
        return keras.ops.convert_to_tensor(array)


def channel_plan(model, candidates=None):
    """Channel groups of the channel-prunable layers of one Keras 3 model level.

    Args:
      model: a Keras 3 Functional model or a Sequential built with
        `keras.Input` (nested models are not entered).
      candidates: names of layers that may lose units; defaults to every layer.

    Returns:
      (groups, reasons): {leader name: ChannelGroup} for groups whose units can
      be removed, and {name: why not} for candidates that must stay whole.
    """
    return _plan.channel_plan(Graph(model), candidates)
