"""Keras 3 layers that train quantization-aware: fake-quantized weights and outputs.

`QuantizeMixin` adds QAT to a Keras 3 layer class. During `call` each
quantized weight's attribute is replaced by its quantized value (the mechanism
`tfopt.keras3.pruning` uses for masks: Keras 3's Dense, EinsumDense and
Conv1D/2D/3D read their kernel through a property over ``_kernel``, the
depthwise and transposed convolutions read the attribute itself; replacing the
attribute covers both). The output, after the layer's activation, goes through
an 8-bit fake quant over a moving range (`_ranges.Range`).

Optional parts, all stored as variables of the layer so a `.keras` file
carries them:
  - a BatchNormalization folded into the kernel and bias (``fold_batch_norm``),
    in its inference form: ``kernel * gamma / sqrt(var + eps)`` is what gets
    fake-quantized, with the moving statistics frozen and gamma/beta trained;
  - zero masks (``preserve_zeros``): weights that were zero when `quantize`
    built the layer (a stripped pruned model) stay zero.

`QuantDense`, `QuantConv2D`, ... are the built-in weighted layers with the
mixin; `tfopt.keras3.quantization._activations` has the weightless ones.
"""

import keras
from keras import ops

from tfopt.keras3 import _signatures
from tfopt.keras3._weights import private_name
from tfopt.keras3.quantization import _quantizers
from tfopt.keras3.quantization import _ranges

# How a weight's output channels lie, which sets its per-channel axes.
DENSE, EINSUM, CONV, CONV1D = "dense", "einsum", "conv", "conv1d"
DEPTHWISE, DEPTHWISE1D, TRANSPOSE = "depthwise", "depthwise1d", "transpose"
# Trailing axes that index an output channel (a transposed kernel's are swapped last).
_CHANNELS = {DENSE: 1, EINSUM: 0, CONV: 1, CONV1D: 1, DEPTHWISE: 2, DEPTHWISE1D: 2,
             TRANSPOSE: 1}
# Where the converter takes a per-channel fake quant on the kernel as it is.
_PER_CHANNEL_OP = frozenset({CONV, DEPTHWISE})
# Activations TFLite fuses into the op: no range needed before them.
_FUSED_ACTIVATIONS = frozenset({"linear", "relu", "relu6"})


def base_class(cls):
    """The Keras layer class a Quant* class adds QAT to (QuantDense -> Dense)."""
    mro = cls.__mro__
    return mro[mro.index(QuantizeMixin) + 1]


