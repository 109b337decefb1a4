"""Server-side batching: concurrent predict calls merged into one signature call.

TF Serving's batching session (``batching/batching_session.cc``, scheduled by
``BasicBatchScheduler``) queues the requests that reach one servable's
signature, concatenates up to ``max_batch_size`` rows along dimension 0, runs
the signature once, and hands each request back its own rows. A batch starts
when it is full or when its oldest request has waited ``batch_timeout_micros``;
``num_batch_threads`` batches run at once; more than ``max_enqueued_batches``
waiting batches turn requests away with UNAVAILABLE. Batching is invisible to
callers: each gets exactly the answer it would get alone.

`Batcher` does the same for `Servable.predict`. Calls are merged only when
they can be concatenated: same servable, signature, output filter, input names
and dtypes, and shapes equal past dimension 0. A call whose inputs have no
batch dimension, or more rows than a batch holds, runs on its own.
"""

import collections
import dataclasses
import os
import threading
import time
from concurrent import futures

import grpc
import numpy as np

from tfopt.serving._errors import ServingError

# Defaults of an unset BatchingParameters field (session_bundle_config.proto,
# BasicBatchScheduler::Options): batches of 1000 rows, no wait, one thread a core.
_DEFAULT_MAX_BATCH_SIZE = 1000
_DEFAULT_TIMEOUT_MICROS = 0
_DEFAULT_MAX_ENQUEUED_BATCHES = 10
_DEFAULT_SIGNATURE = "serving_default"
# Threads a server keeps for calls waiting on batches, at most (--enable_batching without a
# file asks for batches of 1000 rows).
_MAX_WAITING_CALLS = 256


@dataclasses.dataclass
class _Task:
    """One caller's predict call, waiting in a queue."""

    inputs: dict
    rows: int
    future: futures.Future
    arrived: float


def _value(parameters, name, default):
    return getattr(parameters, name).value if parameters.HasField(name) else default


def _validate_parameters(parameters):
    # pylint: disable=import-outside-toplevel
    from tfopt.export._protos import session_bundle_config_pb2

    if not isinstance(parameters, session_bundle_config_pb2.BatchingParameters):
        raise TypeError("Batcher: parameters must be a tensorflow.serving.BatchingParameters "
                        "(tfopt.export.read_batching_config reads one from a file); got "
                        f"{type(parameters).__name__}.")
    for name in ("max_batch_size", "num_batch_threads", "max_enqueued_batches"):
        if parameters.HasField(name) and getattr(parameters, name).value < 1:
            raise ValueError(f"Batcher: {name}={getattr(parameters, name).value} must be at "
                             "least 1.")
    if _value(parameters, "batch_timeout_micros", 0) < 0:
        raise ValueError(f"Batcher: batch_timeout_micros={parameters.batch_timeout_micros.value}"
                         " must be 0 or more.")
    sizes = list(parameters.allowed_batch_sizes)
    maximum = _value(parameters, "max_batch_size", _DEFAULT_MAX_BATCH_SIZE)
    if sizes and (sizes != sorted(set(sizes)) or sizes[0] < 1 or sizes[-1] != maximum):
        raise ValueError(f"Batcher: allowed_batch_sizes={sizes} must be positive, strictly "
                         f"increasing and end at max_batch_size={maximum} (TF Serving's rule).")


def _batch_key(servable, signature_name, inputs, output_filter):
    """What calls must share to be concatenated, or None when `inputs` cannot be batched."""
    parts = []
    rows = None
    for name in sorted(inputs):
        array = inputs[name]
        if not isinstance(array, np.ndarray) or array.ndim == 0:
            return None, None
        if rows is None:
            rows = array.shape[0]
        elif array.shape[0] != rows:
            return None, None  # inputs disagree on the batch: the servable's own error
        parts.append((name, array.dtype.str, array.shape[1:]))
    if not rows:
        return None, None
    return (id(servable), signature_name, tuple(output_filter), tuple(parts)), rows


