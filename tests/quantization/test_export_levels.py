"""Low-bit QAT models convert to int8 files whose weights take only the quantized levels.

No representative data: the converter takes every range from the QAT model.
Weight tensors are read back from the file with LiteRT; axis 0 of a TFLite
Conv2D or FullyConnected weight is the output channel.
"""

import numpy as np
import pytest
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter

from tfopt import export
from tfopt import quantization

L = keras.layers
LOW_BIT = ("conv", "conv_bn", "dense")  # "first" and "last" stay int8


def _model():
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(8, 3, activation="relu", name="first"),
        L.Conv2D(8, 3, name="conv"), L.ReLU(name="relu"),  # tfmot's ReLU fusing drops weights
        L.Conv2D(6, 3, name="conv_bn"), L.BatchNormalization(name="bn"), L.ReLU(),  # BN folded in
        L.Flatten(), L.Dense(16, activation="relu", name="dense"), L.Dense(10, name="last")])


def _int8_weights(path):
    """{layer: int8 weight tensor}, the weight being input 1 of its CONV_2D / FULLY_CONNECTED op."""
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    details = {d["index"]: d for d in interpreter.get_tensor_details()}
    weights = {}
    for op in interpreter._get_ops_details():
        if op["op_name"] not in ("CONV_2D", "FULLY_CONNECTED"):
            continue
        weight = details[op["inputs"][1]]
        owner = next(layer for layer in LOW_BIT + ("first", "last")
                     if f"quant_{layer}/" in weight["name"])
        assert np.dtype(weight["dtype"]) == np.int8, weight
        weights[owner] = interpreter.get_tensor(weight["index"])
    return weights


def _levels_per_channel(tensor):
    return [len(np.unique(channel)) for channel in tensor.reshape(tensor.shape[0], -1)]


@pytest.mark.parametrize("scheme,max_levels", [
    ("binary", 2), ("ternary", 3), (quantization.FixedPoint(4), 2 ** 4 - 1)], ids=str)
def test_int8_file_holds_only_the_quantized_levels(scheme, max_levels, digits, tmp_path):
    x, _ = digits
    q = quantization.quantize(_model(), scheme, representative_data=x[:128])
    path = str(tmp_path / "model.tflite")
    export.tflite(q, path, mode="int8")
    weights = _int8_weights(path)
    assert set(weights) == set(LOW_BIT) | {"first", "last"}
    for layer in LOW_BIT:
        levels = _levels_per_channel(weights[layer])
        assert max(levels) <= max_levels, (layer, levels)
        if scheme == "binary":
            assert min(levels) == 2, (layer, levels)
    # The plain low-bit layers use the int8 grid exactly: binary and ternary put
    # +-scale at +-127; FixedPoint(4) puts level k at 18 * k (conv) or
    # round(127 * k / 7) (dense, quantized by the converter). The int8 layers do not.
    for layer, kind in (("conv", "conv"), ("dense", "dense")):
        assert set(np.unique(weights[layer])) <= _grid(scheme, kind), layer
    for layer, kind in (("first", "conv"), ("last", "dense")):
        assert not set(np.unique(weights[layer])) <= _grid(scheme, kind), layer


def _grid(scheme, kind):
    if scheme in ("binary", "ternary"):
        return {-127, 0, 127}
    if kind == "conv":
        return {18 * k for k in range(-7, 8)}
    return {int(np.round(127 * k / 7)) for k in range(-7, 8)}
