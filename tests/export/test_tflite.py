import importlib
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfopt import export
from tfopt import pruning
from tests.export.conftest import compile_and_fit
from tests.export.conftest import digits_cnn
from tests.export.conftest import tensor_dtypes

_IO_DTYPE = {"float32": np.float32, "dynamic": np.float32, "float16": np.float32,
             "int8": np.int8, "int16x8": np.int16}


@pytest.mark.parametrize("mode", export.TFLITE_MODES)
def test_every_mode_converts_agrees_with_keras_and_keeps_its_dtype_promise(
        mode, tflite_files, trained_cnn, digits_split):
    _, (x_test, y_test) = digits_split
    figures = export.verify_tflite(tflite_files[mode], x_test, y_test, reference=trained_cnn)
    assert figures["agreement"] >= 0.95
    inputs, outputs, _ = tensor_dtypes(tflite_files[mode])
    assert inputs == [np.dtype(_IO_DTYPE[mode])] and outputs == [np.dtype(_IO_DTYPE[mode])]


def test_smaller_modes_are_smaller_by_the_expected_factor(tflite_files):
    size = {mode: os.path.getsize(path) for mode, path in tflite_files.items()}
    assert 0.45 < size["float16"] / size["float32"] < 0.6
    for mode in ("dynamic", "int8", "int16x8"):
        assert 0.2 < size[mode] / size["float32"] < 0.33, (mode, size)


@pytest.mark.parametrize("mode", ["int8", "int16x8"])
def test_integer_modes_leave_no_float_tensor(mode, tflite_files):
    _, _, dtypes = tensor_dtypes(tflite_files[mode])
    assert not [d for d in dtypes if d.kind == "f"], dtypes
    _, _, float_dtypes = tensor_dtypes(tflite_files["dynamic"])
    assert np.dtype(np.float32) in float_dtypes  # the check can see floats where they are


def test_quantization_aware_model_converts_to_int8_without_data(tmp_path, digits_split):
    (x, y), (x_test, y_test) = digits_split
    qat = tfmot.quantization.keras.quantize_model(digits_cnn())
    compile_and_fit(qat, x, y, epochs=1)
    path = export.tflite(qat, str(tmp_path / "qat.tflite"), mode="int8")
    inputs, outputs, dtypes = tensor_dtypes(path)
    assert inputs == outputs == [np.dtype(np.int8)]
    assert not [d for d in dtypes if d.kind == "f"]
    assert export.verify_tflite(path, x_test, reference=qat)["agreement"] >= 0.95


@pytest.mark.parametrize("scheme", [
    "ternary",
    "binary",
])
def test_tfopt_low_bit_model_exports_to_int8_without_data(scheme, tmp_path, trained_cnn,
                                                          digits_split):
    from tfopt import quantization
    (x, _), (x_test, _) = digits_split
    quantized = quantization.quantize(trained_cnn, scheme, representative_data=x[:256])
    path = export.tflite(quantized, str(tmp_path / "q.tflite"), mode="int8")
    inputs, outputs, dtypes = tensor_dtypes(path)
    assert inputs == outputs == [np.dtype(np.int8)]
    assert not [d for d in dtypes if d.kind == "f"]
    assert export.verify_tflite(path, x_test, reference=quantized)["agreement"] >= 0.95


def test_int8_refuses_a_file_where_a_layer_stayed_float(tmp_path):
    # The converter keeps SIN in float (between DEQUANTIZE and QUANTIZE) even with
    # integer-only ops requested, and says nothing.
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(8, name="dense"),
                              keras.layers.Lambda(tf.math.sin, name="sine"),
                              keras.layers.Dense(3)])
    with pytest.raises(ValueError, match=r"mode='int8' promises an integer-only file.*float "
                       r"tensors \[.*sine/Sin.*use mode='dynamic' or 'float16'"):
        export.tflite(model, str(tmp_path / "m.tflite"), mode="int8",
                      representative_data=np.random.default_rng(0).random((20, 8)))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("mode", ["float32", "int8"])
