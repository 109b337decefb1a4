"""int8 QAT to a full-int8 TFLite file on the 14 architectures of issue 9.

Each model (benchmarks/architectures.py) is quantized with representative
data, trained one step on 4 examples, and exported with mode="int8"; the file
must hold no float tensor and follow the QAT Keras model. The models are
untrained, so their softmax outputs are near uniform and top-1 agreement means
little: the check is the largest output difference against the output scale.
The applications take one to several minutes each on two cores: they are
marked slow (CI runs them).
"""

import numpy as np
import pytest

from benchmarks import architectures
from tfopt import export
from tfopt import quantization
from tests.export.conftest import float_tensors_in_use

FAST = ("TextLSTM", "AudioConv1D", "TransformerEncoder")
PARAMS = [name if name in FAST else pytest.param(name, marks=pytest.mark.slow)
          for name in architectures.NAMES]


@pytest.mark.parametrize("name", PARAMS)
def test_int8_qat_exports_a_full_int8_file(name, tmp_path):
    model = architectures.build(name)
    x, y = architectures.example_batch(name, n=8)
    q = quantization.quantize(model, "int8", representative_data=x)
    history = architectures.compile_model(q).fit(x[:4], y[:4], batch_size=4, verbose=0)
    assert np.isfinite(history.history["loss"][0])

    path = export.tflite(q, tmp_path / f"{name}.tflite", mode="int8", representative_data=x)

    assert not float_tensors_in_use(path)
    figures = export.verify_tflite(path, x, reference=q, latency_runs=0)
    scale = float(np.abs(q.predict(x, verbose=0)).max())
    assert figures["max_abs_diff"] < 0.2 * scale, figures
