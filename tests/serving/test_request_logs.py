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


def test_the_version_comes_from_the_metadata_when_the_request_asked_for_the_latest(tmp_path):
    x, y = _data(4)
    path = write_log(tmp_path / "a.log", x, y)
    logs = []
    for raw in tf.data.TFRecordDataset(path).as_numpy_iterator():
        log = prediction_log_pb2.PredictionLog.FromString(raw)
        log.log_metadata.model_spec.version.value = 7  # as TF Serving's response names it
        log.log_metadata.timestamp_secs = 1700000000
        logs.append(log)
    with tf.io.TFRecordWriter(path) as writer:
        writer.write(logs[0].SerializeToString())
    log = _request_logs.read(path)
    assert (log.versions, log.timestamps) == ([7], [1700000000])


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
    multi = prediction_log_pb2.PredictionLog()
    multi.multi_inference_log.request.input.example_list.SetInParent()
    with tf.io.TFRecordWriter(str(tmp_path / "b.log")) as writer:
        writer.write(multi.SerializeToString())
    log = _request_logs.read(str(tmp_path / "*.log"))
    assert log.skipped == {"multi_inference_log": 1} and log.records == 1
    assert log.files == [path, str(tmp_path / "b.log")]


def test_a_model_is_chosen_from_mixed_logs(tmp_path):
    x, y = _data(8)
    write_log(tmp_path / "a.log", x[:4], y[:4], model_name="digits")
    write_log(tmp_path / "b.log", x[4:], y[4:], model_name="other")
    log = _request_logs.read(str(tmp_path / "*.log"), model_name="other")
    np.testing.assert_array_equal(log.inputs[INPUT], x[4:])
    with pytest.raises(ValueError, match=r"mix the models \['digits', 'other'\]; choose one"):
        _request_logs.read(str(tmp_path / "*.log"))


def _example(**features):
    example = tf.train.Example()
    for key, values in features.items():
        feature = example.features.feature[key]
        if isinstance(values[0], float):
            feature.float_list.value.extend(values)
        elif isinstance(values[0], int):
            feature.int64_list.value.extend(values)
        else:
            feature.bytes_list.value.extend(values)
    return example


def _example_log(kind, examples, context=None, results=()):
    """A classify_log or regress_log record; `results` are score lists or regressed values."""
    log = prediction_log_pb2.PredictionLog()
    entry = getattr(log, kind)
    entry.request.model_spec.name = "houses"
    target = (entry.request.input.example_list_with_context if context
              else entry.request.input.example_list)
    target.examples.extend(examples)
    if context:
        target.context.CopyFrom(context)
    for result in results:
        if kind == "classify_log":
            classes = entry.response.result.classifications.add().classes
            for i, score in enumerate(result):
                classes.add(label=str(i), score=score)
        else:
            entry.response.result.regressions.add(value=result)
    return log


def _write_logs(path, logs):
    with tf.io.TFRecordWriter(str(path)) as writer:
        for log in logs:
            writer.write(log.SerializeToString())


def test_classify_and_regress_records_become_feature_rows_and_scores(tmp_path):
    context = _example(city=[b"Lyon"], rooms=[9])
    _write_logs(tmp_path / "a.log", [
        _example_log("classify_log", [_example(area=[50.0, 2.0], rooms=[2]),
                                      _example(area=[80.0, 1.0])],
                     context=context, results=[[0.25, 0.75], [0.5, 0.5]]),
        _example_log("regress_log", [_example(area=[20.0, 3.0], rooms=[1])], results=[1.5]),
    ])
    log = _request_logs.read(str(tmp_path / "a.log"))
    assert (log.model_name, log.records, log.responses) == ("houses", 2, 2)
    np.testing.assert_array_equal(log.inputs["area"], [[50, 2], [80, 1], [20, 3]])
    # The example's own feature overrides the context's; bytes features are left out.
    np.testing.assert_array_equal(log.inputs["rooms"], [[2], [9], [1]])
    assert "city" not in log.inputs
    np.testing.assert_array_equal(log.outputs["scores"], [[0.25, 0.75], [0.5, 0.5]])
    np.testing.assert_array_equal(log.outputs["outputs"], [1.5])


@pytest.mark.parametrize("logs, message", [
    ([_example_log("classify_log", [_example(area=[1.0]), _example(area=[1.0, 2.0])])],
     "Feature 'area' has a different number of values in some examples of record 0"),
    ([_example_log("regress_log", [_example(area=[1.0]), _example(rooms=[1])])],
     r"Feature .area. has a different number .* \(or is missing from some\)"),
    ([_example_log("classify_log", [_example(area=[1.0])] * 2, results=[[0.5], [0.2, 0.8]])],
     "lists a different number of classes per example"),
])
def test_examples_that_do_not_line_up_raise(tmp_path, logs, message):
    _write_logs(tmp_path / "a.log", logs)
    with pytest.raises(ValueError, match=message):
        _request_logs.read(str(tmp_path / "a.log"))


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
     r"no predict, classify or regress record of model 'other': they hold records of "
     r"\['digits'\]"),
    (lambda p: _tfrecord_of(p, b""), "f", {}, ValueError,
     r"regress record: they hold none, and \{'empty': 1\} records of other kinds"),
    (_other_shape, "f*", {}, ValueError, r"has shape \(28, 28, 1\) per row in record 0"),
])
def test_bad_logs_raise_naming_the_file_and_record(tmp_path, make, pattern, kwargs, error,
                                                   message):
    if make:
        make(str(tmp_path / "f"))
    with pytest.raises(error, match=message):
        _request_logs.read(str(tmp_path / pattern) if pattern else pattern, **kwargs)


def test_reads_the_warmup_files_tfopt_export_writes(tmp_path):
    """Warmup files are request logs too: the same PredictionLog records, without responses."""
    from tfopt.export import _warmup  # pylint: disable=import-outside-toplevel
    x, _ = _data(5)
    path = str(tmp_path / "tf_serving_warmup_requests")
    records = _warmup.write(path, {INPUT: x}, "digits")
    log = _request_logs.read(path)
    # Each example alone, then all five in one batch.
    np.testing.assert_array_equal(log.inputs[INPUT], np.concatenate([x, x]))
    assert (log.records, log.responses, log.outputs) == (records, 0, {})
    assert log.signatures == ["serving_default"]
