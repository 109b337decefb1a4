"""Warmup requests: PredictionLog records TF Serving parses and replays."""

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
from tensorflow_serving.apis import prediction_log_pb2

from tfopt.export import _warmup
from tfopt.export._saved_model import saved_model
from tfopt.export._saved_model_bundle import SavedModelBundle
from tfopt.export._verify_saved_model import verify_saved_model

WARMUP = os.path.join("assets.extra", "tf_serving_warmup_requests")


def _tiny():
    keras.utils.set_random_seed(0)
    return keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(3)])


def _records(version):
    """Each record parsed with TF Serving's own proto, no tfopt code involved."""
    logs = []
    for raw in tf.data.TFRecordDataset(os.path.join(version, WARMUP)).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(raw)
        logs.append(log)
    return logs


@pytest.fixture(scope="module")
def digits_warmup(trained_cnn, digits_split, tmp_path_factory):
    _, (x_test, _) = digits_split
    base = tmp_path_factory.mktemp("export") / "digits"
    return saved_model(trained_cnn, base, warmup_inputs=x_test[:40]), x_test[:40]


def test_records_are_predict_logs_in_batch_sizes_1_and_32(digits_warmup, trained_cnn):
    version, x = digits_warmup
    logs = _records(version)
    assert len(logs) == 40 + 2 <= 1000
    (name,) = trained_cnn.input_names
    sizes = []
    for log in logs:
        assert log.WhichOneof("log_type") == "predict_log"
        request = log.predict_log.request
        assert request.model_spec.name == "digits"
        assert request.model_spec.signature_name == "serving_default"
        assert list(request.inputs) == [name]
        assert request.inputs[name].dtype == tf.float32.as_datatype_enum
        sizes.append(request.inputs[name].tensor_shape.dim[0].size)
    assert sizes == [1] * 40 + [32, 8]
    first = tf.make_ndarray(logs[0].predict_log.request.inputs[name])
    assert (first == x[:1]).all()


def test_every_record_replays_through_the_loaded_version(digits_warmup, trained_cnn):
    version, _ = digits_warmup
    (name,) = trained_cnn.input_names
    with SavedModelBundle(version) as bundle:
        for log in _records(version):
            x = tf.make_ndarray(log.predict_log.request.inputs[name])
            (out,) = bundle.run("serving_default", {name: x}).values()
            assert out == pytest.approx(trained_cnn.predict(x, verbose=0), abs=1e-5)
    figures = verify_saved_model(version, None, reference=trained_cnn)
    assert figures["warmup_records"] == 42 and figures["examples"] == 0
    assert figures["max_abs_diff"] < 1e-5 and figures["agreement"] == 1.0


def test_a_dataset_becomes_records_of_its_examples(tmp_path):
    x = np.random.default_rng(0).normal(size=(70, 4)).astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, np.zeros(70))).batch(16)
    version = saved_model(_tiny(), tmp_path / "m", warmup_inputs=dataset)
    sizes = [log.predict_log.request.inputs["features"].tensor_shape.dim[0].size
             for log in _records(version)]
    assert sizes == [1] * 70 + [32, 32, 6]


def test_a_single_example_makes_one_record(tmp_path):
    version = saved_model(_tiny(), tmp_path / "m", warmup_inputs=np.ones((1, 4), "float32"))
    assert len(_records(version)) == 1


@pytest.mark.parametrize("count, records", [(969, 1000), (970, 1001), (1000, 1032)])
def test_more_than_1000_records_are_refused_not_cut(count, records):
    assert len(_warmup.record_slices(count)) == records
    if records <= 1000:
        _warmup.validate_count(count)
    else:
        with pytest.raises(ValueError, match=f"{count} examples.*{records} warmup records.*"
                                             "at most 969"):
            _warmup.validate_count(count)


def _write_records(version, logs):
    path = os.path.join(version, WARMUP)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path) as writer:
        for log in logs:
            writer.write(log)


def test_a_warmup_file_tf_serving_would_refuse_fails_verification(tmp_path):
    version = saved_model(_tiny(), tmp_path / "m", warmup_inputs=np.ones((2, 4), "float32"))
    record = _records(version)[0].SerializeToString()
    _write_records(version, [record] * 1001)
    with pytest.raises(ValueError, match="more than 1000 records"):
        verify_saved_model(version, None)
    _write_records(version, [record, b"\x08not a proto"])
    with pytest.raises(ValueError, match="Record 1 .* is not a PredictionLog"):
        verify_saved_model(version, None)
