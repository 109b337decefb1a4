"""Request logging in tfopt-serve: a sampled share of calls written as TF Serving logs them.

TF Serving logs requests per model from ``ModelConfig.logging_config`` in
models.config (``core/server_request_logger.cc``, ``core/request_logger.cc``):
each successful predict, classify or regress call is kept with probability
``sampling_config.sampling_rate``, and kept ones become a ``PredictionLog``:
the request, the response and ``log_metadata`` (the model spec with the
served version and resolved signature, the sampling config, the SavedModel
tags, a timestamp in seconds). `tfopt.serving._request_logs.read` and
tfopt-monitor read these records from either server.

TF Serving leaves the storage to a pluggable ``LogCollector``; tfopt-serve's
collector (``log_collector_config.type`` "" or "tfrecord") writes TFRecord
files named ``<filename_prefix>-<YYYYmmdd-HHMMSS>-<pid>-<logger>-<NNNNN>``:
the start time and process id keep restarts apart, the logger number keeps
models sharing a prefix apart, and a new file (NNNNN + 1) starts every
`MAX_RECORDS_PER_FILE` records. A file is opened at the first logged record,
each record is flushed as it is written (a crash loses none), and the file is
closed on `ServerRequestLogger.stop` or when the model's logging config
changes. A failure to log is reported and never fails the call.
"""

import itertools
import os
import random
import threading
import time

import tensorflow as tf
from absl import logging
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_log_pb2
from tensorflow_serving.apis import regression_pb2

from tfopt.serving import _policy

COLLECTOR_TYPES = ("", "tfrecord")
MAX_RECORDS_PER_FILE = 10_000
_SERVE_TAG = "serve"
_logger_ids = itertools.count()


def _validate_logging_config(model_name, config):
    rate = config.sampling_config.sampling_rate
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"Model {model_name!r}: logging_config.sampling_config.sampling_rate "
                         f"must be in [0, 1], got {rate}; e.g. 0.05 logs one call in 20.")
    collector = config.log_collector_config
    if collector.type not in COLLECTOR_TYPES:
        raise ValueError(f"Model {model_name!r}: logging_config.log_collector_config.type "
                         f"{collector.type!r} is not a collector tfopt-serve has; it writes "
                         "TFRecord files only: leave type empty or set it to \"tfrecord\".")
    if not collector.filename_prefix:
        raise ValueError(f"Model {model_name!r}: logging_config.log_collector_config."
                         "filename_prefix is empty; set it to where the logs go, e.g. "
                         "\"/logs/prediction_log\".")


class RequestLogger:
    """Samples and writes one model's request logs.

    Args:
      model_name: the model whose calls are logged.
      logging_config: its ``tensorflow.serving.LoggingConfig``.
      rng: an object with ``random()`` returning floats in [0, 1) that decides
        which calls are kept, or None for an unseeded ``random.Random``.
        Defaults to None.
      max_records_per_file: records per file before the next one starts.
        Defaults to `MAX_RECORDS_PER_FILE`.

    Raises:
      ValueError: a sampling rate outside [0, 1], a collector type other
        than "" or "tfrecord", or an empty filename prefix.
      OSError: the prefix's directory cannot be created.
    """

    def __init__(self, model_name, logging_config, rng=None,
                 max_records_per_file=MAX_RECORDS_PER_FILE):
        _validate_logging_config(model_name, logging_config)
        self.model_name = model_name
        self.config = logging_config
        self._rng = rng if rng is not None else random.Random()
        self._max_records = max_records_per_file
        prefix = logging_config.log_collector_config.filename_prefix
        # Made now so that a prefix that cannot be written fails the config, not a call.
        os.makedirs(os.path.dirname(os.path.abspath(prefix)), exist_ok=True)
        self._stem = (f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}-"
                      f"{next(_logger_ids)}")
        self._lock = threading.Lock()
        self._writer = None
        self._files = 0
        self._in_file = 0
        self.files = []

    def sample(self):
        """Whether to log the next call (true with probability sampling_rate)."""
        return self._rng.random() < self.config.sampling_config.sampling_rate

    def write(self, log):
        """Adds the sampling config, tags and timestamp to `log` and writes it."""
        metadata = log.log_metadata
        metadata.sampling_config.CopyFrom(self.config.sampling_config)
        metadata.saved_model_tags[:] = [_SERVE_TAG]
        metadata.timestamp_secs = int(time.time())
        record = log.SerializeToString()
        with self._lock:
            if self._writer is None or self._in_file >= self._max_records:
                self._open_next()
            self._writer.write(record)
            self._writer.flush()
            self._in_file += 1

    def _open_next(self):
        if self._writer is not None:
            self._writer.close()
        path = f"{self._stem}-{self._files:05d}"
        self._writer = tf.io.TFRecordWriter(path)
        self.files.append(path)
        self._files += 1
        self._in_file = 0

    def stop(self):
        """Closes the current file; a later call starts a new one."""
        with self._lock:
            if self._writer is not None:
                self._writer.close()
                self._writer = None


