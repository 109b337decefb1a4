"""LSTM for Keras 3 QAT: an unrolled loop whose every step is int8 ops with ranges.

A Keras 3 LSTM is a loop (TFLite WHILE), which the converter cannot make
int8 (see tfopt.export); with ``unroll=True`` the steps are plain ops, and
`QuantLSTMCell` gives each tensor of a step a range: the two projections,
their sum, the four gates, the two halves of the new carry, the carry and
its tanh, and the hidden state. The carry and hidden state share one range
each across steps (the previous step's value is the next step's input).
Kernels are quantized per tensor, as a Dense kernel is.
"""

import sys

import keras
from keras import ops

from tfopt.keras3.quantization import _layers
from tfopt.keras3.quantization import _quantizers
from tfopt.keras3.quantization import _ranges

_L = keras.layers
_STEPS = ("input_projection", "recurrent_projection", "gates", "input_gate", "forget_gate",
          "candidate", "output_gate", "kept", "added", "carry", "carry_activation", "hidden")


@keras.saving.register_keras_serializable(package="tfopt")
class QuantLSTMCell(_L.LSTMCell):
    """An `keras.layers.LSTMCell` (sigmoid/tanh) with quantized kernels and a range per tensor.

    Args:
      weight_quantizer: quantizer of the two kernels (per tensor). Defaults to "int8".
      decay: weight of the old range in the moving averages. Defaults to 0.99.
      **kwargs: `keras.layers.LSTMCell` arguments.
    """

    def __init__(self, *args, weight_quantizer="int8", decay=_ranges.DEFAULT_DECAY, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_quantizer = _quantizers.get(weight_quantizer)
        self.decay = _ranges.validate_decay(decay)
        self.calibrating = False

    def build(self, input_shape):
        super().build(input_shape)
        self._step_ranges = {name: _ranges.Range(self, name) for name in _STEPS}

    def call(self, inputs, states, training=False):
        update = bool(training) or self.calibrating

        def ranged(name, x):
            return self._step_ranges[name](x, update, self.decay)

        h_prev, c_prev = ranged("hidden", states[0]), ranged("carry", states[1])
        if training and 0.0 < self.dropout < 1.0:
            inputs = inputs * self.get_dropout_mask(inputs)
        kernel = _layers.quantize_weight(self.weight_quantizer, self.kernel, _layers.EINSUM,
                                         training)
        recurrent = _layers.quantize_weight(self.weight_quantizer, self.recurrent_kernel,
                                            _layers.EINSUM, training)
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

    def get_config(self):
        return {**super().get_config(),
                "weight_quantizer": keras.saving.serialize_keras_object(self.weight_quantizer),
                "decay": self.decay}


@keras.saving.register_keras_serializable(package="tfopt")
class QuantLSTM(_L.LSTM):
    """`keras.layers.LSTM` with ``unroll=True`` trained quantization-aware (`QuantLSTMCell`).

    Args:
      weight_quantizer: quantizer of the kernels. Defaults to "int8".
      decay: weight of the old range in the moving averages. Defaults to 0.99.
      **kwargs: `keras.layers.LSTM` arguments; ``unroll`` must be True.
    """

    def __init__(self, *args, weight_quantizer="int8", decay=_ranges.DEFAULT_DECAY, **kwargs):
        if not kwargs.get("unroll"):
            raise ValueError("QuantLSTM needs unroll=True: the TFLite converter cannot make an "
                             "LSTM loop int8.")
        kwargs["use_cudnn"] = False  # the cell's own step, never a fused kernel
        # LSTM.__init__ builds its cell through its module's LSTMCell: for the
        # length of this call that name makes a QuantLSTMCell.
        module = sys.modules[_L.LSTM.__module__]
        original = module.LSTMCell
        quantizer = keras.saving.serialize_keras_object(_quantizers.get(weight_quantizer))
        module.LSTMCell = lambda *a, **k: QuantLSTMCell(*a, weight_quantizer=quantizer,
                                                        decay=decay, **k)
        try:
            super().__init__(*args, **kwargs)
        finally:
            module.LSTMCell = original

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if initial_state is None:
            # Zeros computed from the input (int8 SUB and TILE): Keras'
            # own zero state is a float FILL over the free batch size.
            first = sequences[:, 0, :1]
            zero = self.cell._step_ranges["hidden"](ops.subtract(first, first), False)
            zeros = ops.tile(zero, (1, self.units))
            initial_state = [zeros, zeros]
        return super().call(sequences, initial_state=initial_state, mask=mask,
                            training=training)

    def copy_weights(self, source):
        """Copies a `keras.layers.LSTM`'s kernel, recurrent kernel and bias."""
        for variable, value in zip(self.cell.weights, source.get_weights()):
            variable.assign(value)

    def get_config(self):
        return {**super().get_config(),
                "weight_quantizer": keras.saving.serialize_keras_object(
                    self.cell.weight_quantizer),
                "decay": self.cell.decay}
