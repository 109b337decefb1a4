"""Request logs: the TFRecord files of `PredictionLog` that TF Serving's request logging writes.

TF Serving logs a sampled share of requests (``logging_config`` in
models.config) as TFRecord files of ``tensorflow.serving.PredictionLog``, the
format its warmup files use too (`tfopt.export._warmup`). Each record holds one
request, usually its response, and ``log_metadata`` (the model spec, the
sampling config, a timestamp in seconds). This module reads the predict,
classify and regress logs of one model into numpy rows per input and output
(classify and regress ones through `_example_logs`), so drift can be measured
on them. The logs carry no request latency, so none can be reported from them.
Multi-inference, session-run and streamed logs are counted and skipped.
"""

import dataclasses
import glob
import os
import re

import numpy as np
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfopt.serving import _example_logs

READ_KINDS = ("predict_log", "classify_log", "regress_log")


@dataclasses.dataclass
class RequestLog:
    """The requests of one model read from request logs.

    Attributes:
      model_name: the model the requests were sent to.
      inputs: ``{input tensor or feature name: array}``, the request rows of
        every record, batch dimension first.
      outputs: ``{output alias: array}``, the response rows of the records that
        logged a response (TF Serving may log a request without it).
      files: the files read, sorted.
      records: the predict, classify and regress records read.
      responses: how many of them logged a response.
      skipped: ``{log kind: count}`` of the records of other kinds.
      versions: the model versions the log metadata names (empty if none do).
      signatures: the signature names the requests used.
      timestamps: seconds since the epoch of the records whose metadata has one.
    """
    model_name: str
    inputs: dict
    outputs: dict
    files: list
    records: int
    responses: int
    skipped: dict
    versions: list
    signatures: list
    timestamps: list


def read(pattern, model_name=None):
    """Reads the predict, classify and regress records of logs matching the glob `pattern`.

    Args:
      pattern: a file name or glob, e.g. ``"logs/prediction_log*"``.
      model_name: the model whose records to keep. Defaults to None: the logs
        must hold records of one model only.

    Returns:
      A `RequestLog`.

    Raises:
      FileNotFoundError: no file matches `pattern`.
      ValueError: a file is not a TFRecord file of PredictionLog (the file and
        record are named), the logs mix models and `model_name` is None, no
        record of the model is found, or an input's shape changes between
        records.
    """
    files = _validate_files(pattern)
    by_model = {}
    skipped = {}
    for path in files:
        for index, log in _records(path):
            kind = log.WhichOneof("log_type")
            if kind not in READ_KINDS:
                skipped[kind or "empty"] = skipped.get(kind or "empty", 0) + 1
                continue
            name = (getattr(log, kind).request.model_spec.name
                    or log.log_metadata.model_spec.name)
            by_model.setdefault(name, []).append((path, index, log))
    model_name = _validate_model(by_model, model_name, pattern, skipped)
    return _collect(model_name, by_model[model_name], files, skipped)


def write(path, model_name, batches, signature_name="serving_default", version=None):
    """Writes a request log file: one predict record per ``(inputs, outputs)`` batch.

    The records are what TF Serving logs for a predict request: the request,
    the response (when `outputs` is not None) and the log metadata.

    Args:
      path: the TFRecord file to write.
      model_name: the model name in each request's model spec.
      batches: ``(inputs, outputs)`` pairs, each a dict ``{name: array}``;
        `outputs` may be None for a request logged without its response.
      signature_name: the signature in each model spec. Defaults to
        "serving_default".
      version: the model version in each model spec. Defaults to None (unset).

    Returns:
      The number of records written.
    """
    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for inputs, outputs in batches:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = signature_name
            if version is not None:
                request.model_spec.version.value = version
            for key, x in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(x))
            log = prediction_log_pb2.PredictionLog()
            log.log_metadata.model_spec.CopyFrom(request.model_spec)
            log.predict_log.request.CopyFrom(request)
            for key, y in (outputs or {}).items():
                log.predict_log.response.outputs[key].CopyFrom(tf.make_tensor_proto(y))
            writer.write(log.SerializeToString())
            count += 1
    return count