class ServerRequestLogger:
    """The request loggers of a server's models, kept in step with its ModelServerConfig.

    Args:
      config: the ``ModelServerConfig`` served, or None (nothing logged yet).
      rng: passed to each `RequestLogger`. Defaults to None.

    Example:
      >>> request_logger = ServerRequestLogger(config)
      >>> make_rest_app(manager, request_logger=request_logger)
      >>> request_logger.stop()
    """

    def __init__(self, config=None, rng=None):
        self._rng = rng
        self._loggers = {}
        self._lock = threading.Lock()
        if config is not None:
            self.update(config)

    def update(self, config):
        """Logs the models of `config` by their logging_config from now on.

        Loggers of unchanged configs keep their files; the others are closed.

        Raises:
          ValueError: a model's logging_config is invalid (nothing is changed).
        """
        wanted = {model.name: model.logging_config for model in _policy.model_configs(config)
                  if model.HasField("logging_config")}
        with self._lock:
            kept = {name: logger for name, logger in self._loggers.items()
                    if wanted.get(name) == logger.config}
            new = {name: RequestLogger(name, logging_config, self._rng)
                   for name, logging_config in wanted.items() if name not in kept}
            dropped = [logger for name, logger in self._loggers.items() if name not in kept]
            self._loggers = {**kept, **new}
        for logger in dropped:
            logger.stop()

    def _logger(self, servable):
        """The model's logger when this call is sampled, else None."""
        logger = self._loggers.get(servable.name)
        return logger if logger is not None and logger.sample() else None

    def log_predict(self, servable, signature_name, inputs, outputs):
        """Logs a predict call answered by `servable` (`signature_name` as resolved)."""
        logger = self._logger(servable)
        if logger is None:
            return
        log = prediction_log_pb2.PredictionLog()
        request = predict_pb2.PredictRequest()
        _model_spec(request.model_spec, servable, signature_name)
        for key, array in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(array))
        log.predict_log.request.CopyFrom(request)
        for key, array in outputs.items():
            log.predict_log.response.outputs[key].CopyFrom(tf.make_tensor_proto(array))
        _model_spec(log.predict_log.response.model_spec, servable, signature_name)
        self._write(logger, log, request.model_spec)

    def log_classify(self, servable, signature_name, examples, classes, scores):
        """Logs a classify call: serialized tf.Examples in, classes and/or scores out."""
        logger = self._logger(servable)
        if logger is None:
            return
        log = prediction_log_pb2.PredictionLog()
        request = classification_pb2.ClassificationRequest()
        _model_spec(request.model_spec, servable, signature_name)
        _add_examples(request.input, examples)
        log.classify_log.request.CopyFrom(request)
        response = log.classify_log.response
        _model_spec(response.model_spec, servable, signature_name)
        table = classes if classes is not None else scores
        for row in range(len(table)):
            result = response.result.classifications.add()
            for column in range(table.shape[1]):
                entry = result.classes.add()
                if classes is not None:
                    value = classes[row, column]
                    entry.label = (value.decode("utf-8", "replace") if isinstance(value, bytes)
                                   else str(value))
                if scores is not None:
                    entry.score = float(scores[row, column])
        self._write(logger, log, request.model_spec)

    def log_regress(self, servable, signature_name, examples, values):
        """Logs a regress call: serialized tf.Examples in, one value per example out."""
        logger = self._logger(servable)
        if logger is None:
            return
        log = prediction_log_pb2.PredictionLog()
        request = regression_pb2.RegressionRequest()
        _model_spec(request.model_spec, servable, signature_name)
        _add_examples(request.input, examples)
        log.regress_log.request.CopyFrom(request)
        response = log.regress_log.response
        _model_spec(response.model_spec, servable, signature_name)
        for value in values.reshape(-1).tolist():
            response.result.regressions.add().value = value
        self._write(logger, log, request.model_spec)

    @staticmethod
    def _write(logger, log, model_spec):
        log.log_metadata.model_spec.CopyFrom(model_spec)
        try:
            logger.write(log)
        except Exception:  # pylint: disable=broad-except  (a lost log must not fail the call)
            logging.exception("tfopt-serve: request log of model %s not written",
                              logger.model_name)

    def stop(self):
        """Closes every model's log file (later calls open new files)."""
        with self._lock:
            loggers = list(self._loggers.values())
        for logger in loggers:
            logger.stop()


def _model_spec(target, servable, signature_name):
    """The spec TF Serving logs: the model, the version that answered, the resolved signature."""
    target.name = servable.name
    target.version.value = servable.version
    target.signature_name = signature_name or "serving_default"


def _add_examples(model_input, examples):
    """Serialized tf.Examples (a context already merged in) as the request's example list."""
    example_list = model_input.example_list
    for serialized in examples:
        example_list.examples.add().ParseFromString(serialized)
