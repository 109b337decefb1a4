"""Recurrent text models export to TFLite: fixed batch, fused LSTM, integer token inputs."""

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType

from tfopt import export
from tfopt import quantization
from tests.export.conftest import tensor_dtypes

L = keras.layers
VOCAB, LENGTH = 50, 8


def _text_model(recurrent, seed=0):
    keras.utils.set_random_seed(seed)
    tokens = keras.Input((LENGTH,), dtype="int32", name="tokens")
    h = L.Embedding(VOCAB, 8, name="embedding")(tokens)
    return keras.Model(tokens, L.Dense(3, name="logits")(recurrent(h)), name="text")


@pytest.fixture(scope="module")
def tokens():
    x = np.random.default_rng(0).integers(0, VOCAB, (256, LENGTH)).astype("int32")
    return x, x[:, 0] % 3  # the class is read off the first token: the state must carry it


@pytest.fixture(scope="module")
def lstm_model(tokens):
    x, y = tokens
    model = _text_model(L.LSTM(16, name="lstm"))
    model.compile(keras.optimizers.Adam(0.02),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=20, batch_size=64, verbose=0)
    return model


def _ops(path):
    interpreter = Interpreter(model_path=path, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interpreter.allocate_tensors()
    return {op["op_name"] for op in interpreter._get_ops_details()}


@pytest.mark.parametrize("mode", ["float32", "dynamic", "float16", "int8"])
def test_an_lstm_text_model_exports_in_every_mode_and_verifies(mode, lstm_model, tokens, tmp_path):
    x, y = tokens
    path = export.tflite(lstm_model, str(tmp_path / f"{mode}.tflite"), mode=mode,
                         representative_data=x[:64] if mode == "int8" else None,
                         verify=(x, y), agreement_threshold=0.95)
    inputs, outputs, _ = tensor_dtypes(path)
    assert inputs == [np.dtype(np.int32)]  # token ids stay integers, in int8 too
    assert outputs == [np.dtype(np.int8 if mode == "int8" else np.float32)]
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in _ops(path)  # TFLite's fused op, not a loop
    figures = export.verify_tflite(path, x, y, reference=lstm_model, latency_runs=0)
    assert figures["agreement"] >= 0.95 and figures["accuracy"] >= 0.9
    if mode == "float32":
        # Each example from a fresh state: the file's LSTM state outlives an invocation.
        assert figures["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("recurrent", [
    lambda: L.GRU(8, name="rnn"),
    lambda: L.SimpleRNN(8, name="rnn"),
    # Slow (~20 s: the converter traces both directions): `make test-slow` runs it.
    pytest.param(lambda: L.Bidirectional(L.LSTM(8), name="rnn"), marks=pytest.mark.slow),
], ids=["GRU", "SimpleRNN", "Bidirectional LSTM"])
def test_other_recurrent_layers_convert_with_a_fixed_batch(recurrent, tokens, tmp_path):
    # The Bidirectional LSTM takes ~20 s: the converter saves it as a SavedModel first,
    # which traces both directions' functions.
    x, _ = tokens
    model = _text_model(recurrent())
    path = export.tflite(model, str(tmp_path / "m.tflite"))
    figures = export.verify_tflite(path, x[:32], reference=model, latency_runs=0)
    assert figures["max_abs_diff"] < 1e-4


@pytest.mark.parametrize("recurrent,mode,message", [
    (lambda: L.GRU(8, name="gru"), "int8",
     r"mode='int8' cannot convert 'gru' \(GRU\): TFLite runs only LSTM as one fused int8 op.*"
     r"segmentation fault.*mode='dynamic' or 'float16'"),
    (lambda: L.Bidirectional(L.SimpleRNN(8)), "int8", r"cannot convert 'forward_simple_rnn"),
    (lambda: L.LSTM(8, name="lstm"), "int16x8",
     r"mode='int16x8' cannot convert the recurrent layers 'lstm' \(LSTM\): TFLite has no 16x8 "
     r"kernel for LSTM"),
], ids=["GRU int8", "Bidirectional SimpleRNN int8", "LSTM int16x8"])
def test_modes_the_converter_cannot_do_are_refused_before_converting(
        recurrent, mode, message, tokens, tmp_path, monkeypatch):
    x, _ = tokens

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted: the converter crashes the process here")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_concrete_functions", no_conversion)
    with pytest.raises(ValueError, match=message):
        export.tflite(_text_model(recurrent()), str(tmp_path / "m.tflite"), mode=mode,
                      representative_data=x[:16])


# Slow (~15 s: QAT wrapping, two conversions of an LSTM): `make test-slow` runs it.
@pytest.mark.slow
def test_a_quantization_aware_lstm_model_calibrates_its_lstm(lstm_model, tokens, tmp_path):
    x, y = tokens
    quantized = quantization.quantize(lstm_model, representative_data=x[:64])
    with pytest.raises(ValueError, match=r"needs representative_data for this "
                       r"quantization-aware model: the tensors inside its layers "
                       r"\['lstm'\] \(.*\) have no trained ranges"):
        export.tflite(quantized, str(tmp_path / "m.tflite"), mode="int8")
    path = export.tflite(quantized, str(tmp_path / "m.tflite"), mode="int8",
                         representative_data=x[:64], verify=(x, y), agreement_threshold=0.95)
    assert "UNIDIRECTIONAL_SEQUENCE_LSTM" in _ops(path)
