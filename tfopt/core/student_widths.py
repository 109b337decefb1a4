"""The width plan of a student: which layers `make_student` narrows, and to how many units.

Shared by tf-keras' `tfopt.distillation` and `tfopt.keras3.distillation`:
layers are told apart by class name (the two Keras name their layers alike),
and each Keras supplies a `graph` that lists a model's layer calls.

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

_WIDTH_KEYS = (("Dense", "units"), ("Conv1D", "filters"), ("Conv2D", "filters"),
               ("Conv3D", "filters"), ("SeparableConv1D", "filters"),
               ("SeparableConv2D", "filters"), ("LSTM", "units"), ("GRU", "units"),
               ("SimpleRNN", "units"), ("Embedding", "output_dim"))
_DEPTHWISE = ("DepthwiseConv1D", "DepthwiseConv2D")
_CONV = ("Conv1D", "Conv2D", "Conv3D")
_RNN = ("LSTM", "GRU", "SimpleRNN")
_MERGE = ("Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum")
# Layers whose weights are built from their input's channels, so a narrower input is fine.
_PER_CHANNEL = ("BatchNormalization", "LayerNormalization", "PReLU")
# keras.applications' ConvNeXt: one scale per channel, the count given in its config.
PER_CHANNEL_CONFIG = {"LayerScale": "projection_dim"}
_FIXED, _LAYER, _DERIVED = "fixed", "layer", "derived"


def is_a(layer, *names):
    """Whether `layer`'s class or one of its bases has one of these names (isinstance by name)."""
    return any(cls.__name__ in names for cls in type(layer).__mro__)


class Call:
    """One call of a layer in a model's graph, as a `graph` gives it to the plan.

    Attributes:
      layer: the layer (or the Keras 3 operation) called.
      inputs: the tensors it received, flat.
      outputs: the tensors it returned, flat.
      args, kwargs: the call's arguments, tensors included.
    """

    def __init__(self, layer, inputs, outputs, args, kwargs):
        self.layer, self.inputs, self.outputs = layer, list(inputs), list(outputs)
        self.args, self.kwargs = list(args), dict(kwargs)


def width_key(layer):
    """(config key, layer inside a wrapper or the layer) of a layer with units, or None."""
    if is_a(layer, "Bidirectional"):
        inner = width_key(layer.forward_layer)
        return inner if is_a(layer.forward_layer, *_RNN) else None
    if is_a(layer, "TimeDistributed"):
        return width_key(layer.layer)
    if is_a(layer, *_DEPTHWISE) or getattr(layer, "groups", 1) != 1 \
            or getattr(layer, "data_format", "channels_last") != "channels_last":
        return None
    key = next((key for kind, key in _WIDTH_KEYS if is_a(layer, kind)), None)
    return (key, layer) if key is not None else None


def units_multiplier(layer):
    """Output channels per unit: 2 for a Bidirectional that concatenates, else 1."""
    return 2 if is_a(layer, "Bidirectional") and layer.merge_mode == "concat" else 1


def depthwise_style(layer, input_width):
    """Whether a grouped convolution has one group per input channel (ConvNeXt's)."""
    groups = getattr(layer, "groups", 1)
    return groups != 1 and groups == input_width


def _rank(tensor):
    """The tensor's rank, or None when unknown (a TensorShape's or a tuple's)."""
    shape = tensor.shape
    if getattr(shape, "rank", 0) is None:
        return None
    return len(tuple(shape))


def _last(tensor):
    return tuple(tensor.shape)[-1] if _rank(tensor) else None


class Plan:
    """Student widths for every layer of a Sequential or Functional teacher.

    Attributes:
      units: {id(layer): units} for the layers that narrow (a layer absent
        keeps its width); for a Bidirectional, the units of each direction.
      attention: {id(layer): {config key: value}} for the MultiHeadAttention
        layers, whose per-head widths are internal and narrow freely.

    Args:
      model: a built Sequential or Functional model.
      width: the fraction of units to keep, in (0, 1].
      narrowable: ``layer -> bool``, whether a layer with units may narrow.
      graph: the Keras version's view of a model: ``calls(model)`` gives its
        layer calls (`Call`), inputs first, and ``is_graph_model(layer)`` says
        which layers are nested Sequential or Functional models.
    """

    def __init__(self, model, width, narrowable, graph):
        # Per tensor id: parent in the union-find; per group root: what sets its width
        # and the teacher's width.
        self._parent, self._sources, self._teacher_width = {}, {}, {}
        self._anchor, self._layers = {}, {}  # per layer id: one output tensor; the layer
        self._width, self._narrowable, self._graph = width, narrowable, graph
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
                          if is_a(layer, "MultiHeadAttention") and narrowable(layer)}

    def narrowed(self):
        """{layer name: units} of the layers that narrow."""
        return {self._layers[i].name: units for i, units in self.units.items()}

    def narrowing(self, tensor):
        """(group key, new width, layers setting it) if `tensor` narrows, else None.

        Tensors of one group share the key; the layers are those whose units
        set the group's width (one, or several joined by Add or Multiply).
        """
        root = self._find(tensor)
        new = self._new_width(root)
        if new is None:
            return None
        return root, new, [source[1] for source in self._sources[root]]

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
        for call in self._graph.calls(model):
            self._node(call, seen)

    def _node(self, node, seen):
        layer, inputs, outputs = node.layer, node.inputs, node.outputs
        if self._graph.is_graph_model(layer):
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
        states = inputs[1:] if is_a(layer, *_RNN, "Bidirectional") else []
        width = _last(outputs[0])
        if not self._narrowable(layer) or {_last(t) for t in outputs} != {width} or (
                states and is_a(layer, "Bidirectional")):
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
        if is_a(layer, *_MERGE) or kind in ("Attention", "AdditiveAttention"):
            self._union_all(same + [out])
        elif is_a(layer, "MultiHeadAttention"):
            query = node.kwargs.get("query", node.args[0] if node.args else first)
            if layer.get_config()["output_shape"] is None:
                self._union(query, out)
            else:
                self._fix([out])
            self._fix(outputs[1:])  # attention scores
        elif is_a(layer, "Concatenate"):
            if layer.axis in (-1, _rank(out) - 1):
                self._source(out, (_DERIVED, inputs))
            else:
                self._union_all(inputs + [out])
        elif is_a(layer, "Flatten"):
            if _rank(first) == 2:
                self._union(first, out)
            else:
                self._source(out, (_DERIVED, inputs))
        elif is_a(layer, "Reshape"):
            target = layer.target_shape
            if _rank(first) and _rank(first) > 1 and target[-1] == _last(first):
                self._union(first, out)
            elif target[-1] == -1:
                self._source(out, (_DERIVED, inputs))
            else:
                self._fix(inputs + outputs)
        elif is_a(layer, *_DEPTHWISE, *_CONV) and (
                is_a(layer, *_DEPTHWISE) or depthwise_style(layer, _last(first))):
            if _last(out) == _last(first):
                self._union(first, out)
            else:  # several filters per channel: the width follows the input's
                self._source(out, (_DERIVED, inputs))
        elif (is_a(layer, *_PER_CHANNEL) or kind in PER_CHANNEL_CONFIG) \
                and _last(out) == _last(first):
            self._union(first, out)
        elif not getattr(layer, "weights", ()) and same and not is_a(layer, "Permute", "Dot"):
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
