import os

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tfopt import export


def _outputs_in_one_batch(path, x):
    """The file's float outputs for all of x, run as one batch: a second route
    to the numbers verify_tflite computes one example at a time."""
    interpreter = Interpreter(model_path=path)
    source = interpreter.get_input_details()[0]
    interpreter.resize_tensor_input(source["index"], [len(x), *source["shape"][1:]])
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    scale, zero_point = source["quantization"]
    if scale:
        info = np.iinfo(source["dtype"])
        x = np.clip(np.round(x / scale) + zero_point, info.min, info.max)
    interpreter.set_tensor(source["index"], x.astype(source["dtype"]))
    interpreter.invoke()
    out = interpreter.get_tensor(target["index"]).astype(np.float64)
    scale, zero_point = target["quantization"]
    return (out - zero_point) * scale if scale else out


@pytest.mark.parametrize("mode", ["float32", "int8", "int16x8"])
def test_figures_match_a_direct_computation(mode, tflite_files, trained_cnn, digits_split):
    _, (x_test, y_test) = digits_split
    path = tflite_files[mode]
    figures = export.verify_tflite(path, x_test, y_test, reference=trained_cnn, latency_runs=20)
    outputs = _outputs_in_one_batch(path, x_test)
    reference = trained_cnn.predict(x_test, verbose=0)
    assert figures["examples"] == len(x_test)
    assert figures["accuracy"] == pytest.approx(np.mean(np.argmax(outputs, -1) == y_test))
    assert figures["agreement"] == pytest.approx(
        np.mean(np.argmax(outputs, -1) == np.argmax(reference, -1)))
    assert figures["reference_accuracy"] == pytest.approx(
        np.mean(np.argmax(reference, -1) == y_test))
    assert figures["max_abs_diff"] == pytest.approx(np.max(np.abs(outputs - reference)), abs=1e-4)
    assert figures["bytes"] == os.path.getsize(path)
    assert 0 < figures["gzip_bytes"] < figures["bytes"]
    assert figures["latency_ms"] > 0


def test_one_hot_labels_and_optional_parts(tflite_files, trained_cnn, digits_split):
    _, (x_test, y_test) = digits_split
    path = tflite_files["int8"]
    sparse = export.verify_tflite(path, x_test, y_test, latency_runs=0)
    one_hot = export.verify_tflite(path, x_test, np.eye(10)[y_test], latency_runs=0)
    assert one_hot["accuracy"] == sparse["accuracy"]
    assert set(sparse) == {"examples", "bytes", "gzip_bytes", "accuracy"}
    against_model = export.verify_tflite(path, x_test[:20], reference=trained_cnn, latency_runs=1)
    assert set(against_model) == {"examples", "bytes", "gzip_bytes", "latency_ms",
                                  "agreement", "max_abs_diff"}


def test_bad_arguments_are_explained(tflite_files, tmp_path, digits_split):
    _, (x_test, y_test) = digits_split
    path = tflite_files["float32"]
    with pytest.raises(ValueError, match=r"x has a batch of shape \(360, 64\); the model's input "
                       r"'[\w:]+' is \(None, 8, 8, 1\)"):
        export.verify_tflite(path, x_test.reshape(-1, 64))
    with pytest.raises(ValueError, match="y has 10 labels for 360 examples; give one label per"):
        export.verify_tflite(path, x_test, y_test[:10])
    with pytest.raises(ValueError, match="no file at"):
        export.verify_tflite(str(tmp_path / "missing.tflite"), x_test)
