"""Which tf-keras layers tfopt prunes, and which of their weights.

The specs are `tfopt.core.layer_specs`', keyed by class name; this module maps
a tf-keras layer to the name of its built-in class (isinstance, so subclasses
count), reads the attributes the specs depend on, and adds tfmot's
`PrunableLayer`, whose weights its `get_prunable_weights` names. Layers whose
units meet the leader's at a residual merge follow it with their own units
masked (`follower_spec`).
"""

import functools

import tf_keras as keras
from tensorflow_model_optimization.python.core.sparsity.keras import (
    prunable_layer as tfmot_prunable_layer,
)

from tfopt.core import layer_specs
from tfopt.core.layer_specs import LayerSpec
from tfopt.core.layer_specs import Target

PrunableLayer = tfmot_prunable_layer.PrunableLayer

_L = keras.layers
_ATTENTION_PATHS = layer_specs.ATTENTION_PATHS

SUPPORTED = layer_specs.SUPPORTED + ", and layers implementing tfmot.sparsity.keras.PrunableLayer"


def class_name(layer):
    """The name of the first public tf-keras layer class `layer` is an instance of.

    A user's subclass of Dense is a "Dense" (as isinstance would say); the core
    tables (`tfopt.core`) are keyed by these names. None for objects that are
    no tf-keras layer.
    """
    return _builtin_name(type(layer))


@functools.lru_cache(maxsize=None)
def _builtin_name(cls):
    # keras.layers.Conv2D and its alias Convolution2D are one class, named "Conv2D".
    return next((base.__name__ for base in cls.__mro__
                 if getattr(_L, base.__name__, None) is base), None)


def is_supported(layer):
    """Whether tfopt can prune this layer's type."""
    name = class_name(layer)
    if name in layer_specs.TRANSPOSED:
        return False
    return name in layer_specs.PRUNABLE or isinstance(layer, PrunableLayer) \
        or bidirectional_rnn(layer)


def bidirectional_rnn(layer):
    """Whether `layer` is a Bidirectional wrapper around an LSTM, GRU or SimpleRNN."""
    return class_name(layer) == "Bidirectional" and all(
        class_name(inner) in layer_specs.RNN
        for inner in (layer.forward_layer, layer.backward_layer))


def can_follow(layer):
    """Whether this layer's type can copy a channel-pruned leader's unit mask."""
    return layer_specs.can_follow(class_name(layer)) or channel_capable(layer)


def channel_capable(layer):
    """Whether the layer has output units that channel pruning can remove."""
    try:
        spec = spec_for(layer)
    except ValueError:  # a PrunableLayer with weights tfopt cannot reach: no units either
        return False
    return spec is not None and spec.channel_capable


def spec_for(layer):
    """The LayerSpec of a layer, or None when tfopt does not prune its type."""
    name = class_name(layer)
    wrapped = None
    if name == "Bidirectional":
        wrapped = (class_name(layer.forward_layer), class_name(layer.backward_layer))
    spec = layer_specs.spec_for(name, getattr(layer, "use_bias", False), wrapped)
    if spec is None and isinstance(layer, PrunableLayer):
        return LayerSpec(tuple(Target(path) for path in _custom_paths(layer)))
    return spec


def follower_spec(layer):
    """Weights masked by a layer that copies a channel-pruned leader's unit mask, or None.

    Per-channel layers after the leader mask their per-channel weights; layers
    whose own units meet the leader's at a residual merge (group members) mask
    those units, kernel and bias, as the leader does.
    """
    spec = per_channel_spec(layer)
    if spec is None and channel_capable(layer):
        spec = layer_specs.member_spec(spec_for(layer))
    return spec


def per_channel_spec(layer):
    """Per-channel weights of a layer that keeps a producer's channels, or None."""
    name = class_name(layer)
    if name == "BatchNormalization":
        return layer_specs.per_channel_spec(
            name, axis=layer.axis,
            ndim=layer.input_spec.ndim if layer.input_spec is not None else None,
            scale=getattr(layer, "gamma", None) is not None,
            center=getattr(layer, "beta", None) is not None)
    return layer_specs.per_channel_spec(
        name, use_bias=getattr(layer, "use_bias", False),
        depth_multiplier=getattr(layer, "depth_multiplier", 1))


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
