"""LSTM and GRU for Keras 3 QAT: unrolled loops whose every step is int8 ops with ranges.

A Keras 3 LSTM or GRU is a loop (TFLite WHILE), which the converter cannot
make int8 (see tfopt.export); with ``unroll=True`` the steps are plain ops,
and `QuantLSTMCell` / `QuantGRUCell` give each tensor of a step a range (the
projections, their sums, the gates, the products, the states). A state
shares one range across steps (the previous step's value is the next step's
input). Kernels are quantized per tensor, as a Dense kernel is.
"""

import sys

import keras
from keras import ops

from tfopt.keras3.quantization import _layers
from tfopt.keras3.quantization import _quantizers
from tfopt.keras3.quantization import _ranges

_L = keras.layers


class _CellMixin:
    """Quantized kernels, one range per named step, and the config of both."""

    steps = ()

    def __init__(self, *args, weight_quantizer="int8", decay=_ranges.DEFAULT_DECAY, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_quantizer = _quantizers.get(weight_quantizer)
        self.decay = _ranges.validate_decay(decay)
        self.calibrating = False

    def build(self, input_shape):
        super().build(input_shape)
        self._step_ranges = {name: _ranges.Range(self, name) for name in self.steps}

    def _step(self, training):
        """(ranged, kernel, recurrent_kernel) for one step."""
        update = bool(training) or self.calibrating

        def ranged(name, x):
            return self._step_ranges[name](x, update, self.decay)

        kernels = (_layers.quantize_weight(self.weight_quantizer, k, _layers.EINSUM, training)
                   for k in (self.kernel, self.recurrent_kernel))
        return (ranged, *kernels)

    def get_config(self):
        return {**super().get_config(),
                "weight_quantizer": keras.saving.serialize_keras_object(self.weight_quantizer),
                "decay": self.decay}


@keras.saving.register_keras_serializable(package="tfopt")
class QuantLSTMCell(_CellMixin, _L.LSTMCell):
    """A `keras.layers.LSTMCell` (tanh/sigmoid) with quantized kernels and a range per tensor.

    Args:
      weight_quantizer: quantizer of the two kernels (per tensor). Defaults to "int8".
      decay: weight of the old range in the moving averages. Defaults to 0.99.
      **kwargs: `keras.layers.LSTMCell` arguments.
    """

    steps = ("input_projection", "recurrent_projection", "gates", "input_gate",
             "forget_gate", "candidate", "output_gate", "kept", "added", "carry",
             "carry_activation", "hidden")

    def call(self, inputs, states, training=False):
        ranged, kernel, recurrent = self._step(training)
        h_prev, c_prev = ranged("hidden", states[0]), ranged("carry", states[1])
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        z = ops.matmul(inputs, kernel)
        if self.use_bias:
            z = ops.add(z, self.bias)
        z = ops.add(ranged("input_projection", z),
                    ranged("recurrent_projection", ops.matmul(h_prev, recurrent)))
        z0, z1, z2, z3 = ops.split(ranged("gates", z), 4, axis=1)
        i = ranged("input_gate", ops.sigmoid(z0))
        f = ranged("forget_gate", ops.sigmoid(z1))
        g = ranged("candidate", ops.tanh(z2))
        o = ranged("output_gate", ops.sigmoid(z3))
        c = ranged("carry", ops.add(ranged("kept", f * c_prev), ranged("added", i * g)))
        h = ranged("hidden", o * ranged("carry_activation", ops.tanh(c)))
        return h, [h, c]


@keras.saving.register_keras_serializable(package="tfopt")
class QuantGRUCell(_CellMixin, _L.GRUCell):
    """A `keras.layers.GRUCell` (tanh/sigmoid, reset_after) with a range per tensor.

    Args:
      weight_quantizer: quantizer of the two kernels (per tensor). Defaults to "int8".
      decay: weight of the old range in the moving averages. Defaults to 0.99.
      **kwargs: `keras.layers.GRUCell` arguments (``reset_after=True``).
    """

    steps = ("input_projection", "recurrent_projection", "update_sum", "reset_sum",
             "update_gate", "reset_gate", "reset_recurrent", "candidate_sum", "candidate",
             "kept", "one_minus_update", "added", "hidden")

    def call(self, inputs, states, training=False):
        ranged, kernel, recurrent = self._step(training)
        h_prev = ranged("hidden", states[0] if keras.tree.is_nested(states) else states)
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        x = ops.matmul(inputs, kernel)
        h = ops.matmul(h_prev, recurrent)
        if self.use_bias:
            x, h = ops.add(x, self.bias[0]), ops.add(h, self.bias[1])
        x_z, x_r, x_h = ops.split(ranged("input_projection", x), 3, axis=-1)
        h_z, h_r, h_h = ops.split(ranged("recurrent_projection", h), 3, axis=-1)
        z = ranged("update_gate", ops.sigmoid(ranged("update_sum", x_z + h_z)))
        r = ranged("reset_gate", ops.sigmoid(ranged("reset_sum", x_r + h_r)))
        candidate = ranged("candidate_sum", x_h + ranged("reset_recurrent", r * h_h))
        candidate = ranged("candidate", ops.tanh(candidate))
        kept = ranged("kept", z * h_prev)
        added = ranged("added", ranged("one_minus_update", 1.0 - z) * candidate)
        new = ranged("hidden", kept + added)
        return new, [new] if keras.tree.is_nested(states) else new


class _RecurrentMixin:
    """An unrolled Keras RNN layer built with its Quant*Cell, started from int8 zeros."""

    cell_class = None

    def __init__(self, *args, weight_quantizer="int8", decay=_ranges.DEFAULT_DECAY, **kwargs):
        name = type(self).__name__
        if not kwargs.get("unroll"):
            raise ValueError(f"{name} needs unroll=True: the TFLite converter cannot make a "
                             "recurrent loop int8.")
        kwargs["use_cudnn"] = False  # the cell's own step, never a fused kernel
        # The base __init__ builds its cell through its module's cell class name: for
        # the length of this call that name makes the quantized cell.
        base = type(self).__mro__[type(self).__mro__.index(_RecurrentMixin) + 1]
        module = sys.modules[base.__module__]
        cell_name = self.cell_class.__mro__[2].__name__
        original = getattr(module, cell_name)
        quantizer = keras.saving.serialize_keras_object(_quantizers.get(weight_quantizer))
        setattr(module, cell_name, lambda *a, **k: self.cell_class(
            *a, weight_quantizer=quantizer, decay=decay, **k))
        try:
            super().__init__(*args, **kwargs)
        finally:
            setattr(module, cell_name, original)

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is None:
            # Zeros computed from the input as int8 ops (SUB, TILE): Keras' own zero
            # state is a float FILL over the free batch size.
            first = sequences[:, 0, :1]
            zero = self.cell._step_ranges["hidden"](ops.subtract(first, first), False)
            zeros = ops.tile(zero, (1, self.units))
            initial_state = [zeros] * len(keras.tree.flatten(self.cell.state_size))
        return super().call(sequences, initial_state=initial_state, mask=mask,
                            training=training)

    def copy_weights(self, source):
        """Copies the float layer's kernel, recurrent kernel and bias."""
        for variable, value in zip(self.cell.weights, source.get_weights()):
            variable.assign(value)

    def get_config(self):
        return {**super().get_config(),
                "weight_quantizer": keras.saving.serialize_keras_object(
                    self.cell.weight_quantizer),
                "decay": self.cell.decay}


@keras.saving.register_keras_serializable(package="tfopt")
class QuantLSTM(_RecurrentMixin, _L.LSTM):
    """`keras.layers.LSTM` with ``unroll=True`` trained quantization-aware (`QuantLSTMCell`).

    Args:
      weight_quantizer: quantizer of the kernels. Defaults to "int8".
      decay: weight of the old range in the moving averages. Defaults to 0.99.
      **kwargs: `keras.layers.LSTM` arguments; ``unroll`` must be True.
    """

    cell_class = QuantLSTMCell


@keras.saving.register_keras_serializable(package="tfopt")
class QuantGRU(_RecurrentMixin, _L.GRU):
    """`keras.layers.GRU` with ``unroll=True`` trained quantization-aware (`QuantGRUCell`).

    Args:
      weight_quantizer: quantizer of the kernels. Defaults to "int8".
      decay: weight of the old range in the moving averages. Defaults to 0.99.
      **kwargs: `keras.layers.GRU` arguments; ``unroll`` must be True and
        ``reset_after`` True (the default).
    """

    cell_class = QuantGRUCell