def _validate_files(pattern):
    if not isinstance(pattern, str) or not pattern:
        raise TypeError(f"The request log pattern must be a non-empty string (a file name or "
                        f"glob), got {pattern!r}.")
    files = sorted(path for path in glob.glob(pattern) if os.path.isfile(path))
    if not files:
        raise FileNotFoundError(f"No request log file matches {pattern!r}. Give the files TF "
                                "Serving's request logging (or tfopt-serve) wrote, e.g. "
                                "'logs/prediction_log*'.")
    return files


def _records(path):
    """Yields ``(index, PredictionLog)`` of each record in `path`."""
    iterator = iter(tf.data.TFRecordDataset(path).as_numpy_iterator())
    index = 0
    while True:
        try:
            raw = next(iterator)
        except StopIteration:
            return
        except tf.errors.DataLossError as error:
            raise ValueError(f"{path!r} is not a TFRecord file of PredictionLog: record {index} "
                             f"is damaged or the file has another format "
                             f"({_tensorflow_reason(error)}). "
                             "Give request logs only.") from error
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(raw)
        except Exception as error:  # protobuf's DecodeError has no stable import path
            raise ValueError(f"Record {index} of {path!r} is not a PredictionLog ({error}). "
                             "Give request logs only.") from error
        yield index, log
        index += 1


def _tensorflow_reason(error):
    """TensorFlow's message without its op-wrapper prefix and op suffix."""
    message = re.sub(r"\{\{.*?\}\}\s*", "", error.message)
    return message.split(" [Op:")[0].strip()


def _validate_model(by_model, model_name, pattern, skipped):
    if model_name is None:
        if len(by_model) > 1:
            raise ValueError(f"The logs matching {pattern!r} mix the models "
                             f"{sorted(by_model)}; choose one with model_name.")
        if by_model:
            return next(iter(by_model))
    elif model_name in by_model:
        return model_name
    found = f"records of {sorted(by_model)}" if by_model else "none"
    other = f", and {skipped} records of other kinds" if skipped else ""
    wanted = f" of model {model_name!r}" if model_name is not None else ""
    raise ValueError(f"The logs matching {pattern!r} hold no predict, classify or regress "
                     f"record{wanted}: they hold {found}{other}.")


def _collect(model_name, entries, files, skipped):
    inputs, outputs = {}, {}
    versions, signatures, timestamps = set(), set(), []
    with_response = 0
    for path, index, log in entries:
        where = f"record {index} of {path!r}"
        request = getattr(log, log.WhichOneof("log_type")).request
        request_rows, response_rows = _tensors(log, where)
        _append(inputs, request_rows, where)
        if response_rows:
            with_response += 1
            _append(outputs, response_rows, where)
        # A request may leave the version out (the latest); the metadata's spec, when it has
        # one, may name the version that answered, so it comes first.
        metadata, asked = log.log_metadata.model_spec, request.model_spec
        spec = metadata if metadata.name or metadata.HasField("version") else asked
        if spec.HasField("version") or asked.HasField("version"):
            versions.add((spec if spec.HasField("version") else asked).version.value)
        signatures.add(spec.signature_name or "serving_default")
        if log.log_metadata.timestamp_secs:
            timestamps.append(log.log_metadata.timestamp_secs)
    return RequestLog(
        model_name=model_name,
        inputs={key: np.concatenate(rows) for key, rows in inputs.items()},
        outputs={key: np.concatenate(rows) for key, rows in outputs.items()},
        responses=with_response,
        files=files, records=len(entries), skipped=skipped, versions=sorted(versions),
        signatures=sorted(signatures), timestamps=timestamps)


def _tensors(log, where):
    """``({input: array}, {output: array})`` of one record (outputs empty without a response)."""
    if log.WhichOneof("log_type") != "predict_log":
        return _example_logs.tensors(log, where)
    entry = log.predict_log
    return tuple({key: tf.make_ndarray(proto) for key, proto in tensors.items()}
                 for tensors in (entry.request.inputs, entry.response.outputs))


def _append(rows, arrays, where):
    """Adds each array of a request or response to ``rows[name]``, checking its shape."""
    for key, array in arrays.items():
        if array.ndim == 0:  # a rank-0 request (REST columnar scalar): one row
            array = array.reshape(1)
        previous = rows.setdefault(key, [])
        if previous and previous[0].shape[1:] != array.shape[1:]:
            raise ValueError(f"Tensor {key!r} has shape {array.shape[1:]} per row in {where}, "
                             f"but {previous[0].shape[1:]} in earlier records; the logs mix "
                             "signatures or models. Read them separately.")
        previous.append(array)
