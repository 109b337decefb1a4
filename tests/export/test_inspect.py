"""inspect_tflite: a file's ends, ops and tensor types, read from its flatbuffer."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tests.export.conftest import tensor_dtypes
from tfopt import export
from tfopt.keras3 import quantization


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """{kind: path}: a Keras 3 model as float32 and int8-QAT files, and a Select-TF file."""
    directory = tmp_path_factory.mktemp("inspect")
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).random((32, 6), dtype=np.float32)
    model = keras.Sequential([keras.Input((6,), name="features"),
                              keras.layers.Dense(8, activation="relu"),
                              keras.layers.Dense(3, name="scores")])
    qat = quantization.quantize(model, "int8", representative_data=x)
    paths = {"float32": export.tflite(model, str(directory / "float.tflite")),
             "int8": export.tflite(qat, str(directory / "int8.tflite"), mode="int8")}
    cumprod = tf.function(lambda v: tf.math.cumprod(v, axis=1), autograph=False,
                          input_signature=[tf.TensorSpec([None, 4], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [cumprod.get_concrete_function()], cumprod)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS,
                                           tf.lite.OpsSet.SELECT_TF_OPS]
    paths["flex"] = str(directory / "flex.tflite")
    with open(paths["flex"], "wb") as stream:
        stream.write(converter.convert())
    return paths


def test_an_int8_qat_file_is_fully_int8_with_builtin_ops(files):
    figures = export.inspect_tflite(files["int8"])
    assert figures["fully_int8"] and figures["builtin_only"]
    assert [dtype for _, dtype in figures["inputs"] + figures["outputs"]] == ["int8", "int8"]
    # Only the ops the graph runs (the converter's table also lists QUANTIZE here).
    assert figures["ops"] == ["FULLY_CONNECTED"]
    assert "int8" in figures["tensor_dtypes"]
    assert set(figures["tensor_dtypes"]) <= {"int8", "int32"}
    # LiteRT agrees on the ends.
    inputs, outputs, _ = tensor_dtypes(files["int8"])
    assert [dtype.name for dtype in inputs + outputs] == ["int8", "int8"]


def test_a_float_file_has_builtin_ops_but_is_not_int8(files):
    figures = export.inspect_tflite(files["float32"])
    assert figures["builtin_only"] and not figures["fully_int8"]
    assert figures["inputs"][0][1] == figures["outputs"][0][1] == "float32"
    assert "float32" in figures["tensor_dtypes"] and "FULLY_CONNECTED" in figures["ops"]


def test_select_tf_ops_are_named_and_not_builtin(files):
    figures = export.inspect_tflite(files["flex"])
    assert "FlexCumprod" in figures["ops"]
    assert not figures["builtin_only"] and not figures["fully_int8"]


def test_the_keras3_path_names_the_same_function():
    import tfopt.keras3.export
    assert tfopt.keras3.export.inspect_tflite is export.inspect_tflite


@pytest.mark.parametrize("make, error, match", [
    (lambda tmp: 3, TypeError, r"inspect_tflite needs the path of a \.tflite file, got int 3"),
    (lambda tmp: str(tmp), ValueError, r"inspect_tflite: .* is a directory \(a SavedModel\?\)"),
    (lambda tmp: str(tmp / "missing.tflite"), ValueError, r"inspect_tflite: no file at"),
    (lambda tmp: (tmp / "model.keras").write_bytes(b"PK\x03\x04zip") and str(tmp / "model.keras"),
     ValueError, r"inspect_tflite: .*model\.keras' is not a TFLite model"),
])
def test_what_is_not_a_tflite_file_is_refused(make, error, match, tmp_path):
    with pytest.raises(error, match=match):
        export.inspect_tflite(make(tmp_path))
