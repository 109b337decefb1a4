"""Servers in subprocesses and bounded load loops for the serving benchmark.

Everything is loopback (127.0.0.1) on free ports. Every load loop stops by
itself after `max_requests` requests or `max_seconds` seconds, whichever comes
first, and every server is killed when its `with` block ends.
"""

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import requests

HOST = "127.0.0.1"
_READY_SECONDS = 180  # a cold TensorFlow import and model load on 2 shared CPUs


def free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _console_script(name):
    return os.path.join(os.path.dirname(sys.executable), name)


@contextlib.contextmanager
def _process(command, ready_url, log_path, ready=lambda response: True):
    """Runs `command`, waits until GET `ready_url` answers 200 and `ready`, kills it on exit."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    with open(log_path, "w") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + _READY_SECONDS
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited ({process.returncode}) before "
                                   f"serving; its log:\n{_tail(log_path)}")
            try:
                response = requests.get(ready_url, timeout=2)
                if response.status_code == 200 and ready(response):
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{command[0]} not ready in {_READY_SECONDS} s; its log:\n"
                                   f"{_tail(log_path)}")
            time.sleep(0.25)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _tail(path, lines=30):
    with open(path) as f:
        return "".join(f.readlines()[-lines:])


def _available(response):
    return any(v.get("state") == "AVAILABLE"
               for v in response.json().get("model_version_status", []))


@contextlib.contextmanager
def tfopt_serve(name, base_path, log_path, batching_file=None, poll_seconds=1):
    """tfopt-serve serving `base_path` as `name`; yields {"grpc": port, "rest": port}.

    With `batching_file` (a BatchingParameters text file) it batches predict calls.
    """
    ports = {"grpc": free_port(), "rest": free_port()}
    command = [_console_script("tfopt-serve"), f"--model_name={name}",
               f"--model_base_path={base_path}", f"--port={ports['grpc']}",
               f"--rest_api_port={ports['rest']}", f"--host={HOST}",
               f"--file_system_poll_wait_seconds={poll_seconds}"]
    if batching_file:
        command += ["--enable_batching", f"--batching_parameters_file={batching_file}"]
    url = f"http://{HOST}:{ports['rest']}/v1/models/{name}"
    with _process(command, url, log_path, _available):
        yield ports


@contextlib.contextmanager
def fastapi_server(name, keras_path, log_path):
    """benchmarks._fastapi_server on `keras_path`; yields {"rest": port}."""
    port = free_port()
    command = [sys.executable, "-m", "benchmarks._fastapi_server", f"--model={keras_path}",
               f"--name={name}", f"--port={port}"]
    with _process(command, f"http://{HOST}:{port}/healthz", log_path):
        yield {"rest": port}


def version_states(name, rest_port):
    """{version: state} from the REST model status."""
    response = requests.get(f"http://{HOST}:{rest_port}/v1/models/{name}", timeout=5)
    return {int(v["version"]): v["state"]
            for v in response.json().get("model_version_status", [])}


# Callers: one per load thread, each with its own connection ------------------------------

def rest_caller(name, port, x):
    """A function sending one row-format predict request over a keep-alive session."""
    session = requests.Session()
    url = f"http://{HOST}:{port}/v1/models/{name}:predict"
    body = {"instances": x.tolist()}

    def call():
        response = session.post(url, json=body, timeout=30)
        if response.status_code != 200 or len(response.json()["predictions"]) != len(x):
            raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
    return call, session.close


def grpc_caller(name, port, x):
    """A function sending one predict request through `tfopt.serving.Client` (gRPC)."""
    from tfopt import serving  # pylint: disable=import-outside-toplevel
    client = serving.Client(HOST, model_name=name, grpc_port=port, protocol="grpc",
                            timeout=30, retries=0)
    client.predict(x)  # the metadata lookup, cached, stays out of the timings

    def call():
        client.predict(x)
    return call, client.close


def bundle_caller(bundle, x):
    """The floor: the serving_default signature called in-process."""
    def call():
        bundle.run("serving_default", x)
    return call, lambda: None


def run_load(make_caller, concurrency, max_requests, max_seconds, warmup=2):
    """Runs `concurrency` threads, each with its own caller, until either bound is reached.

    Returns {"requests", "failures", "seconds", "requests_per_second", "p50_ms",
    "p99_ms", "first_error"}; latencies of successful requests only.
    """
    callers = [make_caller() for _ in range(concurrency)]
    for call, _ in callers:
        for _ in range(warmup):
            call()
    lock = threading.Lock()
    latencies, errors = [], []
    issued = [0]
    start = time.perf_counter()
    deadline = start + max_seconds

    def worker(call):
        mine = []
        while True:
            with lock:
                if issued[0] >= max_requests:
                    break
                issued[0] += 1
            if time.perf_counter() > deadline:
                break
            began = time.perf_counter()
            try:
                call()
                mine.append(time.perf_counter() - began)
            except Exception as error:  # pylint: disable=broad-except  (counted, not fatal)
                with lock:
                    errors.append(repr(error)[:300])
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=worker, args=(call,), daemon=True)
               for call, _ in callers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max_seconds + 60)
    seconds = time.perf_counter() - start
    for _, close in callers:
        close()
    ms = 1000.0 * np.asarray(latencies) if latencies else np.asarray([np.nan])
    return {"requests": len(latencies) + len(errors), "failures": len(errors),
            "seconds": round(seconds, 3),
            "requests_per_second": len(latencies) / seconds,
            "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
            "first_error": errors[0] if errors else None}
