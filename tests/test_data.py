"""tfopt._data: example data is checked with the same rules wherever it is accepted."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfopt import _data
from tfopt import export
from tfopt import quantization
from tests.export.conftest import time_limit

L = keras.layers


def _tiny(seed=0):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4, 4, 1), name="image"),
                             L.Conv2D(4, 3, activation="relu"), L.Flatten(), L.Dense(3)])


def _x(n=32, seed=0):
    return np.random.default_rng(seed).random((n, 4, 4, 1)).astype("float32")


@pytest.fixture(scope="module")
def float_file(tmp_path_factory):
    return export.tflite(_tiny(), str(tmp_path_factory.mktemp("data") / "tiny.tflite"))


def _no_slow_work(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("slow work started before the data was checked")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_keras_model", refuse)
    monkeypatch.setattr(tfmot.quantization.keras, "quantize_apply", refuse)


# Each entry point, called with bad examples `x` (and labels `y` where it takes them).
ENTRY_POINTS = {
    "quantize": lambda x, y, tmp, file: quantization.quantize(_tiny(), representative_data=x),
    "tflite representative_data": lambda x, y, tmp, file: export.tflite(
        _tiny(), str(tmp / "m.tflite"), mode="int8", representative_data=x),
    "tflite verify": lambda x, y, tmp, file: export.tflite(
        _tiny(), str(tmp / "m.tflite"), verify=(x, y)),
    "verify_tflite": lambda x, y, tmp, file: export.verify_tflite(file, x, y, latency_runs=0),
}


def _with_nan_and_inf():
    x = _x()
    x[3, 1, 2, 0] = np.nan
    x[7, 0, 0, 0] = np.inf
    return x


BAD_EXAMPLES = {
    "NaN and inf": (_with_nan_and_inf, ValueError,
                    r"holds 2 non-finite value\(s\) \(NaN or infinity\) in 2 example\(s\); the "
                    r"first is nan at index \(3, 1, 2, 0\).*np.nan_to_num"),
    "NaN in a dataset": (lambda: tf.data.Dataset.from_tensor_slices(_with_nan_and_inf()).batch(8),
                         ValueError, r"2 non-finite value\(s\).*index \(3, 1, 2, 0\)"),
    "wrong shape": (lambda: _x().reshape(32, 16), ValueError,
                    r"batch of shape \(32, 16\); the model's input '[\w:]+' is \(None, 4, 4, 1\)"),
    "one example at a time": (lambda: tf.data.Dataset.from_tensor_slices(_x()), ValueError,
                              r"shape \(4, 4, 1\).*one example at a time: batch it"),
    "wrong dtype": (lambda: (_x() * 255).astype("uint8"), ValueError,
                    r"dtype uint8; the model's input '[\w:]+' is float32"),
    "strings": (lambda: np.full((2, 4, 4, 1), "a"), TypeError, r"holds <U1 values, not numbers"),
    "empty": (lambda: _x()[:0], ValueError, r"holds no examples"),
    "nothing": (lambda: 3, ValueError, r"batch of shape \(\)"),
    "a file name": (lambda: "x_train.npy", TypeError, r"must be an array of examples, a "
                                                      r"tf.data.Dataset or an iterable of such "
                                                      r"batches, got str"),
    "empty iterable": (lambda: [], ValueError, r"yielded no batches"),
}


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", BAD_EXAMPLES)
def test_bad_examples_get_the_same_answer_everywhere(entry, case, tmp_path, float_file,
                                                     monkeypatch):
    make, error, message = BAD_EXAMPLES[case]
    _no_slow_work(monkeypatch)
    with pytest.raises(error, match=message):
        ENTRY_POINTS[entry](make(), None, tmp_path, float_file)
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.parametrize("entry", ["tflite verify", "verify_tflite"])
@pytest.mark.parametrize("labels,error,message", [
    (np.zeros(5, "int32"), ValueError, r"y has 5 labels for 32 examples"),
    (np.array([np.nan] + [0.0] * 31), ValueError, r"y holds 1 non-finite value"),
    (np.full(32, "cat"), TypeError, r"y must hold numbers"),
    (3, TypeError, r"y must be an array of labels"),
])
def test_bad_labels_get_the_same_answer_everywhere(entry, labels, error, message, tmp_path,
                                                   float_file, monkeypatch):
    _no_slow_work(monkeypatch)
    with pytest.raises(error, match=message):
        ENTRY_POINTS[entry](_x(), labels, tmp_path, float_file)


def test_an_endless_dataset_calibrates_quantize_from_its_first_examples():
    x = _x(64)
    model = _tiny()
    endless = tf.data.Dataset.from_tensor_slices((x, np.zeros(64))).batch(16).repeat()
    with time_limit(60):  # before the cap, this loop never ended
        from_dataset = quantization.quantize(model, representative_data=endless)
    from_array = quantization.quantize(model, representative_data=x)
    np.testing.assert_array_equal(from_dataset.predict(x, verbose=0),
                                  from_array.predict(x, verbose=0))


def test_a_generator_function_as_for_the_tflite_converter_is_read():
    x = _x(64)

    def representative_dataset():
        for i in range(64):
            yield [x[i:i + 1]]

    np.testing.assert_array_equal(
        _data.validate_examples(representative_dataset, _data.input_specs(_tiny()), "data"), x)


def _two_inputs(as_dict):
    keras.utils.set_random_seed(0)
    a, b = keras.Input((4,), name="a"), keras.Input((3,), name="b")
    outputs = L.Dense(2, name="out")(L.Concatenate(name="concat")([a, b]))
    return keras.Model({"a": a, "b": b} if as_dict else [a, b], outputs)


@pytest.mark.parametrize("as_dict", [False, True])
def test_several_inputs_are_checked_one_by_one(as_dict):
    rng = np.random.default_rng(0)
    a, b = rng.random((16, 4), "float32"), rng.random((16, 3), "float32")
    model = _two_inputs(as_dict)

    def given(x_a, x_b):
        return {"a": x_a, "b": x_b} if as_dict else [x_a, x_b]

    q = quantization.quantize(model, representative_data=given(a, b))
    np.testing.assert_allclose(q.predict(given(a, b), verbose=0),
                               model.predict(given(a, b), verbose=0), atol=0.05)
    inputs = given(a, b) if as_dict else tuple(given(a, b))  # tf.data reads a list as one tensor
    pairs = tf.data.Dataset.from_tensor_slices((inputs, np.zeros(16))).batch(4)
    quantization.quantize(model, representative_data=pairs)
    name = "'b'" if as_dict else "1"
    b_nan = b.copy()
    b_nan[2, 1] = np.nan
    with pytest.raises(ValueError, match=rf"representative_data\[{name}\] holds 1 non-finite "
                                         r"value.*index \(2, 1\)"):
        quantization.quantize(model, representative_data=given(a, b_nan))
    with pytest.raises(ValueError, match=rf"representative_data\[{name}\] has a batch of shape "
                                         r"\(16, 4\)"):
        quantization.quantize(model, representative_data=given(a, a))
    with pytest.raises(ValueError, match=r"different numbers of examples \(\[8, 16\]\)"):
        quantization.quantize(model, representative_data=given(a, b[:8]))
    with pytest.raises(ValueError, match="dict of arrays keyed" if as_dict else "list of 2"):
        quantization.quantize(model, representative_data={"a": a} if as_dict else [a])
