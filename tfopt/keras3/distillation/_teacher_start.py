"""make_student(weights="teacher") for Keras 3: the teacher's strongest units, cut to size.

tf-keras' make_student gets there by channel pruning the teacher to the
student's widths and shrinking it (`tfopt.pruning.shrink`); Keras 3 has no
shrink yet, so the cut is made here, on the width plan's groups: each
narrowed group keeps the units whose kernels have the largest L1 norm in the
group's first layer (the others, e.g. the far side of a residual Add, follow), and
every layer's weights keep the matching slices along their output (last) and
input (second to last) axes. Flatten and depthwise layers turn kept channels
into kept positions. A layer that mixes channels (LayerNormalization) cannot
drop some of them exactly, and is refused as tf-keras refuses it.
"""

import keras
import numpy as np

from tfopt.core import student_widths

_UNITS = ("Dense", "Conv1D", "Conv2D", "Conv3D", "SeparableConv1D", "SeparableConv2D")
_MIXING = ("LayerNormalization", "GroupNormalization", "UnitNormalization")


def narrowable(layer):
    """Whether the teacher start can narrow `layer`: Dense and (separable) convolutions."""
    return student_widths.is_a(layer, *_UNITS) and student_widths.width_key(layer) is not None


class _Kept:
    """The teacher channels a student tensor keeps, and the narrowed layers that chose them."""

    def __init__(self, indices, layers):
        self.indices, self.layers = np.asarray(indices), tuple(layers)


def copy_weights(teacher, plan, made, graph, width):
    """Sets the weights of the student layers in `made` from the teacher's layers, cut."""
    cut = _Cut(plan, made, graph)
    cut.walk(teacher, set())
    if cut.refused:
        layers = sorted({name for kept in cut.refused.values() for name in kept.layers})
        raise ValueError(
            f"make_student(weights='teacher') cannot cut {teacher.name!r} to width {width}: "
            f"{sorted(cut.refused)} mix the channels of the narrowed layers {layers} "
            "(dropping some of them would change the rest), or their weights do not follow "
            "the channels. Use weights=None for a randomly initialized student.")


class _Cut:
    """One walk over the teacher's graph, inputs first, cutting each layer's weights."""

    def __init__(self, plan, made, graph):
        self._plan, self._made, self._graph = plan, made, graph
        self._kept = {}  # id(teacher tensor) -> _Kept, or absent when all channels stay
        self._groups = {}  # group key -> _Kept
        self._done = set()
        self.refused = {}  # layer name -> the _Kept it could not take

    def walk(self, model, seen):
        for call in self._graph.calls(model):
            layer = call.layer
            if self._graph.is_graph_model(layer):
                self._relay(call.inputs, layer.inputs)
                if id(layer) not in seen:
                    seen.add(id(layer))
                    self.walk(layer, seen)
                self._relay(layer.outputs, call.outputs)
                continue
            kept_in = self._kept.get(id(call.inputs[0])) if call.inputs else None
            for tensor in call.outputs:
                kept_out = self._output(layer, call, tensor, kept_in)
                if kept_out is not None:
                    self._kept[id(tensor)] = kept_out
            if isinstance(layer, keras.layers.Layer) and layer.weights \
                    and id(layer) not in self._done:
                self._done.add(id(layer))
                self._set(layer, kept_in, self._kept.get(id(call.outputs[0])))

    def _relay(self, sources, targets):
        for source, target in zip(sources, targets):
            if id(source) in self._kept:
                self._kept[id(target)] = self._kept[id(source)]

    def _output(self, layer, call, tensor, kept_in):
        """The channels `tensor` keeps, or None when it keeps the teacher's."""
        narrowing = self._plan.narrowing(tensor)
        if narrowing is not None:
            key, new, sources = narrowing
            if key not in self._groups:
                # The walk reaches a group first at its first layer: that layer leads, and
                # the others (the far side of an Add or Multiply) keep its channels, as
                # tf-keras' channel pruning makes them follow it.
                leader = layer if any(layer is s for s in sources) else sources[0]
                self._groups[key] = _Kept(_strongest(leader, new), [s.name for s in sources])
            return self._groups[key]
        if kept_in is None:
            return None
        if student_widths.is_a(layer, "Flatten"):
            shape = tuple(call.inputs[0].shape)
            positions = int(np.prod(shape[1:-1]))
            return _Kept((np.arange(positions)[:, None] * shape[-1]
                          + kept_in.indices[None, :]).reshape(-1), kept_in.layers)
        if student_widths.is_a(layer, "DepthwiseConv1D", "DepthwiseConv2D"):
            multiplier = layer.depth_multiplier
            return _Kept((kept_in.indices[:, None] * multiplier
                          + np.arange(multiplier)[None, :]).reshape(-1), kept_in.layers)
        if student_widths.is_a(layer, "Concatenate") and layer.axis in (-1, len(tensor.shape) - 1):
            return self._concatenated(call.inputs)
        if student_widths.width_key(layer) is None \
                and tuple(tensor.shape)[-1:] == tuple(call.inputs[0].shape)[-1:]:
            return kept_in  # channel-wise: activations, pooling, normalization
        return None

    def _concatenated(self, inputs):
        indices, layers, offset = [], [], 0
        for tensor in inputs:
            kept = self._kept.get(id(tensor))
            width = tuple(tensor.shape)[-1]
            indices.append(offset + (kept.indices if kept is not None else np.arange(width)))
            layers.extend(kept.layers if kept is not None else ())
            offset += width
        return _Kept(np.concatenate(indices), layers)

    def _set(self, layer, kept_in, kept_out):
        student = self._made[id(layer)]
        if student_widths.is_a(layer, *_MIXING) and kept_in is not None:
            self.refused[layer.name] = kept_in
            return
        weights = []
        for weight, target in zip(layer.get_weights(), student.weights):
            shape = tuple(target.shape)
            if weight.ndim >= 1 and weight.shape[-1] != shape[-1] and kept_out is not None:
                weight = np.take(weight, kept_out.indices, axis=-1)
            if weight.ndim >= 2 and weight.shape[-2] != shape[-2] and kept_in is not None:
                weight = np.take(weight, kept_in.indices, axis=-2)
            if weight.shape != shape:
                self.refused[layer.name] = kept_in or kept_out or _Kept([], [])
                return
            weights.append(weight)
        student.set_weights(weights)


def _strongest(layer, count):
    """The `count` units of `layer` with the largest kernel L1 norm, in order."""
    # A separable convolution's units are its pointwise kernel's.
    kernel = layer.pointwise_kernel if hasattr(layer, "pointwise_kernel") else layer.kernel
    kernel = np.abs(keras.ops.convert_to_numpy(kernel)).astype(np.float64)
    scores = kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
    return np.sort(np.argsort(-scores, kind="stable")[:count])
