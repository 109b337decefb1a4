"""export.tflite, verify_tflite and saved_model on Keras 3 models (``import keras``).

The behaviour both Keras share (argument checks, the SavedModel's signatures
and its TF Serving load) is tested across both; the Keras 3 specifics (a
fake-quant model converting to int8 without data, Keras' own quantized models,
recurrent loops) on Keras 3 models.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
import tf_keras
from ai_edge_litert.interpreter import Interpreter
from tensorflow.lite.python import schema_py_generated as schema

import tfopt.keras3.export
from tfopt import export
from tfopt.export import SavedModelBundle
from tests.export.conftest import tensor_dtypes

KERAS = {"tf_keras": tf_keras, "keras3": keras}
_IO_DTYPE = {"float32": np.float32, "dynamic": np.float32, "float16": np.float32,
             "int8": np.int8, "int16x8": np.int16}


@pytest.fixture(scope="module")
def split(digits):
    x, y = digits
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


def _fit(model, x, y, epochs):
    model.compile(keras.optimizers.Adam(1e-2),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def cnn(split):
    (x, y), _ = split
    keras.utils.set_random_seed(0)
    return _fit(keras.Sequential([
        keras.Input((8, 8, 1), name="image"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(10, name="logits"),
    ]), x, y, epochs=3)


@pytest.fixture(scope="module")
def files(cnn, split, tmp_path_factory):
    (x, _), _ = split
    directory = tmp_path_factory.mktemp("keras3_tflite")
    return {mode: export.tflite(cnn, str(directory / f"{mode}.tflite"), mode=mode,
                                representative_data=x[:300] if mode.startswith("int") else None)
            for mode in export.TFLITE_MODES}


@pytest.mark.parametrize("mode", export.TFLITE_MODES)
def test_every_mode_converts_and_agrees_with_the_keras3_model(mode, files, cnn, split):
    _, (x_test, y_test) = split
    figures = export.verify_tflite(files[mode], x_test, y_test, reference=cnn, latency_runs=0)
    assert figures["agreement"] >= 0.97, figures
    assert abs(figures["accuracy"] - figures["reference_accuracy"]) < 0.03
    inputs, outputs, _ = tensor_dtypes(files[mode])
    assert inputs == outputs == [np.dtype(_IO_DTYPE[mode])]
    if mode.startswith("int"):
        assert _float_tensors(files[mode]) == []


def test_a_failed_verification_writes_nothing_and_keeps_the_old_file(cnn, split, tmp_path):
    (x, _), (x_test, y_test) = split
    path = tmp_path / "model.tflite"
    path.write_bytes(b"previous")
    # Calibrated on inputs 100x too small, the file saturates on every real input.
    with pytest.raises(ValueError, match=r"int8 file picks the Keras model's class on .* below "
                       r"agreement_threshold=98\.00%.*Nothing was written"):
        export.tflite(cnn, str(path), mode="int8", representative_data=x[:300] * 0.01,
                      verify=(x_test, y_test))
    assert os.listdir(tmp_path) == ["model.tflite"] and path.read_bytes() == b"previous"


def test_sparsity_stores_a_mostly_zero_keras3_model_smaller(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(256), keras.layers.Dense(4)])
    for layer in model.layers:
        kernel = layer.kernel.numpy()
        kernel[np.random.default_rng(0).random(kernel.shape) < 0.9] = 0.0
        layer.kernel.assign(kernel)
    x = np.random.default_rng(1).random((16, 64)).astype("float32")
    dense = export.tflite(model, str(tmp_path / "dense.tflite"))
    sparse = export.tflite(model, str(tmp_path / "sparse.tflite"), sparsity=True,
                           verify=(x, None), agreement_threshold=1.0)
    assert os.path.getsize(sparse) < 0.5 * os.path.getsize(dense)


def _float_tensors(path):
    return [d["name"] for d in Interpreter(model_path=path).get_tensor_details()
            if np.dtype(d["dtype"]).kind == "f"]


# A quantization-aware Keras 3 model, built the way tfopt.keras3.quantization will
# build them: fake-quant (EMA ranges) on inputs and outputs, per-channel on conv
# kernels, per-tensor on Dense kernels, all through keras.quantizers.

class _FakeQuant(keras.layers.Layer):
    """An activation fake-quantized over its moving min/max."""

    def build(self, shape):
        self.low = self.add_weight(shape=(), initializer="zeros", trainable=False)
        self.high = self.add_weight(shape=(), initializer="ones", trainable=False)

    def call(self, x, training=False):
        if training:
            ops = keras.ops
            self.low.assign(0.9 * self.low + 0.1 * ops.minimum(ops.min(x), 0.0))
            self.high.assign(0.9 * self.high + 0.1 * ops.maximum(ops.max(x), 0.0))
        return keras.quantizers.fake_quant_with_min_max_vars(x, self.low, self.high, 8)


class _QuantKernel:
    """Computes through a fake-quantized kernel (the `kernel` property Keras' layers read)."""

    per_channel = False

    def build(self, shape):
        super().build(shape)
        self.output_quant = _FakeQuant()
        self.output_quant.build(None)

    @property
    def kernel(self):
        ops, kernel = keras.ops, self._kernel
        axes = tuple(range(len(kernel.shape) - 1)) if self.per_channel else None
        bound = ops.maximum(ops.max(ops.abs(kernel), axis=axes), 1e-6)
        return keras.quantizers.fake_quant_with_min_max_vars(
            kernel, -bound, bound, 8, narrow_range=True, axis=-1 if self.per_channel else None)

    def call(self, x, training=False):
        return self.output_quant(super().call(x), training=training)


class _QuantConv2D(_QuantKernel, keras.layers.Conv2D):
    per_channel = True


class _QuantDense(_QuantKernel, keras.layers.Dense):
    def __init__(self, units, per_channel=False, **kwargs):
        super().__init__(units, **kwargs)
        self.per_channel = per_channel


def _qat_cnn(dense_per_channel=False):
    keras.utils.set_random_seed(0)
    return keras.Sequential([
        keras.Input((8, 8, 1)), _FakeQuant(),
        _QuantConv2D(8, 3, activation="relu"), keras.layers.Flatten(),
        _QuantDense(10, per_channel=dense_per_channel)])


@pytest.fixture(scope="module")
def qat_cnn(split):
    (x, y), _ = split
    return _fit(_qat_cnn(), x, y, epochs=2)


def _operator_codes(path):
    with open(path, "rb") as f:
        model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(f.read(), 0))
    return [(max(code.builtinCode, code.deprecatedBuiltinCode), code.customCode)
            for code in model.operatorCodes]


