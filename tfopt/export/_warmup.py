"""Warmup requests: the file TF Serving replays before a version takes traffic.

TF Serving runs ``<version>/assets.extra/tf_serving_warmup_requests``, a
TFRecord file of ``PredictionLog`` protos, before it marks a version
AVAILABLE, so the first real requests do not pay for lazy initialization
(``g3doc/saved_model_warmup.md``). It refuses to load a version whose file
holds more than 1,000 records, or a record that does not parse
(``saved_model_warmup_util.cc``).

Each example becomes a request of its own (batch size 1, what most online
traffic sends) and the examples are sent again in batches of up to 32, a
typical batching size, so both shapes are warm.
"""

import os

import tensorflow as tf
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2

from tfopt import _data
from tfopt.export import _layout
from tfopt.export import _signatures

# TF Serving: "Number of warmup records exceeds the maximum (1000)".
MAX_RECORDS = 1000
TYPICAL_BATCH = 32


def record_slices(count):
    """(start, stop) of each record over `count` examples: each alone, then in batches."""
    batch = min(TYPICAL_BATCH, count)
    slices = [(i, i + 1) for i in range(count)]
    if batch > 1:
        slices += [(i, min(i + batch, count)) for i in range(0, count, batch)]
    return slices


def max_examples():
    """The most examples whose records stay within TF Serving's cap."""
    count = MAX_RECORDS
    while len(record_slices(count)) > MAX_RECORDS:
        count -= 1
    return count


def validate_count(count, what="warmup_inputs"):
    """Raises ValueError when `count` examples would make more records than TF Serving loads."""
    records = len(record_slices(count))
    if records > MAX_RECORDS:
        read = (f" (an iterable is read up to {_data.MAX_ITERABLE_EXAMPLES})"
                if count >= _data.MAX_ITERABLE_EXAMPLES else "")
        raise ValueError(
            f"{what} gives {count} examples{read}, which make {records} warmup records (each "
            f"example alone, then in batches of {TYPICAL_BATCH}); TF Serving refuses to load a "
            f"version with more than {MAX_RECORDS} (\"Number of warmup records exceeds the "
            f"maximum\"). Give at most {max_examples()} examples; a few dozen warm a model up.")


def write(path, keyed, model_name):
    """Writes the warmup file for examples ``{input key: array}``; returns the record count."""
    count = len(next(iter(keyed.values())))
    validate_count(count)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    slices = record_slices(count)
    with tf.io.TFRecordWriter(path) as writer:
        for start, stop in slices:
            request = predict_pb2.PredictRequest()
            request.model_spec.name = model_name
            request.model_spec.signature_name = _signatures.DEFAULT
            for key, x in keyed.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(x[start:stop]))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return len(slices)


def path_in(version_dir):
    """Where a version keeps its warmup file."""
    return os.path.join(version_dir, _layout.WARMUP_FILE)


def read(version_dir):
    """The predict requests of a version's warmup file, as ``(signature, {key: array})``.

    Returns an empty list when there is no warmup file (TF Serving loads such
    versions without warming them up).

    Raises:
      ValueError: more records than TF Serving loads, a record that is not a
        PredictionLog, or a kind of log this replay cannot run.
    """
    path = path_in(version_dir)
    if not os.path.exists(path):
        return []
    requests = []
    try:
        records = list(tf.data.TFRecordDataset(path).take(MAX_RECORDS + 1).as_numpy_iterator())
    except tf.errors.DataLossError as error:
        raise ValueError(f"{path!r} is not a complete TFRecord file ({error.message}); TF "
                         "Serving fails to load the version.") from error
    for i, raw in enumerate(records):
        if i >= MAX_RECORDS:
            raise ValueError(f"{path!r} holds more than {MAX_RECORDS} records; TF Serving "
                             "refuses to load the version. Export it again with fewer "
                             "warmup examples.")
        log = prediction_log_pb2.PredictionLog()
        try:
            log.ParseFromString(raw)
        except Exception as error:  # protobuf's DecodeError has no stable import path
            raise ValueError(f"Record {i} of {path!r} is not a PredictionLog ({error}); TF "
                             "Serving fails to load the version.") from error
        if log.WhichOneof("log_type") != "predict_log":
            raise ValueError(f"Record {i} of {path!r} is a {log.WhichOneof('log_type')}; this "
                             "replay runs predict_log records only.")
        request = log.predict_log.request
        requests.append((request.model_spec.signature_name or _signatures.DEFAULT,
                         {key: tf.make_ndarray(proto) for key, proto in request.inputs.items()}))
    return requests

