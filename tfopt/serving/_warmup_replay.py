"""Warmup replay: a version's warmup requests run before it is AVAILABLE.

As TF Serving's ``saved_model_warmup_util.cc`` and ``saved_model_warmup.cc``
do: the records of ``<version>/assets.extra/tf_serving_warmup_requests`` (a
TFRecord file of ``PredictionLog``) are replayed in order, each
`iterations` times; predict, classify and regress logs run on the version,
session_run and predict_streamed logs are UNIMPLEMENTED, a log of no kind is
skipped; the first failure fails the load with TF Serving's status. A
missing file is fine. tfopt-serve has no MultiInference, so it skips
multi_inference logs (with a warning) where TF Serving runs them.
"""

import os

import grpc
import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import prediction_log_pb2

from tfopt.export import _layout
from tfopt.export import _warmup
from tfopt.serving import _grpc_tensors
from tfopt.serving._errors import ServingError


def replay(servable, version_dir, iterations=1):
    """Replays the warmup file of `version_dir` on `servable`; returns the record count.

    Raises:
      ServingError: the status TF Serving fails the load with.
    """
    path = os.path.join(version_dir, _layout.WARMUP_FILE)
    if not os.path.exists(path):
        return 0
    count = 0
    try:
        for record in tf.data.TFRecordDataset(path).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog()
            try:
                log.ParseFromString(record)
            except Exception:  # protobuf's DecodeError has no stable import path
                # saved_model_warmup_util.cc appends the record's raw bytes, not a repr.
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   "Failed to parse warmup record: "
                                   f"{record.decode('utf-8', 'backslashreplace')} from {path}")
            for _ in range(max(1, iterations)):
                _run(servable, log)
            count += 1
            if count > _warmup.MAX_RECORDS:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Number of warmup records exceeds the maximum "
                                   f"({_warmup.MAX_RECORDS}) at {path}")
    except tf.errors.DataLossError as error:
        raise ServingError(grpc.StatusCode.DATA_LOSS, error.message + ". Please verify your "
                           "warmup data is in TFRecord format.") from None
    return count


def _run(servable, log):
    kind = log.WhichOneof("log_type")
    if kind is None:  # RunWarmupRequest's default case: nothing to run, not an error
        return
    if kind == "predict_log":
        request = log.predict_log.request
        inputs = {}
        for key, proto in request.inputs.items():
            try:
                inputs[key] = _grpc_tensors.to_array(proto)
            except ValueError:  # saved_model::GetInputValues' text
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"tensor parsing error: {key}") from None
        servable.predict(inputs, request.model_spec.signature_name, tuple(request.output_filter))
    elif kind == "classify_log":
        request = log.classify_log.request
        servable.classify(examples(request.input), request.model_spec.signature_name)
    elif kind == "regress_log":
        request = log.regress_log.request
        servable.regress(examples(request.input), request.model_spec.signature_name)
    elif kind == "multi_inference_log":
        logging.warning("tfopt-serve: skipping a multi_inference_log warmup record of %s "
                        "version %d (tfopt-serve has no MultiInference)", servable.name,
                        servable.version)
    else:
        number = prediction_log_pb2.PredictionLog.DESCRIPTOR.fields_by_name[kind].number
        raise ServingError(grpc.StatusCode.UNIMPLEMENTED,
                           f"Unsupported log_type for warmup: {number}")


def examples(request_input):
    """The serialized examples of a ``tensorflow.serving.Input``, context merged.

    TF Serving feeds an ExampleListWithContext's examples as the context's
    bytes followed by the example's, so the example's features win.
    """
    kind = request_input.WhichOneof("kind")
    if kind == "example_list":
        return [e.SerializeToString() for e in request_input.example_list.examples]
    if kind == "example_list_with_context":
        listed = request_input.example_list_with_context
        context = listed.context.SerializeToString()
        return [context + e.SerializeToString() for e in listed.examples]
    # No examples: the Servable says "Input is empty." after its signature checks, as
    # TF Serving does (util.cc InputToSerializedExampleTensor runs after them).
    return []
