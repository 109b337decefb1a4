"""The width plan of a student: which layers `make_student` narrows, and to how many units.

Narrowing a layer changes the last (channel) dimension of every tensor its
output reaches through layers that keep that dimension (activations,
normalization, pooling, padding, depthwise convolutions, a Reshape that keeps
the last axis). Tensors joined elementwise (Add, Multiply, a residual
``x + y``) must keep equal widths, and so must the outputs of the layers that
produce them. The plan therefore puts tensors into groups that must share one
width (union-find). A group narrows when everything that sets its width is a
layer that can be narrowed; it keeps the teacher's width when it holds the
model's input or output, or the output of a layer whose width cannot change
(unknown layers, or a Concatenate or Flatten joined to other widths: their
width is derived from their inputs, which then keep theirs too). So the
classifier and any layer feeding the output through reshapes keep their
units, and a residual group keeps its width when the model input is in it.
"""

import tensorflow as tf
import tf_keras as keras

from tfopt import _clone

_L = keras.layers
_WIDTH_KEYS = ((_L.Dense, "units"), (_L.Conv1D, "filters"), (_L.Conv2D, "filters"),
               (_L.Conv3D, "filters"), (_L.SeparableConv1D, "filters"),
               (_L.SeparableConv2D, "filters"), (_L.LSTM, "units"), (_L.GRU, "units"),
               (_L.SimpleRNN, "units"), (_L.Embedding, "output_dim"))
_DEPTHWISE = tuple(getattr(_L, n) for n in ("DepthwiseConv1D", "DepthwiseConv2D") if hasattr(_L, n))
_RNN = (_L.LSTM, _L.GRU, _L.SimpleRNN)
_MERGE = (_L.Add, _L.Subtract, _L.Multiply, _L.Average, _L.Maximum, _L.Minimum)
# Layers whose weights are built from their input's channels, so a narrower input is fine.
_PER_CHANNEL = (_L.BatchNormalization, _L.LayerNormalization, _L.PReLU)
# keras.applications' ConvNeXt: one scale per channel, the count given in its config.
PER_CHANNEL_CONFIG = {"LayerScale": "projection_dim"}
_FIXED, _LAYER, _DERIVED = "fixed", "layer", "derived"


def width_key(layer):
    """(config key, layer inside a wrapper or the layer) of a layer with units, or None."""
    if isinstance(layer, _L.Bidirectional):
        inner = width_key(layer.forward_layer)
        return inner if isinstance(layer.forward_layer, _RNN) else None
    if isinstance(layer, _L.TimeDistributed):
        return width_key(layer.layer)
    if isinstance(layer, _DEPTHWISE) or getattr(layer, "groups", 1) != 1 \
            or getattr(layer, "data_format", "channels_last") != "channels_last":
        return None
    key = next((key for kind, key in _WIDTH_KEYS if isinstance(layer, kind)), None)
    return (key, layer) if key is not None else None


def units_multiplier(layer):
    """Output channels per unit: 2 for a Bidirectional that concatenates, else 1."""
    return 2 if isinstance(layer, _L.Bidirectional) and layer.merge_mode == "concat" else 1


def depthwise_style(layer, input_width):
    """Whether a grouped convolution has one group per input channel (ConvNeXt's)."""
    groups = getattr(layer, "groups", 1)
    return groups != 1 and groups == input_width


def _last(tensor):
    shape = tensor.shape
    return shape[-1] if shape.rank else None


