"""Names to objects: `get` for quantizers, `resolve_scheme` for `quantize(scheme=...)`."""

import tf_keras as keras
from tensorflow_model_optimization.python.core.quantization.keras import (
    quantizers as tfmot_quantizers,
)

from tfopt.quantization import _base
from tfopt.quantization._binary import Binary
from tfopt.quantization._binary import Ternary
from tfopt.quantization._fixed_point import FixedPoint

_QUANTIZERS = {
    "binary": Binary,
    "ste_sign": Binary,
    "ternary": Ternary,
    "ste_ternary": Ternary,
    "fixed_point": FixedPoint,
}

INT8 = "int8"
INT8_PRUNE_PRESERVING = "int8_prune_preserving"
SCHEMES = (INT8, INT8_PRUNE_PRESERVING, "binary", "ternary")


def get(identifier):
    """Resolves a quantizer from a name, an instance or a Keras config dict.

    Names: "binary" / "ste_sign" (`Binary`), "ternary" / "ste_ternary"
    (`Ternary`), "fixed_point" (``FixedPoint(8)``). tfmot quantizers pass
    through unchanged.

    Args:
      identifier: a name, a `tfopt.quantization.Quantizer` or
        ``tfmot.quantization.keras.quantizers.Quantizer`` instance, or the dict
        ``keras.saving.serialize_keras_object`` made of one.

    Returns:
      A quantizer instance.

    Example:
      >>> get("ste_sign")
      Binary(per_channel=True, clip=1.0)
    """
    if isinstance(identifier, tfmot_quantizers.Quantizer):
        return identifier
    if isinstance(identifier, str) and identifier.lower() in _QUANTIZERS:
        return _QUANTIZERS[identifier.lower()]()
    if isinstance(identifier, dict) and "class_name" in identifier:
        restored = keras.saving.deserialize_keras_object(identifier)
        if isinstance(restored, tfmot_quantizers.Quantizer):
            return restored
    raise ValueError(
        f"Unknown quantizer {identifier!r}. Use one of {sorted(_QUANTIZERS)}, an instance "
        "such as tfopt.quantization.FixedPoint(4), a "
        "tfmot.quantization.keras.quantizers.Quantizer, or a serialized quantizer config."
    )


def resolve_scheme(scheme):
    """``(base, weight_quantizer)`` for a `quantize` scheme.

    `base` is "int8" or "int8_prune_preserving"; `weight_quantizer` is None for
    plain 8-bit QAT, or the tfopt quantizer for low-bit weights.
    """
    if isinstance(scheme, _base.Quantizer):
        return INT8, scheme
    if isinstance(scheme, str):
        name = scheme.lower()
        if name in (INT8, INT8_PRUNE_PRESERVING):
            return name, None
        if name in ("binary", "ternary"):
            return INT8, get(name)
    raise ValueError(
        f"Unknown quantization scheme {scheme!r}. Use one of {list(SCHEMES)}, or a tfopt "
        "weight quantizer such as tfopt.quantization.FixedPoint(bits=4), "
        "tfopt.quantization.Binary() or tfopt.quantization.Ternary()."
    )
