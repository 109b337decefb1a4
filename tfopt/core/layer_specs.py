"""Which weights tfopt prunes in each Keras layer type, keyed by class name.

Each supported layer type maps to a `LayerSpec`: the weights pruned (by attribute
path, with the axis of output units for channel pruning and the input axis for
N:M groups) and the weights cut along with whole units (the bias). Layers that
follow a channel-pruned layer and carry one value per channel (BatchNormalization,
depthwise convolutions) have a per-channel spec: their per-channel weights take the
producer's unit mask, so a removed channel is exactly zero downstream.

tf-keras and Keras 3 name these layers and their weights alike (Keras 3's Dense,
EinsumDense, convolutions and Embedding read ``kernel``/``embeddings`` through a
property over ``_kernel``/``_embeddings``, which the Keras 3 layers resolve),
except Keras 3's depthwise kernel: `KERAS3_PATHS` renames it. Each Keras path maps a layer to the name of its
built-in class (a user's subclass of Dense is a "Dense") and reads the few
attributes the specs depend on.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Target:
    """One weight of a layer, by attribute path ("kernel", "cell.kernel")."""

    path: str
    unit_axis: int | None = None  # axis of output units; None: no channel pruning
    input_axis: int | None = None  # axis of N:M groups; None: no N:M


@dataclasses.dataclass(frozen=True)
class LayerSpec:
    pruned: tuple  # Targets scored by the criterion
    unit_weights: tuple = ()  # Targets masked with whole units under "channels"

    @property
    def channel_capable(self):
        return any(t.unit_axis is not None for t in self.pruned)


SEPARABLE = ("SeparableConv1D", "SeparableConv2D")
DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D")
CONV = ("Conv1D", "Conv2D", "Conv3D")
TRANSPOSED = ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose")
RNN = ("LSTM", "GRU", "SimpleRNN")
# The four projections of MultiHeadAttention, EinsumDense sublayers built with it.
ATTENTION_PATHS = tuple(f"_{name}_dense.kernel" for name in ("query", "key", "value", "output"))

# Layer classes whose weights tfopt prunes ("Bidirectional" only around an RNN).
PRUNABLE = SEPARABLE + DEPTHWISE + CONV + RNN + (
    "Dense", "EinsumDense", "Embedding", "MultiHeadAttention")
# Every class name this table distinguishes; a Keras path maps layers onto them.
KNOWN = PRUNABLE + TRANSPOSED + ("Bidirectional", "BatchNormalization")

SUPPORTED = (
    "Dense, EinsumDense, Conv1D, Conv2D, Conv3D, DepthwiseConv1D, DepthwiseConv2D, "
    "SeparableConv1D, SeparableConv2D, Embedding, LSTM, GRU, SimpleRNN, Bidirectional "
    "(of LSTM, GRU or SimpleRNN), MultiHeadAttention"
)


# Keras 3 calls the kernel of DepthwiseConv1D/2D "kernel"; tf-keras and the specs say
# "depthwise_kernel" (SeparableConv keeps "depthwise_kernel" in both).
KERAS3_PATHS = {name: {"depthwise_kernel": "kernel"} for name in DEPTHWISE}


def renamed(spec, paths):
    """`spec` with its Targets' paths renamed by `paths` ({spec path: attribute path})."""
    if spec is None or not paths:
        return spec
    def rename(targets):
        return tuple(dataclasses.replace(t, path=paths.get(t.path, t.path)) for t in targets)
    return LayerSpec(rename(spec.pruned), rename(spec.unit_weights))


def _bias(use_bias):
    return (Target("bias", unit_axis=0),) if use_bias else ()


def spec_for(class_name, use_bias=False, wrapped=None):
    """The LayerSpec of a built-in layer class, or None when tfopt does not prune it.

    Args:
      class_name: the layer's built-in class name ("Dense").
      use_bias: the layer's `use_bias`. Defaults to False.
      wrapped: for "Bidirectional", the class names of its (forward, backward)
        layers; it is pruned only around RNNs. Defaults to None.
    """
    if class_name in SEPARABLE:
        return LayerSpec((Target("depthwise_kernel"),
                          Target("pointwise_kernel", unit_axis=-1, input_axis=-2)),
                         _bias(use_bias))
    if class_name in DEPTHWISE:
        return LayerSpec((Target("depthwise_kernel"),), ())
    if class_name in CONV:
        return LayerSpec((Target("kernel", unit_axis=-1, input_axis=-2),), _bias(use_bias))
    if class_name == "Dense":
        return LayerSpec((Target("kernel", unit_axis=-1, input_axis=0),), _bias(use_bias))
    if class_name == "Embedding":
        return LayerSpec((Target("embeddings", unit_axis=-1),))
    if class_name == "EinsumDense":
        return LayerSpec((Target("kernel"),))
    if class_name in RNN:
        return LayerSpec(_rnn_targets(""))
    if class_name == "Bidirectional" and wrapped is not None and all(
            name in RNN for name in wrapped):
        return LayerSpec(_rnn_targets("forward_layer.") + _rnn_targets("backward_layer."))
    if class_name == "MultiHeadAttention":
        return LayerSpec(tuple(Target(path) for path in ATTENTION_PATHS))
    return None


def _rnn_targets(prefix):
    return (Target(f"{prefix}cell.kernel", input_axis=0),
            Target(f"{prefix}cell.recurrent_kernel", input_axis=0))


def can_follow(class_name):
    """Whether a layer of this class holds per-channel weights that can copy a unit mask."""
    return class_name == "BatchNormalization" or class_name in DEPTHWISE


def member_spec(spec):
    """The spec of a layer whose own units follow a leader's: units masked, none scored."""
    return LayerSpec((), tuple(t for t in spec.pruned if t.unit_axis is not None)
                     + spec.unit_weights)


def per_channel_spec(class_name, use_bias=False, depth_multiplier=1, axis=None, ndim=None,
                     scale=True, center=True):
    """Per-channel weights of a layer that keeps a producer's channels, or None.

    Args:
      class_name: the layer's built-in class name.
      use_bias: a depthwise convolution's `use_bias`. Defaults to False.
      depth_multiplier: a depthwise convolution's; only 1 keeps channels.
        Defaults to 1.
      axis: BatchNormalization's axis (an int, or the list a built tf-keras
        layer holds). Defaults to None.
      ndim: the rank of BatchNormalization's input, None if unknown.
        Defaults to None.
      scale, center: whether BatchNormalization has gamma and beta. Default True.
    """
    if class_name == "BatchNormalization":
        axes = list(axis) if isinstance(axis, (list, tuple)) else [axis]
        if len(axes) != 1 or ndim is None or axes[0] not in (-1, ndim - 1):
            return None
        names = [name for name, present in (("gamma", scale), ("beta", center)) if present]
        return LayerSpec((), tuple(Target(name, unit_axis=0) for name in names))
    if class_name in DEPTHWISE and depth_multiplier == 1:
        return LayerSpec((), (Target("depthwise_kernel", unit_axis=-2),) + _bias(use_bias))
    return None
