"""Quantization-aware training: tfmot's int8 QAT, binary, ternary and n-bit weights.

Example:
  >>> from tfopt import quantization
  >>> q = quantization.quantize(model, scheme="ternary", representative_data=x[:256])
  >>> q.compile("adam", "sparse_categorical_crossentropy")
  >>> q.fit(x, y, epochs=2)
  >>> quantization.packed_weight_bytes(q)
"""

from tfopt import _keras2  # noqa: F401  (first: tfmot must not rebind tf.keras)
from tfopt.quantization._base import Quantizer
from tfopt.quantization._binary import Binary
from tfopt.quantization._binary import Ternary
from tfopt.quantization._configs import LayerQuantizeConfig
from tfopt.quantization._fixed_point import FixedPoint
from tfopt.quantization._lookup import SCHEMES
from tfopt.quantization._lookup import get
from tfopt.quantization._load import load_model
from tfopt.quantization._quantize import quantize
from tfopt.quantization._size import packed_weight_bytes