def test_a_fake_quant_model_converts_to_a_fully_int8_builtin_file_without_data(
        qat_cnn, split, tmp_path):
    _, (x_test, y_test) = split
    path = export.tflite(qat_cnn, str(tmp_path / "qat.tflite"), mode="int8",
                         verify=(x_test, y_test))
    inputs, outputs, dtypes = tensor_dtypes(path)
    assert inputs == outputs == [np.dtype(np.int8)]
    assert dtypes == {np.dtype(np.int8), np.dtype(np.int32)}
    codes = _operator_codes(path)
    assert codes and all(builtin != schema.BuiltinOperator.CUSTOM and not custom
                         for builtin, custom in codes), codes  # no Flex, no custom op
    figures = export.verify_tflite(path, x_test, y_test, reference=qat_cnn, latency_runs=0)
    assert figures["agreement"] >= 0.98, figures


def test_a_float_keras3_model_needs_data_for_int8_and_says_how_to_avoid_it(cnn, tmp_path):
    with pytest.raises(ValueError, match=r"mode='int8' needs representative_data.*"
                       r"tfopt\.keras3\.quantization.*fake_quant_with_min_max_vars"):
        export.tflite(cnn, str(tmp_path / "m.tflite"), mode="int8")


def test_per_channel_dense_fake_quant_gets_a_clear_converter_error(tmp_path):
    model = _qat_cnn(dense_per_channel=True)
    with pytest.raises(ValueError, match=r"per-channel fake-quant on a Dense.*per-tensor") as error:
        export.tflite(model, str(tmp_path / "m.tflite"), mode="int8")
    assert "mismatched quantized axes" in str(error.value)
    assert os.listdir(tmp_path) == []


