"""Which layers tfopt prunes, and which of their weights.

Each supported layer type maps to a `LayerSpec`: the weights pruned (by attribute
path, with the axis of output units for channel pruning and the input axis for
N:M groups) and the weights cut along with whole units (the bias). Layers that
follow a channel-pruned layer and carry one value per channel (BatchNormalization,
depthwise convolutions) have a per-channel spec: their per-channel weights take the
producer's unit mask, so a removed channel is exactly zero downstream. Layers
whose units meet the leader's at a residual merge follow it the same way, with
their own units masked (`follower_spec`).
"""

import dataclasses

import tf_keras as keras
from tensorflow_model_optimization.python.core.sparsity.keras import (
    prunable_layer as tfmot_prunable_layer,
)

PrunableLayer = tfmot_prunable_layer.PrunableLayer


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


_L = keras.layers
_SEPARABLE = (_L.SeparableConv1D, _L.SeparableConv2D)
_DEPTHWISE = tuple(getattr(_L, n) for n in ("DepthwiseConv1D", "DepthwiseConv2D") if hasattr(_L, n))
_CONV = (_L.Conv1D, _L.Conv2D, _L.Conv3D)
_TRANSPOSED = tuple(getattr(_L, n) for n in ("Conv1DTranspose", "Conv2DTranspose", "Conv3DTranspose"))
_RNN = (_L.LSTM, _L.GRU, _L.SimpleRNN)
# The four projections of MultiHeadAttention, EinsumDense sublayers built with it.
_ATTENTION_PATHS = tuple(f"_{name}_dense.kernel" for name in ("query", "key", "value", "output"))

SUPPORTED = (
    "Dense, EinsumDense, Conv1D, Conv2D, Conv3D, DepthwiseConv1D, DepthwiseConv2D, "
    "SeparableConv1D, SeparableConv2D, Embedding, LSTM, GRU, SimpleRNN, Bidirectional "
    "(of LSTM, GRU or SimpleRNN), MultiHeadAttention, and layers implementing "
    "tfmot.sparsity.keras.PrunableLayer"
)


def is_supported(layer):
    """Whether tfopt can prune this layer's type."""
    kinds = _SEPARABLE + _DEPTHWISE + _CONV + _RNN + (
        _L.Dense, _L.EinsumDense, _L.Embedding, _L.MultiHeadAttention, PrunableLayer)
    return (isinstance(layer, kinds) and not isinstance(layer, _TRANSPOSED)) \
        or bidirectional_rnn(layer)


def bidirectional_rnn(layer):
    """Whether `layer` is a Bidirectional wrapper around an LSTM, GRU or SimpleRNN."""
    return isinstance(layer, _L.Bidirectional) and isinstance(layer.forward_layer, _RNN) \
        and isinstance(layer.backward_layer, _RNN)


def can_follow(layer):
    """Whether this layer's type can copy a channel-pruned leader's unit mask."""
    return isinstance(layer, (_L.BatchNormalization,) + _DEPTHWISE) or channel_capable(layer)


def channel_capable(layer):
    """Whether the layer has output units that channel pruning can remove."""
    try:
        spec = spec_for(layer)
    except ValueError:  # a PrunableLayer with weights tfopt cannot reach: no units either
        return False
    return spec is not None and spec.channel_capable


def _bias(layer):
    return (Target("bias", unit_axis=0),) if getattr(layer, "use_bias", False) else ()


