"""tfopt-serve's running parts (tfopt/cli/_serve_run.py): thread pools that let batches fill."""

import socket
import threading
import time

import grpc
import httpx
import numpy as np
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.config import model_server_config_pb2

from tests.serving.conftest import half_plus_two_base  # noqa: F401  (a fixture)
from tests.serving.rest_server import RunningApp
from tfopt.cli import _serve_run
from tfopt.export._protos import session_bundle_config_pb2
from tfopt.serving import _grpc_tensors
from tfopt.serving._batching import Batcher

HPT = "half_plus_two"
# Long enough that a batch that does not fill is plain to see; a full batch runs at once.
TIMEOUT_SECONDS = 20


def _parameters(max_batch_size, num_batch_threads=1, timeout_seconds=TIMEOUT_SECONDS):
    parameters = session_bundle_config_pb2.BatchingParameters()
    parameters.max_batch_size.value = max_batch_size
    parameters.batch_timeout_micros.value = int(timeout_seconds * 1e6)
    parameters.num_batch_threads.value = num_batch_threads
    return parameters


def _server(base, parameters):
    config = model_server_config_pb2.ModelServerConfig()
    config.model_config_list.config.add(name=HPT, base_path=base, model_platform="tensorflow")
    server = _serve_run.Server(config, batching=parameters, file_system_poll_wait_seconds=0,
                               log=lambda line: None)
    server.start()
    return server


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _concurrently(call, count):
    """Runs `call(i)` on `count` threads at once; (results by i, seconds until all answered)."""
    results = [None] * count
    start = threading.Barrier(count)

    def run(index):
        start.wait()
        results[index] = call(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(TIMEOUT_SECONDS + 30)
    return results, time.monotonic() - began


def test_call_threads_let_every_batch_thread_fill_its_batch():
    assert _serve_run.call_threads(None, cpus=2) == 8
    assert _serve_run.call_threads(Batcher(_parameters(32, 4)), cpus=2) == 128
    assert _serve_run.call_threads(Batcher(_parameters(2, 1)), cpus=2) == 8
    # --enable_batching without a file: TF Serving's 1000-row batches, threads bounded.
    assert _serve_run.call_threads(Batcher(_serve_run.default_batching()), cpus=2) == 256


def test_grpc_calls_beyond_four_a_cpu_fill_one_batch(half_plus_two_base):
    rows = _serve_run.call_threads(None) + 8  # more than the pool held before batching grew it
    server = _server(half_plus_two_base, _parameters(rows))
    try:
        port = _free_port()
        server.bind_grpc("127.0.0.1", port)
        server.start_grpc()
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)

            def predict(index):
                request = predict_pb2.PredictRequest()
                request.model_spec.name = HPT
                request.inputs["x"].CopyFrom(
                    _grpc_tensors.request_proto(np.array([[float(index)]], np.float32)))
                response = stub.Predict(request, timeout=TIMEOUT_SECONDS + 20)
                return _grpc_tensors.to_array(response.outputs["y"])

            results, seconds = _concurrently(predict, rows)
        assert seconds < TIMEOUT_SECONDS / 2, "the batch waited for its timeout: it never filled"
        assert server.batcher.batches_run == 1
        for index, result in enumerate(results):
            np.testing.assert_allclose(result, [[0.5 * index + 2]])
    finally:
        server.stop()


def test_rest_calls_beyond_anyios_40_threads_fill_one_batch(half_plus_two_base):
    rows = 48  # anyio's default pool runs 40 calls at once
    server = _server(half_plus_two_base, _parameters(rows))
    app = RunningApp(server.rest_app())
    try:
        with httpx.Client(timeout=TIMEOUT_SECONDS + 20,
                          limits=httpx.Limits(max_connections=rows)) as client:
            def predict(index):
                response = client.post(f"{app.url}/v1/models/{HPT}:predict",
                                       json={"instances": [[float(index)]]})
                return response.status_code, response.json()

            results, seconds = _concurrently(predict, rows)
        assert seconds < TIMEOUT_SECONDS / 2, "the batch waited for its timeout: it never filled"
        assert server.batcher.batches_run == 1
        for index, (status, body) in enumerate(results):
            assert status == 200 and body == {"predictions": [[0.5 * index + 2]]}
    finally:
        app.stop()
        server.stop()