def _refuse_conversion(monkeypatch):
    def converted(*args, **kwargs):
        raise AssertionError("converted before validating")

    for entry in ("from_keras_model", "from_saved_model", "from_concrete_functions"):
        monkeypatch.setattr(tf.lite.TFLiteConverter, entry, converted)


def test_a_model_keras_quantized_itself_is_refused_before_converting(tmp_path, monkeypatch):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="dense")])
    with pytest.warns(UserWarning):  # "Layer InputLayer does not have a `quantize` method"
        model.quantize("int8")
    _refuse_conversion(monkeypatch)
    with pytest.raises(ValueError, match=r"Keras quantized its layers \['dense'\] \(model\."
                       r"quantize\).*Export the float model instead.*tfopt\.keras3\.quantization"):
        export.tflite(model, str(tmp_path / "m.tflite"))


def _lstm(unroll=False):
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((5, 3)), keras.layers.LSTM(4, unroll=unroll),
                             keras.layers.Dense(3)])


def test_a_keras3_lstm_converts_in_float_with_its_batch_fixed(tmp_path):
    model, x = _lstm(), np.random.default_rng(0).random((16, 5, 3)).astype("float32")
    path = export.tflite(model, str(tmp_path / "lstm.tflite"), verify=(x, None),
                         agreement_threshold=1.0)
    assert Interpreter(model_path=path).get_input_details()[0]["shape"].tolist() == [1, 5, 3]
    assert export.verify_tflite(path, x, reference=model, latency_runs=0)["max_abs_diff"] < 1e-5


def test_int8_of_a_keras3_lstm_loop_is_refused_before_converting(tmp_path, monkeypatch):
    _refuse_conversion(monkeypatch)
    with pytest.raises(ValueError, match=r"recurrent layers 'lstm\w*' \(LSTM\).*crashes.*"
                       r"unroll=True"):
        export.tflite(_lstm(), str(tmp_path / "m.tflite"), mode="int8",
                      representative_data=np.zeros((8, 5, 3), "float32"))


def test_an_unrolled_keras3_lstm_converts_to_int8(tmp_path):
    model, x = _lstm(unroll=True), np.random.default_rng(0).random((64, 5, 3)).astype("float32")
    path = export.tflite(model, str(tmp_path / "lstm.tflite"), mode="int8",
                         representative_data=x)
    assert _float_tensors(path) == []
    assert export.verify_tflite(path, x, reference=model, latency_runs=0)["max_abs_diff"] < 0.05


def test_a_squeeze_excite_block_converts_to_int8_with_a_free_batch(tmp_path):
    # The free batch leaves integer shape arithmetic in the file (int64 GATHER
    # indices included); integer tensors are allowed, float ones are not.
    keras.utils.set_random_seed(0)
    inputs = keras.Input((6, 6, 8))
    scale = keras.layers.GlobalAveragePooling2D(keepdims=True)(inputs)
    scale = keras.layers.Dense(8, activation="sigmoid")(scale)
    merged = keras.layers.Add()([keras.layers.Multiply()([inputs, scale]), inputs])
    model = keras.Model(inputs, keras.layers.Dense(4)(keras.layers.Flatten()(merged)))
    x = np.random.default_rng(0).random((64, 6, 6, 8)).astype("float32")
    path = export.tflite(model, str(tmp_path / "se.tflite"), mode="int8",
                         representative_data=x, verify=(x, None), agreement_threshold=0.9)
    assert _float_tensors(path) == []
    assert Interpreter(model_path=path).get_input_details()[0]["shape_signature"][0] == -1


