"""quantize() on Keras 3 models: QAT on digits to a fully-int8 file, the schemes, the errors."""

import keras
import numpy as np
import pytest
import tf_keras
from ai_edge_litert.interpreter import Interpreter

from tfopt import export
from tfopt.keras3 import quantization
from tfopt.keras3.quantization import _activations

L = keras.layers


def _compile(model, lr):
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=["accuracy"])
    return model


@pytest.fixture(scope="module")
def split(digits):
    x, y = digits
    return (x[:1400], y[:1400]), (x[1400:], y[1400:])


@pytest.fixture(scope="module")
def float_cnn(split):
    (x, y), _ = split
    keras.utils.set_random_seed(0)
    model = _compile(keras.Sequential([
        keras.Input((8, 8, 1)),
        L.Conv2D(8, 3, name="conv"),
        L.BatchNormalization(name="bn"),
        L.ReLU(),
        L.DepthwiseConv2D(3, padding="same", name="depthwise"),
        L.BatchNormalization(name="bn_2"),
        L.Activation("relu"),
        L.Flatten(),
        L.Dense(10, name="logits"),
    ]), 1e-2)
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def qat(float_cnn, split, tmp_path_factory):
    (x, y), _ = split
    keras.utils.set_random_seed(0)
    model = _compile(quantization.quantize(float_cnn, "int8", representative_data=x[:200]),
                     1e-3)
    model.fit(x, y, epochs=1, batch_size=64, verbose=0)
    path = export.tflite(model, str(tmp_path_factory.mktemp("qat") / "cnn.tflite"), mode="int8")
    return model, path


def test_int8_qat_folds_batch_norm_and_converts_to_an_agreeing_int8_file(float_cnn, qat, split):
    model, path = qat
    _, (x_test, y_test) = split
    layers = {layer.name: layer for layer in model.layers}
    assert isinstance(layers["bn"], _activations.FoldedBatchNormalization)
    assert layers["conv"].fold_batch_norm and layers["depthwise"].fold_batch_norm
    interpreter = Interpreter(model_path=path)
    assert {np.dtype(t["dtype"]).name for t in interpreter.get_tensor_details()} <= {
        "int8", "int32"}
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert {op["op_name"] for op in interpreter._get_ops_details()} >= {
        "CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}
    figures = export.verify_tflite(path, x_test, y_test, reference=model, latency_runs=0)
    assert figures["agreement"] >= 0.98, figures
    float_accuracy = float_cnn.evaluate(x_test, y_test, verbose=0)[1]
    assert figures["accuracy"] >= float_accuracy - 0.05, (figures, float_accuracy)


def test_moving_ranges_are_trained_and_the_input_is_quantized(qat):
    model, _ = qat
    assert isinstance(model.layers[0], quantization.FakeQuant)
    low, high = (float(v.numpy()) for v in model.layers[0].weights)
    assert low == 0.0 and 0.9 <= high <= 1.0  # digits are in [0, 1]


@pytest.fixture(scope="module")
def sparse_model():
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((8, 8, 1)), L.Conv2D(8, 3, name="conv"),
                              L.Flatten(), L.Dense(10, name="logits")])
    rng = np.random.default_rng(0)
    for name in ("conv", "logits"):
        kernel = model.get_layer(name).kernel.numpy()
        kernel[rng.random(kernel.shape) < 0.5] = 0.0
        model.get_layer(name).kernel.assign(kernel)
    return model


def test_prune_preserving_keeps_the_zeros_through_fit_and_in_the_file(sparse_model, split,
                                                                      tmp_path):
    (x, y), _ = split
    zeros = {layer.name: layer.kernel.numpy() == 0 for layer in sparse_model.layers
             if hasattr(layer, "kernel")}
    model = _compile(quantization.quantize(sparse_model, "int8_prune_preserving"), 1e-2)
    model.fit(x[:512], y[:512], epochs=1, batch_size=64, verbose=0)
    for layer in model.layers:
        if layer.name in zeros:
            effective = keras.ops.convert_to_numpy(layer.quantized_values()["kernel"])
            assert np.all(effective[zeros[layer.name]] == 0)
    path = export.tflite(model, str(tmp_path / "sparse.tflite"), mode="int8")
    interpreter = Interpreter(model_path=path)
    for name, mask in zeros.items():
        shape = mask.shape
        stored = [interpreter.get_tensor(t["index"]) for t in interpreter.get_tensor_details()
                  if t["dtype"] == np.int8 and t["shape"].size == len(shape)
                  and np.prod(t["shape"]) == mask.size and "quantize" not in t["name"].lower()
                  and _is_constant(interpreter, t)]
        assert stored, name
        assert np.mean(stored[0] == 0) >= mask.mean() - 1e-9, name


