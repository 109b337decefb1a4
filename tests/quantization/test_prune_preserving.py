"""Prune-preserving QAT keeps a pruned model's zeros (also after a reload); int8 QAT does not."""

import numpy as np
import pytest
import tensorflow_model_optimization as tfmot
from ai_edge_litert.interpreter import Interpreter

from tfopt import export
from tfopt import pruning
from tfopt import quantization
from tests.conftest import compile_model, small_cnn

QuantizeWrapper = tfmot.quantization.keras.QuantizeWrapperV2


@pytest.fixture(scope="module")
def pruned(digits):
    x, y = digits
    model = pruning.prune(small_cnn(), pruning.OneShot(0.6))
    compile_model(model).fit(x[:128], y[:128], batch_size=32, verbose=0,
                             callbacks=[pruning.UpdatePruningStep()])
    return pruning.strip(model)


def _kernels(model):
    return {layer.layer.name: next(w.numpy() for w in layer.weights if w.name.endswith("kernel:0"))
            for layer in model.layers if isinstance(layer, QuantizeWrapper)
            and layer.layer.name in ("conv_a", "conv_b", "hidden", "logits")}


@pytest.mark.parametrize("scheme,keeps_zeros", [("int8_prune_preserving", True), ("int8", False)])
def test_zeros_after_qat_training(pruned, digits, scheme, keeps_zeros):
    x, y = digits
    zeros = {layer.name: layer.get_weights()[0] == 0 for layer in pruned.layers
             if layer.name in ("conv_a", "conv_b", "hidden", "logits")}
    assert all(abs(mask.mean() - 0.6) < 0.02 for mask in zeros.values())
    q = compile_model(quantization.quantize(pruned, scheme, representative_data=x[:128]), lr=1e-2)
    q.fit(x[:128], y[:128], batch_size=32, verbose=0)
    for name, kernel in _kernels(q).items():
        regrown = np.mean(kernel[zeros[name]] != 0)
        if keeps_zeros:
            assert regrown == 0.0, name
        else:
            assert regrown > 0.1, (name, regrown)


def test_zeros_survive_a_keras_reload_and_the_int8_file(pruned, digits, tmp_path):
    x, y = digits
    zeros = pruned.get_layer("hidden").get_weights()[0] == 0
    q = compile_model(quantization.quantize(pruned, "int8_prune_preserving",
                                            representative_data=x[:128]))
    q.save(str(tmp_path / "pp.keras"))
    # tfmot's own prune-preserving config loses its quantizer and mask here.
    loaded = compile_model(quantization.load_model(str(tmp_path / "pp.keras")), lr=1e-2)
    loaded.fit(x[:128], y[:128], batch_size=32, verbose=0)
    assert np.all(_kernels(loaded)["hidden"][zeros] == 0)
    path = str(tmp_path / "pp.tflite")
    export.tflite(loaded, path, mode="int8")
    interpreter = Interpreter(model_path=path)
    weights = [interpreter.get_tensor(d["index"]) for d in interpreter.get_tensor_details()
               if "quant_hidden/" in d["name"] and tuple(d["shape"]) == zeros.T.shape]
    assert len(weights) == 1 and np.all(weights[0][zeros.T] == 0)
