"""Quantization-aware training for Keras 3 models: int8, prune-preserving int8, low-bit weights.

The Keras 3 counterpart of `tfopt.quantization`, in keras.ops (no tfmot).

Example:
  >>> from tfopt.keras3 import quantization
  >>> q = quantization.quantize(model, scheme="int8")
  >>> q.compile("adam", "sparse_categorical_crossentropy")
  >>> q.fit(x, y, epochs=1)
  >>> tfopt.export.tflite(q, "model.tflite", mode="int8")   # no representative data
"""

from tfopt.keras3.quantization._activations import QuantActivation
from tfopt.keras3.quantization._activations import QuantAdd
from tfopt.keras3.quantization._activations import QuantAverage
from tfopt.keras3.quantization._activations import QuantAveragePooling1D
from tfopt.keras3.quantization._activations import QuantAveragePooling2D
from tfopt.keras3.quantization._activations import QuantBatchNormalization
from tfopt.keras3.quantization._activations import QuantConcatenate
from tfopt.keras3.quantization._activations import QuantGlobalAveragePooling1D
from tfopt.keras3.quantization._activations import QuantGlobalAveragePooling2D
from tfopt.keras3.quantization._activations import QuantMultiply
from tfopt.keras3.quantization._activations import QuantReLU
from tfopt.keras3.quantization._activations import QuantRescaling
from tfopt.keras3.quantization._activations import QuantSoftmax
from tfopt.keras3.quantization._activations import QuantSubtract
from tfopt.keras3.quantization._attention import QuantLayerNormalization
from tfopt.keras3.quantization._attention import QuantMultiHeadAttention
from tfopt.keras3.quantization._layers import QuantConv1D
from tfopt.keras3.quantization._layers import QuantConv1DTranspose
from tfopt.keras3.quantization._layers import QuantConv2D
from tfopt.keras3.quantization._layers import QuantConv2DTranspose
from tfopt.keras3.quantization._layers import QuantDense
from tfopt.keras3.quantization._layers import QuantDepthwiseConv1D
from tfopt.keras3.quantization._layers import QuantDepthwiseConv2D
from tfopt.keras3.quantization._layers import QuantEinsumDense
from tfopt.keras3.quantization._layers import QuantizeMixin
from tfopt.keras3.quantization._layers import QuantSeparableConv1D
from tfopt.keras3.quantization._layers import QuantSeparableConv2D
from tfopt.keras3.quantization._recurrent import QuantGRU
from tfopt.keras3.quantization._recurrent import QuantGRUCell
from tfopt.keras3.quantization._recurrent import QuantLSTM
from tfopt.keras3.quantization._recurrent import QuantLSTMCell
from tfopt.keras3.quantization._quantize import SCHEMES
from tfopt.keras3.quantization._quantize import calibrate
from tfopt.keras3.quantization._quantize import quantize
from tfopt.keras3.quantization._quantizers import Binary
from tfopt.keras3.quantization._quantizers import FixedPoint
from tfopt.keras3.quantization._quantizers import Int8
from tfopt.keras3.quantization._quantizers import Quantizer
from tfopt.keras3.quantization._quantizers import Ternary
from tfopt.keras3.quantization._quantizers import get
from tfopt.keras3.quantization._ranges import FakeQuant
from tfopt.keras3.quantization._size import packed_weight_bytes
