"""What `quantize` does to each layer of a Keras 3 model, decided before anything is built.

Every layer (nested models entered) is one of: a weighted layer with a
`Quant*` twin; a BatchNormalization folded into the layer before it (then an
Identity of the same name), or kept with an output range; a weightless layer
with an output range; a layer that passes int8 values through (copied); a
layer left float because `layers` leaves it out; or a layer nothing can
quantize, which `Plan.validate` names in one error with the others.
"""

import collections

import keras
import numpy as np

from tfopt.keras3 import _clone
from tfopt.keras3 import _models
from tfopt.keras3.quantization import _activations
from tfopt.keras3.quantization import _attention
from tfopt.keras3.quantization import _layers
from tfopt.keras3.quantization import _recurrent

WEIGHTED_CLASSES = {_layers.base_class(cls).__name__: cls for cls in (
    _layers.QuantDense, _layers.QuantEinsumDense, _layers.QuantConv1D, _layers.QuantConv2D,
    _layers.QuantDepthwiseConv1D, _layers.QuantDepthwiseConv2D, _layers.QuantSeparableConv1D,
    _layers.QuantSeparableConv2D, _layers.QuantConv1DTranspose, _layers.QuantConv2DTranspose)}

# Layers with sublayers or steps of their own, quantized by a class of their own.
OTHER_CLASSES = {"MultiHeadAttention": _attention.QuantMultiHeadAttention,
                 "LayerNormalization": _attention.QuantLayerNormalization,
                 "LSTM": _recurrent.QuantLSTM,
                 "GRU": _recurrent.QuantGRU}

# Layers a following BatchNormalization folds into (one output channel axis, last).
_FOLDS_INTO = frozenset({"Dense", "Conv1D", "Conv2D", "DepthwiseConv1D", "DepthwiseConv2D"})

# Activations with an int8 TFLite kernel that a fake-quantized output can end.
INT8_ACTIVATIONS = frozenset({"linear", "relu", "relu6", "sigmoid", "tanh", "softmax"})

# Why some layers are refused, and what to do instead.
_ADVICE = {
    "Conv3D": "TFLite's CONV_3D has no int8 kernel",
    "SimpleRNN": "recurrent layers are not covered by Keras 3 QAT yet",
    "Bidirectional": "recurrent layers are not covered by Keras 3 QAT yet",
    "Embedding": "an Embedding's integer input has no range to learn; keep it float with "
                 "`layers=`",
}


def validate_not_wrapped(model):
    """Raises ValueError for a model that still holds tfopt pruning layers."""
    pruned = [layer.name for layer in _clone.all_layers(model)
              if type(layer).__module__.startswith("tfopt.keras3.pruning")]
    if pruned:
        raise ValueError(
            f"{model.name!r} is still being pruned: its layers {pruned} are tfopt Pruned* "
            "layers. Call tfopt.keras3.pruning.strip(model) first, then quantize the stripped "
            "model (scheme='int8_prune_preserving' keeps its zeros).")
    quantized = [layer.name for layer in _clone.all_layers(model)
                 if isinstance(layer, _layers.QuantizeMixin)]
    if quantized:
        raise ValueError(f"{model.name!r} is already quantization-aware (layers {quantized}); "
                         "quantize the float model it was made from.")


def _activation(layer):
    activation = layer.get_config().get("activation")
    return activation if isinstance(activation, str) or activation is None else "custom"


def _graph(model):
    # A built Sequential runs through a Functional of its layers.
    return model._functional if isinstance(model, keras.Sequential) else model


def _edges(model):
    """({id(layer): consumers}, {id(layer): producers}, output layer ids) within one model."""
    consumers, producers = collections.defaultdict(list), collections.defaultdict(list)
    graph = _graph(model)
    for nodes in graph._nodes_by_depth.values():
        for node in nodes:
            for parent in node.parent_nodes:
                consumers[id(parent.operation)].append(node.operation)
                producers[id(node.operation)].append(parent.operation)
    outputs = {id(t._keras_history.operation) for t in keras.tree.flatten(graph.outputs)}
    return consumers, producers, outputs


