"""Batcher: concurrent predict calls merged into one signature call, each caller its own rows."""

import concurrent.futures
import threading
import time

import grpc
import numpy as np
import pytest

from tfopt.export._protos import session_bundle_config_pb2
from tfopt.serving._batching import Batcher
from tfopt.serving._errors import ServingError


class RecordingServable:
    """A stand-in for Servable.predict: y = 2x + row sum, records each call's batch size."""

    def __init__(self, delay=0.0, scalar_output=False):
        self.calls = []
        self.delay = delay
        self.scalar_output = scalar_output
        self.lock = threading.Lock()

    def predict(self, inputs, signature_name="", output_filter=()):
        x = inputs["x"]
        if not np.isfinite(x).all():
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "x must be finite")
        with self.lock:
            self.calls.append(len(x))
        time.sleep(self.delay)
        outputs = {"y": 2 * x + x.sum(axis=1, keepdims=True)}
        if self.scalar_output:
            outputs["total"] = np.float32(x.sum())
        return signature_name or "serving_default", outputs


def parameters(**fields):
    message = session_bundle_config_pb2.BatchingParameters()
    for name, value in fields.items():
        if name == "allowed_batch_sizes":
            message.allowed_batch_sizes.extend(value)
        else:
            getattr(message, name).value = value
    return message


def expected(x):
    return 2 * x + x.sum(axis=1, keepdims=True)


def run_concurrently(batcher, servable, requests, signature="serving_default"):
    """Each request from its own thread at once; the results in request order."""
    results = [None] * len(requests)
    barrier = threading.Barrier(len(requests))

    def call(index):
        barrier.wait()
        try:
            results[index] = batcher.predict(servable, signature, {"x": requests[index]})
        except ServingError as error:
            results[index] = error

    threads = [threading.Thread(target=call, args=(i,)) for i in range(len(requests))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=20)
        assert not thread.is_alive()
    return results


@pytest.fixture
def make_batcher():
    batchers = []

    def make(**fields):
        batchers.append(Batcher(parameters(**fields)))
        return batchers[-1]

    yield make
    for batcher in batchers:
        batcher.stop()


@pytest.mark.parametrize("threads", [8, 32])
def test_concurrent_calls_are_merged_and_each_gets_its_rows(make_batcher, threads):
    servable = RecordingServable(delay=0.01)
    batcher = make_batcher(max_batch_size=16, batch_timeout_micros=50_000, num_batch_threads=2)
    rng = np.random.default_rng(threads)
    requests = [rng.normal(size=(1 + i % 3, 4)).astype(np.float32) for i in range(threads)]
    results = run_concurrently(batcher, servable, requests)
    for x, (name, outputs) in zip(requests, results):
        assert name == "serving_default"
        np.testing.assert_allclose(outputs["y"], expected(x), rtol=1e-6)
    assert sum(servable.calls) == sum(len(x) for x in requests)
    assert max(servable.calls) <= 16
    assert len(servable.calls) < threads  # merged, not one call per request


def test_a_full_batch_runs_without_waiting_for_the_timeout(make_batcher):
    servable = RecordingServable()
    batcher = make_batcher(max_batch_size=4, batch_timeout_micros=10_000_000, num_batch_threads=1)
    start = time.monotonic()
    results = run_concurrently(batcher, servable, [np.ones((1, 2), np.float32)] * 4)
    assert time.monotonic() - start < 5
    assert servable.calls == [4]
    assert all(outputs["y"].shape == (1, 2) for _, outputs in results)


def test_batches_are_padded_to_allowed_sizes_and_padding_is_not_returned(make_batcher):
    servable = RecordingServable()
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1,
                           allowed_batch_sizes=[4, 8])
    requests = [np.full((1, 3), i, np.float32) for i in range(3)]
    results = run_concurrently(batcher, servable, requests)
    assert servable.calls == [4]
    for x, (_, outputs) in zip(requests, results):
        np.testing.assert_array_equal(outputs["y"], expected(x))