class QuantizeMixin:
    """Quantization-aware training for a Keras 3 layer class.

    Mixed into `QuantDense`, `QuantConv2D`, `QuantAdd`, ...; use
    `tfopt.keras3.quantization.quantize` rather than building them by hand: it
    picks the layers, folds BatchNormalization and quantizes the model inputs.

    Args:
      weight_quantizer: quantizer of the layer's kernels: a name ("int8",
        "binary", "ternary", "fixed_point"), a quantizer instance or its config.
        Defaults to "int8". Ignored by weightless layers.
      quantize_output: fake-quantize the output (after the activation).
        Defaults to True.
      fold_batch_norm: None, or ``{"epsilon": e}`` for a layer that carries the
        folded BatchNormalization that followed it. Defaults to None.
      preserve_zeros: keep weights that are zero now at zero. Defaults to False.
      decay: weight of the old range in the output range's moving average.
        Defaults to 0.99.
      **kwargs: the base layer's arguments.
    """

    # (weight attribute, layout) pairs the class quantizes.
    quantized_weights = ()

    def __init__(self, *args, weight_quantizer="int8", quantize_output=True,
                 fold_batch_norm=None, preserve_zeros=False, decay=_ranges.DEFAULT_DECAY,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_quantizer = _quantizers.get(weight_quantizer)
        self.quantize_output = bool(quantize_output)
        if fold_batch_norm is not None and not self.quantized_weights:
            raise ValueError(f"{type(self).__name__} has no kernel to fold a "
                             "BatchNormalization into.")
        self.fold_batch_norm = None if fold_batch_norm is None else {
            "epsilon": float(fold_batch_norm["epsilon"])}
        self.preserve_zeros = bool(preserve_zeros)
        self.decay = _ranges.validate_decay(decay)
        # Set by tfopt.keras3.quantization.calibrate: ranges move without training.
        self.calibrating = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if issubclass(cls, keras.layers.Layer):  # not for mixins of the mixin
            _signatures.adopt(cls, base_class(cls))

    def _build(self, *args, **kwargs):
        base_class(type(self)).build(self, *args, **kwargs)
        self._extra = []
        self._zero_masks = {}
        if self.preserve_zeros:
            for attr, _ in self.quantized_weights:
                variable = getattr(self, private_name(self, attr))
                self._zero_masks[attr] = self._add_extra(
                    f"{attr}_zero_mask", variable.shape, "ones", trainable=False)
        self._batch_norm = None
        if self.fold_batch_norm is not None:
            units = self._folded_units()
            self._batch_norm = {
                name: self._add_extra(f"batch_norm_{name}", (units,), init, trainable)
                for name, init, trainable in (("gamma", "ones", True), ("beta", "zeros", True),
                                              ("moving_mean", "zeros", False),
                                              ("moving_variance", "ones", False))}
        self._output_range = _ranges.Range(self, "output") if self.quantize_output else None
        self._extra.extend(self._output_range.variables if self._output_range else ())
        self._activation_range = None
        if self.quantized_weights and _activation_name(self) not in _FUSED_ACTIVATIONS:
            self._activation_range = _ranges.Range(self, "pre_activation")
            self._extra.extend(self._activation_range.variables)
        self._build_ranges()

    def _build_ranges(self):
        """Hook for ranges inside the layer (a separable convolution's middle)."""

    def _add_extra(self, name, shape, initializer, trainable):
        variable = self.add_weight(name=name, shape=shape, initializer=initializer,
                                   trainable=trainable)
        self._extra.append(variable)
        return variable

    def _folded_units(self):
        kernel = getattr(self, private_name(self, self.quantized_weights[0][0]))
        shape = tuple(kernel.shape)
        return shape[-1] * shape[-2] if _CHANNELS[self.quantized_weights[0][1]] == 2 \
            else shape[-1]

    # The forward pass ------------------------------------------------------------

    def _call(self, base_call, args, kwargs, training):
        update = bool(training) or self.calibrating
        saved = []
        try:
            for attr, value in self.quantized_values(training).items():
                owner_attr = private_name(self, attr)
                saved.append((owner_attr, getattr(self, owner_attr)))
                # Bypasses Keras' attribute tracking: the value lives for this call only.
                object.__setattr__(self, owner_attr, value)
            outputs = self._quantized_call(base_call, args, kwargs, update)
        finally:
            for owner_attr, variable in saved:
                object.__setattr__(self, owner_attr, variable)
        if self._output_range is not None:
            outputs = self._output_range(outputs, update, self.decay)
        return outputs

    def _quantized_call(self, base_call, args, kwargs, update):
        if self._activation_range is None:
            return base_call(*args, **kwargs)
        # TFLite runs this activation as an op of its own, whose input needs a range.
        activation = self.activation
        object.__setattr__(self, "activation", None)
        try:
            outputs = base_call(*args, **kwargs)
        finally:
            object.__setattr__(self, "activation", activation)
        return activation(self._activation_range(outputs, update, self.decay))

    def quantized_values(self, training=False):
        """{attribute: value the layer computes with}: quantized kernels, folded bias."""
        values = {}
        scale = None
        if self._batch_norm is not None:
            bn = self._batch_norm
            scale = bn["gamma"] * ops.rsqrt(bn["moving_variance"] + self.fold_batch_norm["epsilon"])
            bias = ops.convert_to_tensor(self.bias)
            values["bias"] = bn["beta"] + (bias - bn["moving_mean"]) * scale
        for index, (attr, layout) in enumerate(self.quantized_weights):
            w = ops.convert_to_tensor(getattr(self, private_name(self, attr)))
            if attr in self._zero_masks:
                w = w * self._zero_masks[attr]
            if scale is not None and index == 0:
                w = w * ops.reshape(scale, tuple(w.shape[-2:]) if _CHANNELS[layout] == 2
                                    else (-1,))
            values[attr] = quantize_weight(self.weight_quantizer, w, layout, training)
        return values

    # Bookkeeping -------------------------------------------------------------------

    def base_variables(self):
        """The base layer's variables (no masks, folded statistics or ranges), in order."""
        extra = {id(v) for v in self._extra}
        return [v for v in self.weights if id(v) not in extra]

    def set_quantized_weights(self, base_weights, batch_norm=None):
        """Sets the base weights, the folded BatchNormalization's, and the zero masks.

        Args:
          base_weights: the base layer's weights, in its `weights` order.
          batch_norm: ``{"gamma", "beta", "moving_mean", "moving_variance"}``
            arrays for a layer with ``fold_batch_norm``.
        """
        variables = self.base_variables()
        if len(base_weights) != len(variables):
            raise ValueError(f"{self.name!r} has {len(variables)} base weights, got "
                             f"{len(base_weights)}.")
        for variable, value in zip(variables, base_weights):
            variable.assign(value)
        for name, value in (batch_norm or {}).items():
            self._batch_norm[name].assign(value)
        for attr, mask in self._zero_masks.items():
            weight = ops.convert_to_numpy(getattr(self, private_name(self, attr)))
            mask.assign((weight != 0).astype(weight.dtype))

    def set_calibrating(self, on):
        self.calibrating = bool(on)

    # Saving --------------------------------------------------------------------------

    def save_own_variables(self, store):
        # Dense and the convolutions save their `kernel` property (here: quantized)
        # and bias only; every variable must be saved, by position.
        keras.layers.Layer.save_own_variables(self, store)

    def load_own_variables(self, store):
        keras.layers.Layer.load_own_variables(self, store)

    def get_config(self):
        return {**super().get_config(),
                "weight_quantizer": keras.saving.serialize_keras_object(self.weight_quantizer),
                "quantize_output": self.quantize_output,
                "fold_batch_norm": self.fold_batch_norm,
                "preserve_zeros": self.preserve_zeros,
                "decay": self.decay}


def _activation_name(layer):
    activation = getattr(layer, "activation", None)
    return "linear" if activation is None else getattr(activation, "__name__", "custom")


def scale_axes(quantizer, layout):
    """How many trailing axes of a weight index its scales (a transposed kernel's
    channel axis counted as last); 0: one scale for the whole tensor."""
    if isinstance(quantizer, _quantizers.Int8) and layout not in _PER_CHANNEL_OP:
        return 0
    return _CHANNELS[layout] if quantizer.per_channel else 0


def quantize_weight(quantizer, w, layout, training):
    """`w` through `quantizer`, with the channel axes and int8 op its `layout` allows."""
    int8_op = layout in _PER_CHANNEL_OP
    if layout == TRANSPOSE and not isinstance(quantizer, _quantizers.Int8):
        # Output channels are the second-last axis of a transposed kernel.
        swapped = ops.swapaxes(w, -1, -2)
        return ops.swapaxes(quantizer(swapped, 1, training, int8_op), -1, -2)
    return quantizer(w, _CHANNELS[layout], training, int8_op)


def _register(cls):
    return keras.saving.register_keras_serializable(package="tfopt")(cls)


_L = keras.layers


class _SeparableMixin(QuantizeMixin):
    """A separable convolution computed as its two halves, the middle fake-quantized.

    The converter makes a separable convolution a DEPTHWISE_CONV_2D and a
    CONV_2D; the tensor between them needs a range of its own.
    """

    quantized_weights = (("depthwise_kernel", DEPTHWISE), ("pointwise_kernel", CONV))

    def _build_ranges(self):
        self._middle_range = _ranges.Range(self, "depthwise_output")
        self._extra.extend(self._middle_range.variables)

    def _quantized_call(self, base_call, args, kwargs, update):
        (inputs,) = args
        middle = ops.depthwise_conv(inputs, self.depthwise_kernel, strides=self.strides,
                                    padding=self.padding, data_format=self.data_format,
                                    dilation_rate=self.dilation_rate)
        middle = self._middle_range(middle, update, self.decay)
        outputs = ops.conv(middle, self.pointwise_kernel, strides=1, padding="valid",
                           data_format=self.data_format)
        if self.use_bias:
            shape = ((1,) * (self.rank + 1) + (self.filters,) if self.data_format ==
                     "channels_last" else (1, self.filters) + (1,) * self.rank)
            outputs = ops.add(outputs, ops.reshape(self.bias, shape))
        if self.activation is None:
            return outputs
        if self._activation_range is not None:
            outputs = self._activation_range(outputs, update, self.decay)
        return self.activation(outputs)


@_register
class QuantDense(QuantizeMixin, _L.Dense):
    """`keras.layers.Dense` trained quantization-aware (see `QuantizeMixin`)."""

    quantized_weights = (("kernel", DENSE),)


@_register
class QuantEinsumDense(QuantizeMixin, _L.EinsumDense):
    """`keras.layers.EinsumDense` trained quantization-aware (per-tensor kernel)."""

    quantized_weights = (("kernel", EINSUM),)


@_register
class QuantConv1D(QuantizeMixin, _L.Conv1D):
    """`keras.layers.Conv1D` trained quantization-aware (per-tensor kernel)."""

    quantized_weights = (("kernel", CONV1D),)


@_register
class QuantConv2D(QuantizeMixin, _L.Conv2D):
    """`keras.layers.Conv2D` trained quantization-aware (see `QuantizeMixin`)."""

    quantized_weights = (("kernel", CONV),)


@_register
class QuantDepthwiseConv1D(QuantizeMixin, _L.DepthwiseConv1D):
    """`keras.layers.DepthwiseConv1D` trained quantization-aware (per-tensor kernel)."""

    quantized_weights = (("kernel", DEPTHWISE1D),)


@_register
class QuantDepthwiseConv2D(QuantizeMixin, _L.DepthwiseConv2D):
    """`keras.layers.DepthwiseConv2D` trained quantization-aware (see `QuantizeMixin`)."""

    quantized_weights = (("kernel", DEPTHWISE),)


@_register
class QuantSeparableConv1D(_SeparableMixin, _L.SeparableConv1D):
    """`keras.layers.SeparableConv1D` trained quantization-aware (per-tensor kernels)."""

    quantized_weights = (("depthwise_kernel", DEPTHWISE1D), ("pointwise_kernel", CONV1D))


@_register
class QuantSeparableConv2D(_SeparableMixin, _L.SeparableConv2D):
    """`keras.layers.SeparableConv2D` trained quantization-aware (see `QuantizeMixin`)."""


@_register
class QuantConv1DTranspose(QuantizeMixin, _L.Conv1DTranspose):
    """`keras.layers.Conv1DTranspose` trained quantization-aware (per-tensor kernel)."""

    quantized_weights = (("kernel", TRANSPOSE),)


@_register
class QuantConv2DTranspose(QuantizeMixin, _L.Conv2DTranspose):
    """`keras.layers.Conv2DTranspose` trained quantization-aware (per-tensor kernel)."""

    quantized_weights = (("kernel", TRANSPOSE),)