def spec_for(layer):
    """The LayerSpec of a layer, or None when tfopt does not prune its type."""
    if isinstance(layer, _SEPARABLE):
        return LayerSpec((Target("depthwise_kernel"),
                          Target("pointwise_kernel", unit_axis=-1, input_axis=-2)), _bias(layer))
    if isinstance(layer, _DEPTHWISE):
        return LayerSpec((Target("depthwise_kernel"),), ())
    if isinstance(layer, _CONV) and not isinstance(layer, _TRANSPOSED):
        return LayerSpec((Target("kernel", unit_axis=-1, input_axis=-2),), _bias(layer))
    if isinstance(layer, _L.Dense):
        return LayerSpec((Target("kernel", unit_axis=-1, input_axis=0),), _bias(layer))
    if isinstance(layer, _L.Embedding):
        return LayerSpec((Target("embeddings", unit_axis=-1),))
    if isinstance(layer, _L.EinsumDense):
        return LayerSpec((Target("kernel"),))
    if isinstance(layer, _RNN):
        return LayerSpec(_rnn_targets(""))
    if bidirectional_rnn(layer):
        return LayerSpec(_rnn_targets("forward_layer.") + _rnn_targets("backward_layer."))
    if isinstance(layer, _L.MultiHeadAttention):
        return LayerSpec(tuple(Target(path) for path in _ATTENTION_PATHS))
    if isinstance(layer, PrunableLayer):
        return LayerSpec(tuple(Target(path) for path in _custom_paths(layer)))
    return None


def _rnn_targets(prefix):
    return (Target(f"{prefix}cell.kernel", input_axis=0),
            Target(f"{prefix}cell.recurrent_kernel", input_axis=0))


def follower_spec(layer):
    """Weights masked by a layer that copies a channel-pruned leader's unit mask, or None.

    Per-channel layers after the leader mask their per-channel weights; layers
    whose own units meet the leader's at a residual merge (group members) mask
    those units, kernel and bias, as the leader does.
    """
    spec = per_channel_spec(layer)
    if spec is None and channel_capable(layer):
        own = spec_for(layer)
        spec = LayerSpec((), tuple(t for t in own.pruned if t.unit_axis is not None)
                         + own.unit_weights)
    return spec


def per_channel_spec(layer):
    """Per-channel weights of a layer that keeps a producer's channels, or None."""
    if isinstance(layer, _L.BatchNormalization):
        # Built BatchNormalization layers hold a list of positive axes.
        axes = list(layer.axis) if isinstance(layer.axis, (list, tuple)) else [layer.axis]
        ndim = layer.input_spec.ndim if layer.input_spec is not None else None
        if len(axes) != 1 or ndim is None or axes[0] not in (-1, ndim - 1):
            return None
        return LayerSpec((), tuple(Target(name, unit_axis=0) for name in ("gamma", "beta")
                                   if getattr(layer, name, None) is not None))
    if isinstance(layer, _DEPTHWISE) and layer.depth_multiplier == 1:
        return LayerSpec((), (Target("depthwise_kernel", unit_axis=-2),) + _bias(layer))
    return None


def _custom_paths(layer):
    paths = []
    for weight in layer.get_prunable_weights():
        names = [k for k, v in vars(layer).items() if v is weight]
        if not names:
            raise ValueError(
                f"Layer {layer.name!r} ({type(layer).__name__}) returns a prunable weight "
                f"{weight.name!r} that is not stored as an attribute of the layer; tfopt "
                "masks weights by attribute. Store it as self.<name> in build()."
            )
        paths.append(names[0])
    return paths


def resolve(layer, path):
    """(owner object, attribute name) of a dotted attribute path.

    MultiHeadAttention creates its projections' weights on its first call; they
    are created here when needed, so a fresh copy can be masked before it runs.
    """
    if isinstance(layer, _L.MultiHeadAttention) and path in _ATTENTION_PATHS:
        _build_attention(layer)
    owner = layer
    *parents, attr = path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    return owner, attr


def _build_attention(layer):
    query = getattr(layer, "_query_shape", None)
    if query is None or layer._output_dense.built:
        return  # never called (no sublayers yet), or built already
    value = layer._value_shape
    key = layer._key_shape if layer._key_shape is not None else value
    attended = query[:-1].concatenate([layer._num_heads, layer._value_dim])
    for dense, shape in ((layer._query_dense, query), (layer._key_dense, key),
                         (layer._value_dense, value), (layer._output_dense, attended)):
        if not dense.built:
            dense.build(shape)


def has_weights(layer):
    return bool(layer.weights)