def _is_constant(interpreter, detail):
    try:
        interpreter.get_tensor(detail["index"])
        return True
    except ValueError:
        return False


def test_plain_int8_lets_the_zeros_move(sparse_model, split):
    (x, y), _ = split
    model = _compile(quantization.quantize(sparse_model, "int8"), 1e-2)
    model.fit(x[:256], y[:256], epochs=1, batch_size=64, verbose=0)
    kernel = model.get_layer("logits").base_variables()[0].numpy()
    assert np.mean(kernel == 0) < 0.1


@pytest.mark.parametrize("scheme, levels", [
    ("binary", 2), ("ternary", 3), (quantization.FixedPoint(4), 16)], ids=str)
def test_low_bit_kernels_take_their_levels_per_channel(sparse_model, scheme, levels):
    model = quantization.quantize(sparse_model, scheme, int8_layers=None)
    for layer in model.layers:
        if isinstance(layer, quantization.QuantizeMixin) and layer.quantized_weights:
            kernel = keras.ops.convert_to_numpy(layer.quantized_values()["kernel"])
            per_channel = kernel.reshape(-1, kernel.shape[-1])
            counts = [len(np.unique(per_channel[:, c])) for c in range(kernel.shape[-1])]
            assert max(counts) <= levels, (layer.name, counts)
            assert max(counts) >= min(levels, 2)
    dense = quantization.packed_weight_bytes(sparse_model)
    assert quantization.packed_weight_bytes(model) < dense / 4


def test_layers_leaves_the_others_float_and_keeps_their_weights(sparse_model):
    model = quantization.quantize(sparse_model, layers=lambda layer: layer.name == "conv")
    assert isinstance(model.get_layer("conv"), quantization.QuantConv2D)
    logits = model.get_layer("logits")
    assert type(logits) is L.Dense
    np.testing.assert_array_equal(logits.kernel.numpy(),
                                  sparse_model.get_layer("logits").kernel.numpy())


def test_packed_weight_bytes_counts_int8_kernels_and_float_biases():
    tiny = keras.Sequential([keras.Input((5,)), L.Dense(4)])
    assert quantization.packed_weight_bytes(tiny) == 96
    # 20 int8 weights, one per-tensor scale, 4 float32 biases
    assert quantization.packed_weight_bytes(quantization.quantize(tiny)) == 20 + 4 + 16


def _unsupported():
    i = keras.Input((4, 4, 4, 2))
    x = L.Conv3D(2, 3, name="volume")(i)
    x = L.Reshape((8, 2))(x)
    x = L.LSTM(3, name="recurrent")(x)
    return keras.Model(i, L.Dense(2, activation="gelu", name="head")(x))


def test_unquantizable_layers_are_named_in_one_error_before_anything_is_built():
    with pytest.raises(ValueError) as error:
        quantization.quantize(_unsupported())
    message = str(error.value)
    assert "volume (Conv3D): TFLite's CONV_3D has no int8 kernel" in message
    assert "recurrent (LSTM)" in message
    assert "head (Dense): activation 'gelu' has no int8 TFLite kernel" in message
    assert "layers=" in message


@pytest.mark.parametrize("call, error, match", [
    (lambda: quantization.quantize(tf_keras.Sequential([tf_keras.Input((3,)),
                                                        tf_keras.layers.Dense(2)])),
     ValueError, r"needs a Keras 3 Model .*tf_keras \(Keras 2\).*tfopt\.quantization"),
    (lambda: quantization.quantize(keras.Sequential([keras.Input((3,)), L.Dense(2)]), "int4"),
     ValueError, r"Unknown quantization scheme 'int4'"),
    (lambda: quantization.quantize(keras.Sequential([keras.Input((3,)), L.Dense(2)]),
                                   layers=["nope"]),
     ValueError, r"No layer named \['nope'\]"),
    (lambda: quantization.quantize(quantization.quantize(
        keras.Sequential([keras.Input((3,)), L.Dense(2)]))),
     ValueError, r"already quantization-aware"),
    (lambda: quantization.FixedPoint(1), ValueError, r"FixedPoint\(bits=...\) must be"),
], ids=["tf_keras", "scheme", "layers", "twice", "bits"])
def test_bad_input_is_refused(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_a_model_still_being_pruned_is_told_to_strip_first():
    # Needs tfopt.keras3._graph (branch core) for tfopt.keras3.pruning to import.
    from tfopt.keras3.pruning._layers import PrunedDense
    from tfopt.keras3.pruning._objects import ConstantSparsity
    pruned = keras.Sequential([keras.Input((3,)),
                               PrunedDense(2, schedule=ConstantSparsity(0.5, begin_step=0))])
    with pytest.raises(ValueError, match=r"still being pruned.*pruning\.strip\(model\) first"):
        quantization.quantize(pruned)