def test_one_bad_call_fails_alone(make_batcher):
    servable = RecordingServable()
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1)
    requests = [np.ones((1, 2), np.float32), np.full((1, 2), np.nan, np.float32),
                np.zeros((2, 2), np.float32)]
    results = run_concurrently(batcher, servable, requests)
    assert isinstance(results[1], ServingError)
    assert results[1].code == grpc.StatusCode.INVALID_ARGUMENT
    np.testing.assert_array_equal(results[0][1]["y"], expected(requests[0]))
    np.testing.assert_array_equal(results[2][1]["y"], expected(requests[2]))


def test_outputs_without_a_batch_dimension_are_computed_per_call(make_batcher):
    servable = RecordingServable(scalar_output=True)
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=200_000, num_batch_threads=1)
    requests = [np.full((1, 2), i, np.float32) for i in (1, 2)]
    results = run_concurrently(batcher, servable, requests)
    for x, (_, outputs) in zip(requests, results):
        assert outputs["total"] == x.sum()  # the merged call's total would be 6


@pytest.mark.parametrize("inputs", [{"x": np.float32(3)}, {"x": np.ones((9, 2), np.float32)}],
                         ids=["rank0", "over_max_batch_size"])
def test_calls_that_cannot_be_merged_run_directly(make_batcher, inputs):
    class Scalar(RecordingServable):
        def predict(self, inputs, signature_name="", output_filter=()):
            self.calls.append(np.shape(inputs["x"]))
            return "serving_default", {"y": inputs["x"] * 2}

    servable = Scalar()
    batcher = make_batcher(max_batch_size=8, batch_timeout_micros=10_000_000)
    _, outputs = batcher.predict(servable, "", inputs)
    np.testing.assert_array_equal(outputs["y"], inputs["x"] * 2)
    assert servable.calls == [np.shape(inputs["x"])]


def test_a_full_queue_refuses_with_unavailable(make_batcher):
    servable = RecordingServable(delay=0.3)
    batcher = make_batcher(max_batch_size=1, batch_timeout_micros=0, num_batch_threads=1,
                           max_enqueued_batches=1)
    results = run_concurrently(batcher, servable, [np.ones((1, 2), np.float32)] * 6)
    refused = [r for r in results if isinstance(r, ServingError)]
    assert refused and all(r.code == grpc.StatusCode.UNAVAILABLE for r in refused)
    assert "queue" in refused[0].message
    assert len(servable.calls) == len(results) - len(refused)


@pytest.mark.parametrize("bad, error, text", [
    ("max_batch_size: 32", TypeError, "BatchingParameters"),
    (parameters(max_batch_size=0), ValueError, "max_batch_size=0"),
    (parameters(num_batch_threads=0), ValueError, "num_batch_threads=0"),
    (parameters(batch_timeout_micros=-1), ValueError, "batch_timeout_micros=-1"),
    (parameters(max_batch_size=8, allowed_batch_sizes=[4, 2, 8]), ValueError, "increasing"),
    (parameters(max_batch_size=8, allowed_batch_sizes=[4]), ValueError, "end at"),
])
def test_bad_parameters_raise_naming_them(bad, error, text):
    with pytest.raises(error, match=text):
        Batcher(bad)


def test_the_default_signature_by_either_name_shares_batches(make_batcher):
    servable = RecordingServable()
    batcher = make_batcher(max_batch_size=2, batch_timeout_micros=10_000_000, num_batch_threads=1)
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        calls = [pool.submit(batcher.predict, servable, name, {"x": np.full((1, 2), i, np.float32)})
                 for i, name in enumerate(["", "serving_default"])]
        results = [call.result(timeout=20) for call in calls]
    assert servable.calls == [2]  # one full batch, not two waiting for the 10 s timeout
    for i, (_, outputs) in enumerate(results):
        np.testing.assert_array_equal(outputs["y"], expected(np.full((1, 2), i, np.float32)))
