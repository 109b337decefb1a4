"""The layer graph of a tf-keras model, for the core channel plan.

`Graph` reads a Sequential or Functional model's layer links from its nodes
into a `tfopt.core.channels.LayerGraph`, and answers what is tf-keras' own:
the class of a layer (through `PruneWrapper`), the tfopt/tfmot registry, and
TF ops called on Keras tensors (TFOpLambda layers), whose function it
evaluates at zero. What layers do to channels is `tfopt.core.channels`'.
"""

import tensorflow as tf

from tfopt.core import channels
from tfopt.pruning import _registry

ZERO, CONSTANT = channels.ZERO, channels.CONSTANT
kind = channels.kind

# TF ops on Keras tensors (TFOpLambda layers) that act on each element alone.
_TF_SUMS = frozenset(("__operators__.add", "__operators__.sub", "math.add", "math.subtract",
                      "math.maximum", "math.minimum"))
_TF_PRODUCTS = frozenset(("__operators__.mul", "math.multiply"))
_TF_ELEMENTWISE = frozenset((
    "__operators__.truediv", "math.truediv", "math.divide", "math.scalar_mul", "math.negative",
    "math.abs", "math.square", "math.sqrt", "math.exp", "math.sigmoid", "math.tanh",
    "nn.relu", "nn.relu6", "nn.elu", "nn.selu", "nn.gelu", "nn.silu", "nn.swish",
    "nn.leaky_relu", "identity", "cast"))


def unwrap(layer):
    """The layer inside a tfopt PruneWrapper (or the layer itself)."""
    from tfopt.pruning._wrapper import PruneWrapper  # local: the wrapper imports _registry
    return layer.layer if isinstance(layer, PruneWrapper) else layer


def tf_op_symbol(layer):
    """The TF function a TFOpLambda layer applies ("math.multiply"), else None.

    tf_keras makes these layers when TF ops meet Keras tensors (`x * 0.5`); the
    class is private, so it is recognised by name.
    """
    return getattr(layer, "symbol", None) if type(layer).__name__ == "TFOpLambda" else None


def _is_keras_tensor(value):
    return hasattr(value, "_keras_history")  # keras.backend.is_keras_tensor raises on others


def value_at_zero(function):
    """`channels.value_at_zero` of a TensorFlow function."""
    return channels.value_at_zero(function, tf.constant)


class Graph(channels.LayerGraph):
    """Producer/consumer links between the layers of one Sequential or Functional model.

    Read from the model's nodes rather than its config: the config's
    `inbound_nodes` differ between layer kinds (TFOpLambda nodes hold keyword
    arguments and constants), while every node lists its Keras input tensors.
    """

    def __init__(self, model):
        super().__init__()
        for layer in model.layers:
            self.add(layer.name, unwrap(layer))
        self.nodes = {}  # name -> its last node (the only one of a layer called once)
        if not getattr(model, "_is_graph_network", False):
            # A Sequential built without keras.Input: a chain in layer order.
            names = list(self.layers)
            for producer, consumer in zip(names, names[1:]):
                self.link(producer, consumer)
            self.calls.update((name, 1) for name in names)
            self.order, self.outputs = names, set(names[-1:])
            return
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                # Sequential models do not list their InputLayer among `layers`.
                name = self.add(node.layer.name, unwrap(node.layer))
                if name not in self.order:
                    self.order.append(name)
                if node.is_input:
                    continue
                self.calls[name] += 1
                self.nodes[name] = node
                for tensor in node.keras_inputs:
                    producer = tensor._keras_history.layer
                    self.link(self.add(producer.name, unwrap(producer)), name)
        self.outputs = {tensor._keras_history.layer.name for tensor in model.outputs}

    def class_of(self, layer):
        return _registry.class_name(layer)

    def shapes(self, name):
        node = self.nodes.get(name)
        if node is None:
            return None
        return [tuple(t.shape) for t in node.keras_inputs], tuple(node.output_shapes)

    def channel_capable(self, name):
        return _registry.channel_capable(self.layers[name])

    def per_channel(self, name):
        return _registry.per_channel_spec(self.layers[name]) is not None

    def op_family(self, name):
        symbol = tf_op_symbol(self.layers[name])
        if symbol in _TF_SUMS:
            return channels.SUM
        if symbol in _TF_PRODUCTS:
            return channels.PRODUCT
        return channels.ELEMENTWISE_OP if symbol in _TF_ELEMENTWISE else None

    def scalar_constants(self, name):
        node = self.nodes.get(name)
        if node is None:
            return False
        constants = [v for v in tf.nest.flatten((node.call_args, node.call_kwargs))
                     if not _is_keras_tensor(v)]
        return all(v is None or isinstance(v, (bool, int, float, str)) for v in constants)

    def op_function(self, name):
        layer = self.layers[name]
        if tf_op_symbol(layer) is None:
            return None
        node = self.nodes[name]

        def call(x):
            args, kwargs = tf.nest.map_structure(
                lambda v: x if _is_keras_tensor(v) else v, (node.call_args, node.call_kwargs))
            return layer.function(*args, **kwargs)

        return call

    def tensor(self, array):
        return tf.constant(array)