def _dense(module):
    module.utils.set_random_seed(0)
    return module.Sequential([module.Input((4,), name="x"),
                              module.layers.Dense(3, name="y")])


@pytest.mark.parametrize("version", KERAS)
def test_the_saved_model_serves_as_tf_serving_loads_it(version, tmp_path):
    model, x = _dense(KERAS[version]), np.random.default_rng(0).random((5, 4)).astype("float32")
    directory = export.saved_model(model, str(tmp_path / "dense"), warmup_inputs=x,
                                   signatures="classify")
    assert os.path.basename(directory) == "1"
    assert os.path.isfile(os.path.join(directory, "assets.extra", "tf_serving_warmup_requests"))
    with SavedModelBundle(directory) as bundle:  # the TF1 loader, tag serve
        assert sorted(name for name in bundle.signatures if not name.startswith("__")) == [
            "classify", "serving_default"]
        outputs = bundle.run("serving_default", {"x": x})
    assert list(outputs) == ["y"]
    np.testing.assert_allclose(outputs["y"], np.asarray(model(x)), atol=1e-6)


def test_the_keras3_cnn_saved_model_matches_the_model(cnn, split, tmp_path):
    _, (x_test, y_test) = split
    directory = export.saved_model(cnn, str(tmp_path / "digits"), warmup_inputs=x_test[:8],
                                   signatures=["serving_default", "classify"])
    figures = export.verify_saved_model(directory, x_test, reference=cnn, labels=y_test)
    assert figures["max_abs_diff"] < 1e-4 and figures["agreement"] == 1.0
    assert figures["warmup_records"] == 8 + 1


def test_a_quantization_aware_keras3_model_exports_and_loads(qat_cnn, split, tmp_path):
    _, (x_test, _) = split
    directory = export.saved_model(qat_cnn, str(tmp_path / "qat"), warmup_inputs=x_test[:4])
    assert export.verify_saved_model(directory, x_test, reference=qat_cnn)["agreement"] >= 0.99


def test_a_keras_distiller_exports_its_student(tmp_path):
    teacher, student = _dense(keras), keras.Sequential(
        [keras.Input((4,), name="features"), keras.layers.Dense(3)])
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student,
        distillation_losses=keras.distillation.LogitsDistillation())
    directory = export.saved_model(distiller, str(tmp_path / "student"))
    with SavedModelBundle(directory) as bundle:
        assert list(bundle.input_specs("serving_default")) == ["features"]


