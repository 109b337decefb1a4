"""Quantization-aware training under the JAX backend, then reload and export under TensorFlow."""

import keras
import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tests.keras3.conftest import run_under_jax
from tfopt import export
from tfopt.keras3 import quantization  # registers the layers for loading

# Runs in a child process: Keras picks its backend once, at import.
_TRAIN_UNDER_JAX = """
import json, sys
import keras, numpy as np
from tfopt.keras3 import quantization
assert keras.backend.backend() == "jax", keras.backend.backend()
out = sys.argv[1]
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).random((96, 8, 8, 1), dtype=np.float32)
y = (x[:, :4].mean(axis=(1, 2, 3)) > x[:, 4:].mean(axis=(1, 2, 3))).astype("int32")
L = keras.layers
model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="conv"),
                          L.BatchNormalization(name="bn"), L.ReLU(), L.Flatten(),
                          L.Dense(2, name="logits")])
qat = quantization.quantize(model, "int8")
before = [keras.ops.convert_to_numpy(v).copy() for v in qat.non_trainable_variables]
qat.compile(keras.optimizers.Adam(1e-3),
            keras.losses.SparseCategoricalCrossentropy(from_logits=True))
qat.fit(x, y, batch_size=16, epochs=2, verbose=0)
after = [keras.ops.convert_to_numpy(v) for v in qat.non_trainable_variables]
qat.save(out + "/qat.keras")
np.save(out + "/x.npy", x)
np.save(out + "/predictions.npy", qat.predict(x, verbose=0))
print(json.dumps({"moved": sum(not np.array_equal(a, b) for a, b in zip(before, after)),
                  "state": len(after)}))
"""


# Slow (about 45 s: a second Python with JAX compiling the training step), so it runs
# with `make test-slow`.
@pytest.mark.slow
def test_a_model_qat_trained_under_jax_reloads_and_exports_a_fully_int8_file(tmp_path):
    report = run_under_jax(_TRAIN_UNDER_JAX, tmp_path)
    assert report["moved"] >= 3, report  # ranges (EMA) and folded statistics updated under JAX
    assert keras.backend.backend() == "tensorflow"
    loaded = keras.saving.load_model(str(tmp_path / "qat.keras"))
    assert any(isinstance(layer, quantization.FakeQuant) for layer in loaded.layers)
    x = np.load(tmp_path / "x.npy")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               np.load(tmp_path / "predictions.npy"), atol=1e-4)
    path = export.tflite(loaded, str(tmp_path / "qat.tflite"), mode="int8")  # no data needed
    interpreter = Interpreter(model_path=path)
    assert {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()} <= {
        "int8", "int32"}
    figures = export.verify_tflite(path, x, reference=loaded, latency_runs=0)
    assert figures["agreement"] >= 0.95, figures