class Plan:
    """The decision for every layer of `model` (nested models entered)."""

    def __init__(self, model, selected):
        self.model = model
        self.fold_target = {}  # id(layer) -> the batch norm folded into it
        self.refused = []  # (name, type, reason)
        # id(layer) -> "weighted" | "output" | "other" | "folded" | "float" | "copy"
        self.kinds = {}
        self.fused = set()  # ids of layers whose output range a following ReLU gives
        self._walk(model, selected)

    def _walk(self, model, selected):
        consumers, producers, outputs = _edges(model)
        for layer in model.layers:
            if _models.is_graph_model(layer):
                self._walk(layer, selected)
                continue
            name = type(layer).__name__
            if not selected(layer):
                self.kinds[id(layer)] = "float"
            elif name == "BatchNormalization":
                target = self._fold_target(layer, consumers, producers, outputs, selected)
                if target is not None:
                    self.fold_target[id(target)] = layer
                    self.kinds[id(layer)] = "folded"
                else:
                    self.kinds[id(layer)] = "output"
            elif name in WEIGHTED_CLASSES or name in _activations.OUTPUT_CLASSES:
                self.kinds[id(layer)] = "weighted" if name in WEIGHTED_CLASSES else "output"
                twin = WEIGHTED_CLASSES.get(name) or _activations.OUTPUT_CLASSES[name]
                if _layers.base_class(twin) is not type(layer):
                    self._refuse(layer, "a class of its own named like a Keras layer")
                elif _activation(layer) not in INT8_ACTIVATIONS | {None}:
                    self._refuse(layer, f"activation {_activation(layer)!r} has no int8 TFLite "
                                        f"kernel; use one of {sorted(INT8_ACTIVATIONS)}")
            elif name in OTHER_CLASSES and type(layer) is getattr(keras.layers, name):
                self.kinds[id(layer)] = "other"
                reason = _other_refusal(layer.get_config())
                if reason:
                    self._refuse(layer, reason)
            elif name in _activations.PASS_THROUGH:
                self.kinds[id(layer)] = "copy"
            else:
                self._refuse(layer, _ADVICE.get(
                    name, "tfopt.keras3.quantization has no quantization-aware version of it"))

        for layer in model.layers:
            if self.kinds.get(id(layer)) == "weighted" and _activation(layer) in (
                    "linear", None) and self._relu_after(layer, consumers, outputs):
                self.fused.add(id(layer))

    def _relu_after(self, layer, consumers, outputs):
        """Whether `layer`'s output reaches only a quantized ReLU (folded BN skipped).

        TFLite fuses that ReLU into the layer's op, whose output then takes the
        ReLU's range: a range of the layer's own would be dropped.
        """
        while True:
            after = consumers.get(id(layer), [])
            if len(after) != 1 or id(layer) in outputs:
                return False
            if self.kinds.get(id(after[0])) != "folded":
                break
            layer = after[0]
        relu = after[0]
        if self.kinds.get(id(relu)) != "output":
            return False
        if type(relu).__name__ == "Activation":
            return _activation(relu) in ("relu", "relu6")
        config = relu.get_config()
        return type(relu).__name__ == "ReLU" and not config.get("negative_slope") and not \
            config.get("threshold") and config.get("max_value") in (None, 6.0)

    def _refuse(self, layer, reason):
        self.refused.append((layer.name, type(layer).__name__, reason))

    @staticmethod
    def _fold_target(bn, consumers, producers, outputs, selected):
        sources = producers.get(id(bn), [])
        if len(sources) != 1 or len(bn._inbound_nodes) != 1:
            return None
        source = sources[0]
        rank = len(bn.input.shape)
        if (type(source).__name__ not in _FOLDS_INTO or not selected(source)
                or len(consumers.get(id(source), [])) != 1 or id(source) in outputs
                or len(source._inbound_nodes) != 1 or _activation(source) not in ("linear", None)
                or source.get_config().get("data_format", "channels_last") != "channels_last"
                or bn.axis not in (-1, rank - 1)):
            return None
        return source

    def validate(self):
        """Raises one ValueError naming every layer `quantize` cannot quantize."""
        if not self.refused:
            if not any(kind in ("weighted", "output", "other") for kind in self.kinds.values()):
                raise ValueError(f"quantize found no layer to quantize in {self.model.name!r}.")
            return
        lines = "\n".join(f"  {name} ({kind}): {reason}" for name, kind, reason in self.refused)
        raise ValueError(
            f"quantize cannot make {self.model.name!r} quantization-aware; these layers have no "
            f"int8 form:\n{lines}\nReplace them, or leave them out with quantize(..., "
            "layers=...) (they then stay float, and so does the TFLite file around them).")

    def weighted_names(self):
        return [layer.name for layer in _clone.all_layers(self.model)
                if self.kinds.get(id(layer)) == "weighted"]

    def replacement(self, layer, weight_quantizer, preserve_zeros):
        """What `_clone.rebuild` puts in `layer`'s place (None: a copy)."""
        kind = self.kinds.get(id(layer))
        if kind == "folded":
            return _activations.FoldedBatchNormalization(name=layer.name), None, None
        if kind not in ("weighted", "output", "other"):
            return None
        name = type(layer).__name__
        config = layer.get_config()
        weights = layer.get_weights()
        batch_norm = None
        if kind == "other":
            new = OTHER_CLASSES[name].from_config(
                {**config, "weight_quantizer": keras.saving.serialize_keras_object(
                    weight_quantizer)})
            if hasattr(new, "copy_weights"):  # weights inside sublayers or a cell
                return new, (lambda _: new.copy_weights(layer)), weights
            return new, (lambda _: new.set_quantized_weights(weights)), weights
        if kind == "weighted":
            config.update(weight_quantizer=keras.saving.serialize_keras_object(weight_quantizer),
                          preserve_zeros=preserve_zeros,
                          quantize_output=id(layer) not in self.fused)
            bn = self.fold_target.get(id(layer))
            if bn is not None:
                config["fold_batch_norm"] = {"epsilon": bn.epsilon}
                if not config.get("use_bias", True):
                    config["use_bias"] = True
                    weights = weights + [np.zeros(int(bn.moving_mean.shape[0]), weights[0].dtype)]
                batch_norm = _batch_norm_weights(bn)
            new = WEIGHTED_CLASSES[name].from_config(config)
        else:
            new = _activations.OUTPUT_CLASSES[name].from_config(config)
        return new, (lambda _: new.set_quantized_weights(weights, batch_norm)), weights