@pytest.mark.parametrize("version", ["tf_keras", "keras3"])
def test_converter_errors_name_the_op_and_layer_in_one_line(version, mode, tmp_path):
    module = keras if version == "tf_keras" else importlib.import_module("keras")
    module.utils.set_random_seed(0)
    model = module.Sequential([module.Input((8,)), module.layers.Dense(8),
                               module.layers.Lambda(tf.math.erfinv, name="inverse_erf"),
                               module.layers.Dense(3)], name="erf_model")
    with pytest.raises(ValueError) as error:
        export.tflite(model, str(tmp_path / "m.tflite"), mode=mode,
                      representative_data=np.random.default_rng(0).random((20, 8)) * 0.5)
    message = str(error.value)
    assert message.startswith(
        f"The TFLite converter cannot convert 'erf_model' (mode={mode!r}): 'tf.Erfinv' op is "
        "neither a custom op nor a flex op (layer 'inverse_erf'). TFLite's built-in ops do not "
        "include it")
    assert "\n" not in message and len(message) < 500
    assert type(error.value.__cause__).__name__ == "ConverterError"  # the full text, kept
    assert "tfl.fully_connected" in str(error.value.__cause__)
    assert os.listdir(tmp_path) == []


def test_dataset_of_pairs_calibrates_like_the_array(tmp_path, trained_cnn, digits_split,
                                                    tflite_files):
    (x, y), _ = digits_split
    # Endless: reading stops at 1,000 examples, and repeats of the same 300
    # images give the same ranges, so the same file.
    pairs = tf.data.Dataset.from_tensor_slices((x[:300], y[:300])).batch(50).repeat()
    path = export.tflite(trained_cnn, str(tmp_path / "m.tflite"), mode="int8",
                         representative_data=pairs)
    with open(path, "rb") as a, open(tflite_files["int8"], "rb") as b:
        assert a.read() == b.read()


def test_failed_verification_raises_and_writes_nothing(tmp_path, trained_cnn, digits_split):
    (x, _), (x_test, y_test) = digits_split
    path = tmp_path / "model.tflite"
    # Calibrating on inputs 100x too small saturates every real input.
    with pytest.raises(ValueError, match=r"int8 file picks the Keras model's class on \d+\.\d+% "
                       r"of 360 verify examples, below agreement_threshold=98\.00%.*Nothing was "
                       r"written"):
        export.tflite(trained_cnn, str(path), mode="int8", representative_data=x[:300] * 0.01,
                      verify=(x_test, y_test))
    assert os.listdir(tmp_path) == []
    path.write_bytes(b"previous")
    with pytest.raises(ValueError, match="below agreement_threshold"):
        export.tflite(trained_cnn, str(path), mode="int8", representative_data=x[:300] * 0.01,
                      verify=(x_test, None))
    assert os.listdir(tmp_path) == ["model.tflite"] and path.read_bytes() == b"previous"


def test_passing_verification_writes_the_file(tmp_path, trained_cnn, digits_split):
    (x, _), (x_test, y_test) = digits_split
    path = tmp_path / "deep" / "model.tflite"
    result = export.tflite(trained_cnn, str(path), mode="int8", representative_data=x[:300],
                           verify=(x_test, y_test), agreement_threshold=0.95)
    assert result == str(path) and os.listdir(path.parent) == ["model.tflite"]
    assert tensor_dtypes(result)[0] == [np.dtype(np.int8)]


def test_verify_needs_a_classifier(tmp_path, digits_split):
    _, (x_test, _) = digits_split
    regression = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="needs a classifier"):
        export.tflite(regression, str(tmp_path / "r.tflite"), verify=(x_test, None))
    assert os.listdir(tmp_path) == []


def _a_file(tmp_path):
    (tmp_path / "a_file").write_text("")
    return str(tmp_path / "a_file" / "model.tflite")


_BAD_CALLS = {
    "unknown mode": (dict(mode="int4"),
                     r"Unknown mode 'int4'; use one of 'float32', 'dynamic', 'float16', 'int8', "
                     r"'int16x8'"),
    "int8 without data": (dict(mode="int8"),
                          r"mode='int8' needs representative_data.*x_train\[:300\]"
                          r".*quantize_model"),
    "int16x8 without data": (dict(mode="int16x8"), r"mode='int16x8' needs representative_data"),
    "wrong shape": (dict(mode="int8", representative_data=np.zeros((300, 64), np.float32)),
                    r"batch of shape \(300, 64\); the model's input '\w+' is \(None, 8, 8, 1\)"),
    "wrong dtype": (dict(mode="int8", representative_data=np.zeros((300, 8, 8, 1), np.uint8)),
                    r"dtype uint8; the model's input '\w+' is float32.*scaled to floats"),
    "empty data": (dict(mode="int8", representative_data=np.zeros((0, 8, 8, 1), np.float32)),
                   r"holds no examples"),
    "threshold": (dict(verify=(np.zeros((2, 8, 8, 1)), None), agreement_threshold=1.01),
                  r"agreement_threshold is a share of examples in \[0, 1\], got 1\.01"),
    "threshold as text": (dict(verify=(np.zeros((2, 8, 8, 1)), None), agreement_threshold="0.9"),
                          r"agreement_threshold must be a number in \[0, 1\], got str '0.9'",
                          TypeError),
    "threshold as bool": (dict(agreement_threshold=True),
                          r"agreement_threshold must be a number in \[0, 1\], got bool", TypeError),
    "sparsity as text": (dict(sparsity="yes"), r"sparsity must be True or False, got 'yes'",
                         TypeError),
    "verify shape": (dict(verify=(np.zeros((2, 64)), None)), r"verify x has a batch of shape"),
    "path is a directory": (dict(path=lambda tmp: str(tmp)), r"is a directory; give a file name"),
    "path inside a file": (dict(path=_a_file), r"a_file' is a file, not a directory"),
}


