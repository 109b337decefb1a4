import os

import numpy as np
import pytest
import tf_keras as keras
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


def _not_tflite(tmp_path, tflite_files):
    """name -> (path, message) for files LiteRT must not be asked to load."""
    keras_file = tmp_path / "model.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(keras_file)
    (tmp_path / "random.tflite").write_bytes(np.random.default_rng(0).bytes(2000))
    (tmp_path / "empty.tflite").write_bytes(b"")
    with open(tflite_files["float32"], "rb") as f:
        (tmp_path / "truncated.tflite").write_bytes(f.read()[:300])
    return {
        "keras file": (keras_file, r"is not a TFLite model: it is a zip archive \(a .keras file"),
        "random bytes": (tmp_path / "random.tflite", r"is not a TFLite model: it is a file "
                                                     r"starting with b"),
        "empty file": (tmp_path / "empty.tflite", r"is not a TFLite model: it is an empty file"),
        "truncated": (tmp_path / "truncated.tflite", r"LiteRT cannot load .*truncated or corrupt"),
        "directory": (tmp_path, r"is a directory \(a SavedModel\?\); give the .tflite file"),
    }


@pytest.mark.parametrize("kind", ["keras file", "random bytes", "empty file", "truncated",
                                  "directory"])
def test_a_file_that_is_not_a_tflite_model_is_named(kind, tmp_path, tflite_files, digits_split):
    _, (x_test, _) = digits_split
    path, message = _not_tflite(tmp_path, tflite_files)[kind]
    with pytest.raises(ValueError, match=f"verify_tflite: .*{message}"):
        export.verify_tflite(path, x_test)


@pytest.mark.parametrize("kwargs,error,message", [
    (dict(latency_runs="10"), TypeError, r"latency_runs must be an int, 0 \(skip\) or more, got "
                                         r"str '10'"),
    (dict(latency_runs=1.5), TypeError, r"latency_runs must be an int"),
    (dict(latency_runs=-1), ValueError, r"latency_runs must be 0 \(skip\) or more, got -1"),
    (dict(num_threads="2"), TypeError, r"num_threads must be an int, 1 or more, got str '2'"),
    (dict(num_threads=0), ValueError, r"num_threads must be 1 or more, got 0"),
    (dict(reference="model.keras"), ValueError, r"verify_tflite's reference needs a Keras "
                                                r"model, tf_keras \(Keras 2\) or Keras 3, got "
                                                r"builtins.str"),
])
def test_arguments_of_the_wrong_type_are_named(kwargs, error, message, tflite_files,
                                               digits_split):
    _, (x_test, _) = digits_split
    with pytest.raises(error, match=message):
        export.verify_tflite(tflite_files["float32"], x_test, **kwargs)


def test_a_path_that_is_not_a_path_is_named(digits_split):
    _, (x_test, _) = digits_split
    with pytest.raises(TypeError, match="verify_tflite needs the path of a .tflite file, got "
                                        "NoneType None"):
        export.verify_tflite(None, x_test)