class Batcher:
    """Merges concurrent `Servable.predict` calls into batches (TF Serving's batching).

    Args:
      parameters: a `tensorflow.serving.BatchingParameters` (the text file of
        ``--batching_parameters_file``, read by
        ``tfopt.export.read_batching_config``). Unset fields take TF Serving's
        defaults: 1000 rows, no wait, a thread per core, 10 waiting batches.

    Example:
      >>> batcher = Batcher(read_batching_config("export/batching.config"))
      >>> name, outputs = batcher.predict(servable, "serving_default", {"x": rows})
      >>> batcher.stop()
    """

    def __init__(self, parameters):
        _validate_parameters(parameters)
        self.max_batch_size = _value(parameters, "max_batch_size", _DEFAULT_MAX_BATCH_SIZE)
        self.timeout = _value(parameters, "batch_timeout_micros", _DEFAULT_TIMEOUT_MICROS) / 1e6
        self.num_batch_threads = _value(parameters, "num_batch_threads", os.cpu_count() or 1)
        self.max_enqueued_batches = _value(parameters, "max_enqueued_batches",
                                           _DEFAULT_MAX_ENQUEUED_BATCHES)
        self.allowed_batch_sizes = list(parameters.allowed_batch_sizes)
        self._queues = collections.OrderedDict()  # key -> (servable, signature, filter, deque)
        self._condition = threading.Condition()
        self._stopped = False
        self.batches_run = 0  # signature calls made, for tests and metrics
        self._threads = [threading.Thread(target=self._work, name=f"tfopt-batch-{index}",
                                          daemon=True)
                         for index in range(self.num_batch_threads)]
        for thread in self._threads:
            thread.start()

    @property
    def waiting_calls(self):
        """How many calls must be able to wait at once for every batch thread's batch to fill.

        A server that answers each call on a thread of a bounded pool must have
        at least this many threads (up to 256): a call waiting for its batch
        holds one, so with fewer threads batches never grow past the pool's size.
        """
        return min(_MAX_WAITING_CALLS, self.max_batch_size * self.num_batch_threads)

    def predict(self, servable, signature_name, inputs, output_filter=()):
        """`servable.predict(inputs, signature_name, output_filter)`, run in a shared batch.

        Blocks until the batch holding this call has run.

        Returns:
          The resolved signature name and this call's outputs (alias -> array).

        Raises:
          ServingError: what the servable raises for these inputs alone;
            UNAVAILABLE when the queue is full or the batcher is stopped.
        """
        # "" and "serving_default" name one signature: their calls share batches.
        key, rows = _batch_key(servable, signature_name or _DEFAULT_SIGNATURE, inputs,
                               output_filter)
        if key is None or rows > self.max_batch_size:
            return servable.predict(inputs, signature_name, output_filter)
        task = _Task(inputs, rows, futures.Future(), time.monotonic())
        with self._condition:
            if self._stopped:
                raise ServingError(grpc.StatusCode.UNAVAILABLE, "Batcher is stopped.")
            entry = self._queues.get(key)
            if entry is None:
                entry = self._queues[key] = (servable, signature_name, tuple(output_filter),
                                             collections.deque())
            waiting = sum(task.rows for task in entry[3])
            if (waiting + rows) > self.max_batch_size * self.max_enqueued_batches:
                raise ServingError(grpc.StatusCode.UNAVAILABLE,
                                   "The batch scheduling queue to which this task was submitted "
                                   "is full")
            entry[3].append(task)
            self._condition.notify()
        return task.future.result()

    def stop(self):
        """Ends the worker threads after the batches already queued have run."""
        with self._condition:
            self._stopped = True
            self._condition.notify_all()
        for thread in self._threads:
            thread.join()

    def _take_batch(self):
        """Under the lock: the next batch that is ready, or the seconds until one may be."""
        now = time.monotonic()
        wait = None
        for key, (servable, signature_name, output_filter, queue) in self._queues.items():
            rows = sum(task.rows for task in queue)
            age = now - queue[0].arrived
            if rows >= self.max_batch_size or age >= self.timeout or self._stopped:
                tasks = []
                total = 0
                while queue and total + queue[0].rows <= self.max_batch_size:
                    total += queue[0].rows
                    tasks.append(queue.popleft())
                if not queue:
                    del self._queues[key]
                return (servable, signature_name, output_filter, tasks), None
            left = self.timeout - age
            wait = left if wait is None else min(wait, left)
        return None, wait

    def _work(self):
        while True:
            with self._condition:
                while True:
                    batch, wait = self._take_batch()
                    if batch is not None:
                        break
                    if self._stopped and not self._queues:
                        return
                    self._condition.wait(wait)
            self._run(*batch)

    def _run(self, servable, signature_name, output_filter, tasks):
        """Runs `tasks` as one call and gives each its rows; alone when that cannot work."""
        if len(tasks) == 1 and not self.allowed_batch_sizes:
            self._run_alone(servable, signature_name, output_filter, tasks[0])
            return
        total = sum(task.rows for task in tasks)
        size = next((allowed for allowed in self.allowed_batch_sizes if allowed >= total), total)
        merged = {}
        for name in tasks[0].inputs:
            parts = [task.inputs[name] for task in tasks]
            if size > total:  # padded with copies of the first row, as TF Serving pads
                parts.append(np.repeat(parts[0][:1], size - total, axis=0))
            merged[name] = np.concatenate(parts)
        try:
            resolved, outputs = servable.predict(merged, signature_name, output_filter)
            self._count()
        except Exception:  # pylint: disable=broad-except  (each caller gets its own answer)
            outputs = None
        if outputs is None or any(np.ndim(value) == 0 or np.shape(value)[0] != size
                                  for value in outputs.values()):
            # An error, or outputs without the batch in dimension 0: the merged answer
            # cannot be split, so each call runs alone and gets exactly its own result.
            for task in tasks:
                self._run_alone(servable, signature_name, output_filter, task)
            return
        start = 0
        for task in tasks:
            rows = {alias: value[start:start + task.rows] for alias, value in outputs.items()}
            start += task.rows
            task.future.set_result((resolved, rows))

    def _count(self):
        with self._condition:
            self.batches_run += 1

    def _run_alone(self, servable, signature_name, output_filter, task):
        try:
            result = servable.predict(task.inputs, signature_name, output_filter)
            self._count()
            task.future.set_result(result)
        except Exception as error:  # pylint: disable=broad-except  (handed to the caller)
            task.future.set_exception(error)