class Plan:
    """Student widths for every layer of a Sequential or Functional teacher.

    Attributes:
      units: {id(layer): units} for the layers that narrow (a layer absent
        keeps its width); for a Bidirectional, the units of each direction.
      attention: {id(layer): {config key: value}} for the MultiHeadAttention
        layers, whose per-head widths are internal and narrow freely.
    """

    def __init__(self, model, width, narrowable):
        # Per tensor id: parent in the union-find; per group root: what sets its width
        # and the teacher's width.
        self._parent, self._sources, self._teacher_width = {}, {}, {}
        self._anchor, self._layers = {}, {}  # per layer id: one output tensor; the layer
        self._width, self._narrowable = width, narrowable
        for tensor in model.inputs:
            self._source(tensor, (_FIXED,))
        self._walk(model, set())
        for tensor in model.outputs:
            self._source(tensor, (_FIXED,))
        self._settle()
        self.units = {}
        for layer_id, tensor in self._anchor.items():
            new = self._new_width(self._find(tensor))
            if new is not None:
                self.units[layer_id] = new // units_multiplier(self._layers[layer_id])
        self.attention = {id(layer): _head_widths(layer, width) for layer in self._layers.values()
                          if isinstance(layer, _L.MultiHeadAttention) and narrowable(layer)}

    def narrowed(self):
        """{layer name: units} of the layers that narrow."""
        return {self._layers[i].name: units for i, units in self.units.items()}

    # Union-find over tensors, by id.
    def _find(self, tensor):
        key = id(tensor)
        if key not in self._parent:
            self._parent[key] = key
            self._sources[key] = []
            self._teacher_width[key] = _last(tensor)
        while self._parent[key] != key:
            self._parent[key] = self._parent[self._parent[key]]
            key = self._parent[key]
        return key

    def _union(self, a, b):
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self._parent[rb] = ra
            self._sources[ra] += self._sources.pop(rb)

    def _source(self, tensor, source):
        self._sources[self._find(tensor)].append(source)

    def _fix(self, tensors):
        for tensor in tensors:
            self._source(tensor, (_FIXED,))

    def _walk(self, model, seen):
        for depth in sorted(model._nodes_by_depth, reverse=True):
            for node in model._nodes_by_depth[depth]:
                if not node.is_input:
                    self._node(node, seen)

    def _node(self, node, seen):
        layer, inputs = node.layer, list(node.keras_inputs)
        outputs = tf.nest.flatten(node.outputs)
        if _clone.is_graph_model(layer):
            for outer, inner in zip(inputs, layer.inputs):
                self._union(outer, inner)
            if id(layer) not in seen:
                seen.add(id(layer))
                self._walk(layer, seen)
            for outer, inner in zip(outputs, layer.outputs):
                self._union(outer, inner)
            return
        self._layers[id(layer)] = layer
        if not inputs or getattr(layer, "data_format", "channels_last") != "channels_last":
            self._fix(inputs + outputs)
        elif width_key(layer) is not None:
            self._units_layer(layer, inputs, outputs)
        else:
            self._channel_layer(node, layer, inputs, outputs)

    def _units_layer(self, layer, inputs, outputs):
        # Initial states of an RNN have its units; a Bidirectional splits them in two.
        states = inputs[1:] if isinstance(layer, _RNN + (_L.Bidirectional,)) else []
        width = _last(outputs[0])
        if not self._narrowable(layer) or {_last(t) for t in outputs} != {width} or (
                states and isinstance(layer, _L.Bidirectional)):
            self._fix(outputs)
            return
        anchor = self._anchor.setdefault(id(layer), outputs[0])
        self._source(anchor, (_LAYER, layer))
        self._union_all([anchor] + outputs + [t for t in states if _last(t) == width])
        self._fix([t for t in states if _last(t) != width])

    def _channel_layer(self, node, layer, inputs, outputs):
        first, out = inputs[0], outputs[0]
        same = [t for t in inputs if _last(t) is not None and _last(t) == _last(out)]
        kind = type(layer).__name__
        if isinstance(layer, _MERGE) or kind in ("Attention", "AdditiveAttention"):
            self._union_all(same + [out])
        elif isinstance(layer, _L.MultiHeadAttention):
            query = node.call_kwargs.get("query", node.call_args[0] if node.call_args else first)
            if layer.get_config()["output_shape"] is None:
                self._union(query, out)
            else:
                self._fix([out])
            self._fix(outputs[1:])  # attention scores
        elif isinstance(layer, _L.Concatenate):
            if layer.axis in (-1, out.shape.rank - 1):
                self._source(out, (_DERIVED, inputs))
            else:
                self._union_all(inputs + [out])
        elif isinstance(layer, _L.Flatten):
            if first.shape.rank == 2:
                self._union(first, out)
            else:
                self._source(out, (_DERIVED, inputs))
        elif isinstance(layer, _L.Reshape):
            target = layer.target_shape
            if first.shape.rank and first.shape.rank > 1 and target[-1] == _last(first):
                self._union(first, out)
            elif target[-1] == -1:
                self._source(out, (_DERIVED, inputs))
            else:
                self._fix(inputs + outputs)
        elif isinstance(layer, _DEPTHWISE + (_L.Conv1D, _L.Conv2D, _L.Conv3D)) and (
                isinstance(layer, _DEPTHWISE) or depthwise_style(layer, _last(first))):
            if _last(out) == _last(first):
                self._union(first, out)
            else:  # several filters per channel: the width follows the input's
                self._source(out, (_DERIVED, inputs))
        elif (isinstance(layer, _PER_CHANNEL) or kind in PER_CHANNEL_CONFIG) \
                and _last(out) == _last(first):
            self._union(first, out)
        elif not layer.weights and same and not isinstance(layer, (_L.Permute, _L.Dot)):
            # Activations, pooling, padding, dropout, x * y and other TensorFlow ops.
            self._union_all(same + [out])
            self._fix([t for t in inputs if _last(t) != _last(out)] + outputs[1:])
        else:  # a layer whose weights or arguments fix its widths
            self._fix(inputs + outputs)

    def _union_all(self, tensors):
        for tensor in tensors[1:]:
            self._union(tensors[0], tensor)

    def _settle(self):
        """Fixes the inputs of derived widths in fixed groups, until nothing changes."""
        changed = True
        while changed:
            changed = False
            for root in list(self._sources):
                sources = self._sources[root]
                derived = [s for s in sources if s[0] == _DERIVED]
                if derived and self._is_fixed(sources):
                    self._sources[root] = [s for s in sources if s[0] != _DERIVED] + [(_FIXED,)]
                    for source in derived:
                        self._fix(source[1])
                    changed = True

    @staticmethod
    def _is_fixed(sources):
        kinds = [s[0] for s in sources]
        return _FIXED in kinds or (_DERIVED in kinds and len(kinds) > 1)

    def _new_width(self, root):
        sources = self._sources[root]
        if self._is_fixed(sources) or any(s[0] != _LAYER for s in sources):
            return None
        teacher = self._teacher_width[root]
        if any(units_multiplier(s[1]) == 2 for s in sources):
            return 2 * max(1, round(teacher * self._width / 2))
        return max(1, round(teacher * self._width))


def _head_widths(layer, width):
    config = layer.get_config()
    return {key: max(1, round(config[key] * width)) for key in ("key_dim", "value_dim")
            if config.get(key)}
