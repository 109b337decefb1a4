"""tfopt.keras3 under the JAX backend: a model pruned and trained there reloads under TF."""

import keras
import numpy as np
import pytest

from tests.keras3.conftest import run_under_jax
from tfopt.keras3 import pruning

# Runs in a child process: Keras picks its backend once, at import.
_TRAIN_UNDER_JAX = """
import json, sys
import keras, numpy as np
from tfopt.keras3 import pruning
assert keras.backend.backend() == "jax", keras.backend.backend()
out = sys.argv[1]
keras.utils.set_random_seed(0)
x = np.random.default_rng(0).random((64, 8, 8, 1), dtype=np.float32)
y = (x.mean(axis=(1, 2, 3)) > 0.5).astype("int32")
inputs = keras.Input((8, 8, 1))
h = keras.layers.Conv2D(8, 3, activation="relu", name="conv")(inputs)
h = keras.layers.GlobalAveragePooling2D()(h)
model = keras.Model(inputs, keras.layers.Dense(2, name="logits")(h))
pruned = pruning.prune(model, pruning.ConstantSparsity(0.5, begin_step=2, frequency=2),
                       criterion="taylor")
pruned.compile(keras.optimizers.Adam(1e-2),
               keras.losses.SparseCategoricalCrossentropy(from_logits=True))
pruned.fit(x, y, batch_size=16, epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
pruned.save(out + "/pruned.keras")
np.save(out + "/x.npy", x)
np.save(out + "/predictions.npy", pruned.predict(x, verbose=0))
layers = pruning._prune.pruned_layers(pruned)
from tfopt import export
try:
    export.saved_model(pruning.strip(pruned), out + "/serving")
    refusal = None
except ValueError as error:
    refusal = str(error)
print(json.dumps({"refusal": refusal,
                  "steps": int(keras.ops.convert_to_numpy(layers[0].pruning_step)),
                  "sparsity": [layer.sparsity() for layer in layers],
                  "statistic_max": max(float(keras.ops.convert_to_numpy(e.statistic).max())
                                       for layer in layers for e in layer._entries
                                       if e.statistic is not None)}))
"""


# Slow (about 45 s: a second Python with JAX compiling the training step), so it runs
# with `make test-slow`.
@pytest.mark.slow
def test_a_model_pruned_under_jax_reloads_and_exports_under_tensorflow(tmp_path):
    report = run_under_jax(_TRAIN_UNDER_JAX, tmp_path)
    assert report["steps"] == 4  # 4 steps, counted inside the JAX step
    assert report["sparsity"] == [0.5, 0.5]  # masks set by the callback took effect
    assert report["statistic_max"] > 0  # Taylor statistics written by the optimizer
    # A SavedModel is a TensorFlow graph: under JAX, export says where to run it instead.
    assert "runs on the 'jax' backend" in report["refusal"]
    assert "KERAS_BACKEND=tensorflow" in report["refusal"]
    assert not (tmp_path / "serving").exists()
    assert keras.backend.backend() == "tensorflow"
    loaded = keras.saving.load_model(str(tmp_path / "pruned.keras"))
    x = np.load(tmp_path / "x.npy")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), np.load(tmp_path / "predictions.npy"),
                               atol=1e-4)
    plain = pruning.strip(loaded)
    from tfopt import export
    path = str(tmp_path / "pruned.tflite")
    export.tflite(plain, path, mode="int8", representative_data=x)
    figures = export.verify_tflite(path, x, reference=plain)
    assert figures["agreement"] >= 0.95