class _Subclassed(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed")
        self.dense = keras.layers.Dense(2)

    def call(self, features):
        return self.dense(features)


def test_a_called_subclassed_keras3_model_exports(tmp_path):
    model, x = _Subclassed(), np.ones((2, 3), "float32")
    model(x)
    path = export.tflite(model, str(tmp_path / "sub.tflite"))
    assert export.verify_tflite(path, x, reference=model, latency_runs=0)["max_abs_diff"] < 1e-6
    with SavedModelBundle(export.saved_model(model, str(tmp_path / "sub"))) as bundle:
        assert list(bundle.input_specs("serving_default")) == ["features"]


_BAD_CALLS = {
    "unknown mode": (dict(mode="int4"), r"Unknown mode 'int4'; use one of 'float32'"),
    "int8 without data": (dict(mode="int8"), r"mode='int8' needs representative_data"),
    "wrong shape": (dict(mode="int8", representative_data=np.zeros((30, 5), "float32")),
                    r"batch of shape \(30, 5\); the model's input 'x' is \(None, 4\)"),
    "threshold": (dict(verify=(np.zeros((2, 4)), None), agreement_threshold=2),
                  r"agreement_threshold is a share of examples in \[0, 1\], got 2"),
    "sparsity as text": (dict(sparsity="yes"), r"sparsity must be True or False", TypeError),
    "directory": (dict(path=""), r"is a directory; give a file name"),
}


@pytest.mark.parametrize("case", _BAD_CALLS)
@pytest.mark.parametrize("version", KERAS)
def test_bad_calls_are_explained_before_converting(version, case, tmp_path, monkeypatch):
    kwargs = dict(_BAD_CALLS[case][0])
    message, error = (*_BAD_CALLS[case][1:], ValueError)[:2]
    path = str(tmp_path / kwargs.pop("path", "m.tflite"))
    model = _dense(KERAS[version])
    _refuse_conversion(monkeypatch)
    with pytest.raises(error, match=message):
        export.tflite(model, path, **kwargs)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("call", [
    lambda tmp: export.tflite(keras.Sequential([keras.layers.Dense(2)]), str(tmp / "m.tflite")),
    lambda tmp: export.saved_model(_Subclassed(), str(tmp / "m")),
], ids=["unbuilt Sequential", "subclassed never called"])
def test_an_unbuilt_keras3_model_is_explained(call, tmp_path):
    with pytest.raises(ValueError, match=r"needs a built model.*(keras\.Input|call it once)"):
        call(tmp_path)


def test_a_layer_is_not_a_model(files):
    with pytest.raises(ValueError, match=r"verify_tflite's reference needs a Keras model, "
                       r"tf_keras \(Keras 2\) or Keras 3, got keras\.src\.layers"):
        export.verify_tflite(files["float32"], np.zeros((1, 8, 8, 1)),
                             reference=keras.layers.Dense(2))


def test_the_keras3_export_package_holds_the_same_functions():
    for name in ("tflite", "verify_tflite", "saved_model", "TFLITE_MODES"):
        assert getattr(tfopt.keras3.export, name) is getattr(export, name)


@pytest.fixture(scope="module")
def keras3_file(cnn, split, tmp_path_factory):
    """The Keras 3 CNN as a .keras file, and an .npz file of 64 training examples."""
    (x, y), _ = split
    directory = tmp_path_factory.mktemp("keras3_cli")
    paths = str(directory / "digits.keras"), str(directory / "data.npz")
    cnn.save(paths[0])
    np.savez(paths[1], x_train=x[:64], y_train=y[:64])
    return paths


def _run_tfopt_export(*args):
    from absl import flags

    from tfopt.cli import export as export_cli
    flags.FLAGS.unparse_flags()  # absl flags are global: start from the defaults
    try:
        with pytest.raises(SystemExit) as exit_info:
            export_cli.run(["tfopt-export", *args])
    finally:
        flags.FLAGS.unparse_flags()
    return exit_info.value.code


def test_tfopt_export_exports_a_keras3_file(keras3_file, cnn, split, tmp_path, capsys):
    (x, _), _ = split
    model_path, data = keras3_file
    root = tmp_path / "root"
    status = _run_tfopt_export(f"--model={model_path}", "--model_name=digits",
                               f"--base_path={root / 'digits'}",
                               "--formats=saved_model,tflite_int8", f"--representative_data={data}")
    assert status in (None, 0), capsys.readouterr().err
    assert tensor_dtypes(str(root / "tflite" / "digits_int8.tflite"))[0] == [np.dtype(np.int8)]
    figures = export.verify_saved_model(str(root / "digits" / "1"), x[:32], reference=cnn)
    assert figures["max_abs_diff"] < 1e-4


def test_tfopt_export_verifies_a_keras3_file_on_data(keras3_file, tmp_path, capsys):
    model_path, data = keras3_file
    root = tmp_path / "root"
    status = _run_tfopt_export(f"--model={model_path}", "--model_name=digits",
                               f"--base_path={root / 'digits'}", "--formats=saved_model",
                               f"--verify_data={data}")
    out = capsys.readouterr()
    assert status in (None, 0), out.err
    # The table row of the SavedModel: accuracy and agreement with the Keras model on the
    # test split (agreement 100%: the SavedModel is the model).
    row = next(line for line in out.out.splitlines() if line.startswith("saved_model"))
    assert row.split()[3].endswith("%") and row.split()[4] == "100.00%", out.out