@pytest.mark.parametrize("case", _BAD_CALLS, ids=list(_BAD_CALLS))
def test_bad_calls_are_explained_before_converting(case, tmp_path, trained_cnn, monkeypatch):
    kwargs, message, error = (*_BAD_CALLS[case], ValueError)[:3]
    kwargs = dict(kwargs)
    path = kwargs.pop("path", lambda tmp: str(tmp / "model.tflite"))(tmp_path)

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted before validating")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_keras_model", no_conversion)
    with pytest.raises(error, match=message):
        export.tflite(trained_cnn, path, **kwargs)
    assert not os.path.exists(tmp_path / "model.tflite")


def test_read_only_directory_is_explained(tmp_path, trained_cnn, monkeypatch):
    # CI runs as root, which may write anywhere: simulate the denied permission.
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if os.path.samefile(p, tmp_path)
                        else real_access(p, mode))
    with pytest.raises(ValueError, match="no permission to write in"):
        export.tflite(trained_cnn, str(tmp_path / "model.tflite"))
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def sparse_cnn(trained_cnn, digits_split):
    (x, y), _ = digits_split
    pruned = pruning.prune(trained_cnn, pruning.ConstantSparsity(0.8, begin_step=0, frequency=1))
    compile_and_fit(pruned, x, y, epochs=1, lr=1e-3, callbacks=[pruning.UpdatePruningStep()])
    stripped = pruning.strip(pruned)
    assert pruning.sparsity_report(stripped).sparsity > 0.75
    return stripped


@pytest.mark.parametrize("mode", ["float32", "float16"])
def test_sparsity_shrinks_a_pruned_float_file_losslessly(mode, sparse_cnn, tmp_path, digits_split):
    _, (x_test, y_test) = digits_split
    dense = export.tflite(sparse_cnn, str(tmp_path / "dense.tflite"), mode=mode)
    sparse = export.tflite(sparse_cnn, str(tmp_path / "sparse.tflite"), mode=mode, sparsity=True,
                           verify=(x_test, y_test),
                           agreement_threshold=1.0 if mode == "float32" else 0.99)
    assert os.path.getsize(sparse) < 0.5 * os.path.getsize(dense)
    dense_out = export.verify_tflite(dense, x_test, reference=sparse_cnn, latency_runs=0)
    sparse_out = export.verify_tflite(sparse, x_test, reference=sparse_cnn, latency_runs=0)
    assert sparse_out["max_abs_diff"] <= dense_out["max_abs_diff"] + 1e-5


@pytest.mark.parametrize("mode", ["dynamic", "int8"])
def test_sparse_int8_weights_are_refused_because_litert_cannot_load_them(
        mode, sparse_cnn, tmp_path, digits_split):
    (x, _), _ = digits_split
    with pytest.raises(ValueError, match=r"does not load in LiteRT.*XNNPACK delegate cannot run "
                       r"sparse int8 weights"):
        export.tflite(sparse_cnn, str(tmp_path / "m.tflite"), mode=mode, sparsity=True,
                      representative_data=x[:300] if mode == "int8" else None)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("verbose", [False, True])
def test_export_prints_nothing_to_stdout(verbose, capfd, monkeypatch, tmp_path, trained_cnn,
                                        digits_split):
    (x, _), _ = digits_split
    monkeypatch.setenv("TFOPT_VERBOSE", "1" if verbose else "0")
    capfd.readouterr()
    export.tflite(trained_cnn, str(tmp_path / "m.tflite"), mode="int8",
                  representative_data=x[:64])
    out, err = capfd.readouterr()
    assert out == ""
    # The converter's C++ line, silenced unless asked for, and then on stderr.
    assert ("fully_quantize: 0, inference_type: 6" in err) == verbose
