"""The Keras 3 Distiller under the JAX backend: it trains there and reloads under TensorFlow."""

import keras
import numpy as np
import pytest

from tests.keras3.conftest import run_under_jax

# Runs in a child process: Keras picks its backend once, at import.
_DISTILL_UNDER_JAX = """
import json, sys
import keras, numpy as np
from tests.keras3.distillation.conftest import mlp
from tfopt.keras3.distillation import Distiller, make_student
assert keras.backend.backend() == "jax", keras.backend.backend()
out = sys.argv[1]
rng = np.random.default_rng(0)
x = rng.random((256, 8, 8, 1), dtype=np.float32)
teacher = mlp(keras, 32, 0, name="teacher")
student = make_student(teacher, 0.25, weights="teacher")
calls = []
hidden = student.get_layer("hidden")
call = hidden.call
hidden.call = lambda *args, **kwargs: calls.append(1) or call(*args, **kwargs)
distiller = Distiller(teacher, student, temperature=2.0, hints=[("hidden", "hidden")])
distiller.compile(keras.optimizers.Adam(1e-2))
before = distiller.hint_projections[0].get_weights()[0]
history = distiller.fit(x, epochs=2, batch_size=64, verbose=0).history
traced = len(calls)
distiller.save(out + "/distiller.keras")
np.save(out + "/x.npy", x)
np.save(out + "/predictions.npy", distiller.predict(x, verbose=0))
print(json.dumps({"history": {k: [float(v) for v in vs] for k, vs in history.items()},
                  "traced_calls": traced,
                  "projection_trained": bool(np.any(
                      before != distiller.hint_projections[0].get_weights()[0]))}))
"""


# Slow (a second Python with JAX compiling the training step), so it runs with
# `make test-slow`.
@pytest.mark.slow
def test_a_distiller_trained_under_jax_reloads_under_tensorflow(tmp_path):
    report = run_under_jax(_DISTILL_UNDER_JAX, tmp_path)
    history = report["history"]
    assert set(history) == {"loss", "distillation_loss", "hint_loss"}  # label-free
    assert history["hint_loss"][-1] < history["hint_loss"][0]
    assert report["projection_trained"]
    # The step is traced once, and the trace runs the student's layer once (not twice).
    assert report["traced_calls"] == 1
    assert keras.backend.backend() == "tensorflow"
    loaded = keras.saving.load_model(str(tmp_path / "distiller.keras"))
    x = np.load(tmp_path / "x.npy")
    np.testing.assert_allclose(loaded.predict(x, verbose=0),
                               np.load(tmp_path / "predictions.npy"), atol=1e-5)
