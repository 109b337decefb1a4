"""A model's layer graph, and what each layer does to a channel.

`LayerGraph` holds producer/consumer links between the nodes of one model
level (layers, and raw ops called on Keras tensors); each Keras path fills it
from its model and answers a few questions about a node (`class_name`,
`shapes`, the raw-op hooks). `kind` says how a node treats the channels it
reads (passes them on, holds per-channel weights, merges inputs element by
element, concatenates, mixes them, or cannot be cut through) and `at_zero`
what it outputs for a channel that is zero. `tfopt.core.channel_plan` builds
channel groups on top of these.

Layers are recognised by the name of their built-in Keras class, which
tf-keras and Keras 3 share, and read through the attributes both give them
(``data_format``, ``groups``, ``kernel_size``, ``activation``, ``axis``).
"""

import numpy as np

from tfopt.core import layer_specs

# Layers that keep the channel axis last and treat every channel alike.
PASS_THROUGH = (
    "Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D", "GaussianDropout",
    "GaussianNoise", "ActivityRegularization", "Activation", "ReLU", "LeakyReLU", "ELU",
    "Rescaling", "MaxPooling1D", "MaxPooling2D", "MaxPooling3D", "AveragePooling1D",
    "AveragePooling2D", "AveragePooling3D", "GlobalAveragePooling1D", "GlobalAveragePooling2D",
    "GlobalAveragePooling3D", "GlobalMaxPooling1D", "GlobalMaxPooling2D", "GlobalMaxPooling3D",
    "ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D", "Cropping1D", "Cropping2D", "Cropping3D",
    "UpSampling1D", "UpSampling2D", "UpSampling3D")
# Element-wise layers allowed between a Flatten and its Dense (tf-keras' SpatialDropout
# layers are Dropout subclasses).
ELEMENTWISE = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
               "GaussianDropout", "GaussianNoise", "ActivityRegularization", "Activation",
               "ReLU", "LeakyReLU", "ELU")
# Layers computing a function of each value, which may not map 0 to 0.
FUNCTIONS = ("Activation", "ReLU", "LeakyReLU", "ELU", "Rescaling")
# Zero padding turns a constant channel into one that is not constant at the borders.
_PADDING = ("ZeroPadding1D", "ZeroPadding2D", "ZeroPadding3D")
# Transposed convolutions mix channels too (in tf-keras they subclass Conv1D/2D/3D).
_CONSUMERS = ("Dense",) + layer_specs.CONV + layer_specs.TRANSPOSED + layer_specs.SEPARABLE \
    + layer_specs.RNN
# Merges whose output channel is 0 when all inputs are 0 ("sum") or when any is ("product").
_SUMS = ("Add", "Subtract", "Average", "Maximum", "Minimum")
_PRODUCTS = ("Multiply",)

ZERO, CONSTANT = "zero", "constant"  # what a layer outputs for a zero channel
# What a raw op (a TF or keras.ops function on Keras tensors) does to each element.
SUM, PRODUCT, ELEMENTWISE_OP = "sum", "product", "elementwise"


class LayerGraph:
    """Producer/consumer links between the nodes of one model level, by name.

    A Keras path subclasses it, calls `add` and `link` for its nodes, and sets
    `order` (producers before consumers), `outputs` (nodes whose output is a
    model output), `calls` and the hooks below.

    Attributes:
      layers: name -> the layer (or op) object, unwrapped from pruning wrappers.
      producers: name -> the names of its input nodes, one per input tensor.
      consumers: name -> the names of the nodes reading its output.
      calls: name -> how many times the layer is called in this model.
    """

    def __init__(self):
        self.layers, self.producers, self.consumers, self.calls = {}, {}, {}, {}
        self.order, self.outputs = [], set()
        self._at_zero = {}

    def add(self, name, layer):
        if name not in self.layers:
            self.layers[name] = layer
            self.producers[name], self.consumers[name] = [], []
            self.calls[name] = 0
        return name

    def link(self, producer, consumer):
        self.producers[consumer].append(producer)
        self.consumers[producer].append(consumer)

    def layer(self, name):
        return self.layers[name]

    def class_name(self, name):
        """The built-in Keras class name of a node's layer ("Dense"), or None."""
        return self.class_of(self.layers[name])

    # Hooks of each Keras path -------------------------------------------------

    def class_of(self, layer):
        """The built-in Keras class name of a layer object, or None."""
        raise NotImplementedError

    def shapes(self, name):
        """(input shapes, output shape) of a layer's one call, or None without a graph."""
        raise NotImplementedError

    def channel_capable(self, name):
        """Whether the node's layer has output units that channel pruning can remove."""
        raise NotImplementedError

    def per_channel(self, name):
        """Whether the node's layer holds per-channel weights that follow a unit mask."""
        raise NotImplementedError

    def op_family(self, name):
        """SUM, PRODUCT or ELEMENTWISE_OP for a raw element-wise op, else None."""
        return None

    def scalar_constants(self, name):
        """Whether a raw op's arguments other than its Keras tensors are all scalars."""
        return False

    def op_function(self, name):
        """For a raw op: its function of the one Keras tensor it reads; else None."""
        return None

    def tensor(self, array):
        """The framework's tensor holding a numpy array, to evaluate functions on."""
        return array

    def at_zero(self, name):
        """ZERO or CONSTANT: what the layer outputs where its input (or, for a layer
        with units, its pre-activation) is zero; None if that depends on other
        channels. Cached: it runs framework ops."""
        if name not in self._at_zero:
            self._at_zero[name] = _at_zero(self, name)
        return self._at_zero[name]