def _other_refusal(config):
    """Why a MultiHeadAttention / LayerNormalization / LSTM / GRU config has no QAT form."""
    if config.get("use_gate"):
        return "use_gate=True has no quantization-aware form yet"
    if config.get("rms_scaling"):
        return "rms_scaling=True has no quantization-aware form yet"
    if "recurrent_activation" in config:
        if not config.get("unroll"):
            return ("a recurrent loop cannot be made int8 by the TFLite converter; build it "
                    "with unroll=True (short, fixed-length sequences) or keep it float with "
                    "`layers=`")
        if config.get("reset_after") is False:
            return "a GRU with reset_after=False has no quantization-aware form yet"
        if (config.get("activation"), config.get("recurrent_activation")) != ("tanh",
                                                                               "sigmoid"):
            return "only the default tanh/sigmoid activations have int8 ops"
        if config.get("stateful"):
            return "a stateful recurrent layer has no quantization-aware form"
    return None


def _batch_norm_weights(bn):
    units = int(bn.moving_mean.shape[0])

    def value(variable, default):
        return keras.ops.convert_to_numpy(variable) if variable is not None else np.full(
            units, default, "float32")

    return {"gamma": value(bn.gamma, 1.0), "beta": value(bn.beta, 0.0),
            "moving_mean": value(bn.moving_mean, 0.0),
            "moving_variance": value(bn.moving_variance, 1.0)}
