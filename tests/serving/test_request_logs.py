"""Tests of reading TF Serving request logs (TFRecord files of PredictionLog)."""

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tests.serving.conftest import INPUT
from tests.serving.conftest import OUTPUT
from tests.serving.conftest import write_log
from tfopt.serving import _request_logs


def _data(rows, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((rows, 8, 8, 1), dtype=np.float32), rng.integers(0, 10, rows)


def test_rows_of_every_file_and_record_come_back_in_order(tmp_path):
    x1, y1 = _data(10)
    x2, y2 = _data(7, seed=1)
    write_log(tmp_path / "log-1", x1, y1, version=3)
    write_log(tmp_path / "log-2", x2, y2, seed=1, version=3)
    log = _request_logs.read(str(tmp_path / "log-*"))
    np.testing.assert_array_equal(log.inputs[INPUT], np.concatenate([x1, x2]))
    assert log.outputs[OUTPUT].shape == (17, 10)
    np.testing.assert_array_equal(log.outputs[OUTPUT].argmax(1), np.concatenate([y1, y2]))
    assert (log.model_name, log.records, log.responses) == ("digits", 3 + 2, 5)
    assert log.files == [str(tmp_path / "log-1"), str(tmp_path / "log-2")]
    assert (log.versions, log.signatures, log.skipped) == ([3], ["serving_default"], {})


def test_outputs_come_from_the_records_that_logged_a_response(tmp_path):
    x, y = _data(8)
    write_log(tmp_path / "a.log", x, y)
    write_log(tmp_path / "b.log", x[:4], y[:4], responses=False)
    log = _request_logs.read(str(tmp_path / "*.log"))
    assert len(log.inputs[INPUT]) == 12 and len(log.outputs[OUTPUT]) == 8
    assert (log.records, log.responses) == (3, 2)


def test_other_kinds_of_records_are_counted_and_skipped(tmp_path):
    x, y = _data(4)
    path = write_log(tmp_path / "a.log", x, y)
    classify = prediction_log_pb2.PredictionLog()
    classify.classify_log.request.model_spec.name = "digits"
    with tf.io.TFRecordWriter(str(tmp_path / "b.log")) as writer:
        writer.write(classify.SerializeToString())
    log = _request_logs.read(str(tmp_path / "*.log"))
    assert log.skipped == {"classify_log": 1} and log.records == 1
    assert log.files == [path, str(tmp_path / "b.log")]


def test_a_model_is_chosen_from_mixed_logs(tmp_path):
    x, y = _data(8)
    write_log(tmp_path / "a.log", x[:4], y[:4], model_name="digits")
    write_log(tmp_path / "b.log", x[4:], y[4:], model_name="other")
    log = _request_logs.read(str(tmp_path / "*.log"), model_name="other")
    np.testing.assert_array_equal(log.inputs[INPUT], x[4:])
    with pytest.raises(ValueError, match=r"mix the models \['digits', 'other'\]; choose one"):
        _request_logs.read(str(tmp_path / "*.log"))


def _write_bytes(path, payload):
    with open(path, "wb") as stream:
        stream.write(payload)


def _tfrecord_of(path, payload):
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(payload)


def _truncated(path):
    x, y = _data(12)
    write_log(path + ".full", x, y)
    with open(path + ".full", "rb") as stream:
        _write_bytes(path, stream.read()[:-10])


def _other_shape(path):
    x, y = _data(4)
    write_log(path, x, y)
    write_log(path + "-2", np.zeros((2, 28, 28, 1), np.float32), y[:2])


@pytest.mark.parametrize("make, pattern, kwargs, error, message", [
    (None, "missing-*", {}, FileNotFoundError, "No request log file matches"),
    (None, "", {}, TypeError, "non-empty string"),
    (lambda p: _write_bytes(p, b"not a tfrecord file at all, just text\n" * 5), "f", {},
     ValueError, r"'.*f' is not a TFRecord file of PredictionLog: record 0 is damaged"),
    (lambda p: _tfrecord_of(p, b"\xff\xff\xff\xff"), "f", {}, ValueError,
     r"Record 0 of '.*f' is not a PredictionLog"),
    (_truncated, "f", {}, ValueError, r"record 2 is damaged .*truncated record"),
    (lambda p: write_log(p, *_data(4)), "f", {"model_name": "other"}, ValueError,
     r"no predict record of model 'other': they hold predict records of \['digits'\]"),
    (lambda p: _tfrecord_of(p, b""), "f", {}, ValueError,
     r"no predict record: they hold no predict record and \{'empty': 1\}"),
    (_other_shape, "f*", {}, ValueError, r"has shape \(28, 28, 1\) per row in record 0"),
])
def test_bad_logs_raise_naming_the_file_and_record(tmp_path, make, pattern, kwargs, error,
                                                   message):
    if make:
        make(str(tmp_path / "f"))
    with pytest.raises(error, match=message):
        _request_logs.read(str(tmp_path / pattern) if pattern else pattern, **kwargs)