def value_at_zero(function, tensor=np.asarray):
    """ZERO or CONSTANT for an element-wise function, None if it mixes channels or fails.

    Args:
      function: the function, called on one 2-D tensor.
      tensor: makes the framework's tensor of a numpy array (activations may
        need one). Defaults to `np.asarray`.
    """
    try:
        # Channel 0 is 0 in both rows; only its neighbours differ. Two dimensions:
        # softmax and other per-row functions refuse 1-D input.
        values = np.asarray(function(tensor(np.array([[0.0, 0.0, 0.0], [0.0, 3.0, -2.0]],
                                                     dtype=np.float32))))
    except Exception:  # noqa: BLE001  (any failure means "cannot rely on it")
        return None
    if values.shape != (2, 3) or values[0, 0] != values[1, 0] or not np.isfinite(values[0, 0]):
        return None
    return ZERO if values[0, 0] == 0.0 else CONSTANT


def _at_zero(graph, name):
    layer = graph.layer(name)
    activation = getattr(layer, "activation", None)
    if activation is not None:
        return value_at_zero(activation, graph.tensor)
    if graph.class_name(name) in FUNCTIONS:
        return value_at_zero(layer, graph.tensor)
    function = graph.op_function(name)
    if function is not None:
        return value_at_zero(function, graph.tensor)
    return ZERO


def channels_last(layer):
    return getattr(layer, "data_format", "channels_last") == "channels_last"


def grouped(layer):
    return getattr(layer, "groups", 1) != 1


def pads(graph, name):
    """Whether the layer adds zeros around its input (a constant channel stops being one)."""
    return graph.class_name(name) in _PADDING


def can_absorb_constant(graph, name):
    """Whether a consumer can take a constant input channel into its bias: Dense and
    convolutions whose kernel covers one position (no padding to break the constant)."""
    class_name = graph.class_name(name)
    if class_name == "Dense":
        return True
    return class_name in layer_specs.CONV and all(
        size == 1 for size in graph.layer(name).kernel_size)


def _keeps_channels_last(graph, name):
    """A Reshape whose input and output end in the same channel axis, or a raw op
    applied element by element to one Keras tensor and scalars."""
    shapes = graph.shapes(name)
    if shapes is None:
        return False
    (inputs, *others), output = shapes
    if graph.class_name(name) == "Reshape":
        return not others and inputs[-1] == output[-1] and \
            np.prod(inputs[1:-1]) == np.prod(output[1:-1])
    return not others and graph.op_family(name) is not None and graph.scalar_constants(name)


def merge_kind(graph, name):
    """"sum" or "product" for element-wise merges of same-width inputs, else None."""
    class_name, family, shapes = graph.class_name(name), graph.op_family(name), graph.shapes(name)
    if class_name in _SUMS or family == SUM:
        kind = "sum"
    elif class_name in _PRODUCTS or family == PRODUCT:
        kind = "product"
    else:
        return None
    if shapes is None or len(shapes[0]) < 2:
        return None  # one Keras tensor: an element-wise op with a constant
    widths = {shape[-1] for shape in shapes[0]} | {shapes[1][-1]}
    return kind if len(widths) == 1 else None  # no broadcasting across channels


def _concatenates_channels(graph, name):
    shapes = graph.shapes(name)
    if graph.class_name(name) != "Concatenate" or shapes is None:
        return False
    return graph.layer(name).axis in (-1, len(shapes[1]) - 1)


def consumes_channels(graph, name):
    class_name = graph.class_name(name)
    if class_name == "Bidirectional":
        layer = graph.layer(name)
        return all(graph.class_of(inner) in layer_specs.RNN
                   for inner in (layer.forward_layer, layer.backward_layer))
    return class_name in _CONSUMERS


def kind(graph, name):
    """How a layer treats the channels it reads (see `channel_plan._Walk`), or None."""
    layer, class_name = graph.layer(name), graph.class_name(name)
    if class_name == "InputLayer":
        return "input"
    if graph.calls[name] != 1:
        return "shared"
    if graph.per_channel(name):
        return "per_channel" if channels_last(layer) else "channels_first"
    if class_name in PASS_THROUGH or _keeps_channels_last(graph, name):
        if not channels_last(layer):
            return "channels_first"
        return "reshape" if class_name == "Reshape" else "pass_through"
    if merge_kind(graph, name) is not None:
        return "merge"
    if _concatenates_channels(graph, name):
        return "concatenate"
    if class_name == "Flatten":
        return "flatten" if channels_last(layer) else "channels_first"
    if consumes_channels(graph, name) and len(graph.producers[name]) == 1:
        if not channels_last(layer):
            return "channels_first"
        return "grouped" if grouped(layer) else "consumer"
    return None
