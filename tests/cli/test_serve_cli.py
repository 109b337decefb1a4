"""Tests of tfopt-serve: tensorflow_model_server's flags, usage errors, a real run over loopback."""

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import grpc
import httpx
import pytest

from tests.cli.conftest import start_process
from tests.cli.conftest import with_default_sigint
from tests.serving.conftest import half_plus_two_base  # noqa: F401  (a fixture)
from tfopt.cli import serve
from tfopt.serving._errors import ServingError

HPT = "half_plus_two"


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_help_says_it_is_for_development_and_lists_tf_servings_flags(run_tool):
    _, stdout, _ = run_tool(serve.run, "--help")  # absl's --help exits 1
    # The module docstring is --help's text when the tool runs (here pytest is __main__).
    assert "for development and tests" in serve.__doc__ and "official image" in serve.__doc__
    for flag in ("--port", "--rest_api_port", "--model_name", "--model_base_path",
                 "--model_config_file", "--model_config_file_poll_wait_seconds",
                 "--file_system_poll_wait_seconds", "--enable_batching",
                 "--batching_parameters_file", "--monitoring_config_file",
                 "--enable_model_warmup", "--allow_version_labels_for_unavailable_models",
                 "--host"):
        assert flag in stdout or f"--[no]{flag[2:]}" in stdout, flag
    assert "default: '8500'" in stdout and "default: '127.0.0.1'" in stdout


@pytest.fixture
def files(tmp_path, half_plus_two_base):
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    batching = tmp_path / "batching.config"
    batching.write_text("max_batch_size { value: 8 } allowed_batch_sizes: 4")
    return {"base": half_plus_two_base, "bad_config": str(bad), "bad_batching": str(batching),
            "file": str(tmp_path / "bad.config"), "dir": str(tmp_path)}


@pytest.mark.parametrize("args, text", [
    (["--model_base_path={base}", "--batching_parameters_file={file}"],
     "--batching_parameters_file is set without setting --enable_batching to true."),
    ([], "give --model_base_path"),
    (["--model_base_path={base}", "--port=0"], "serve nothing"),
    (["--model_base_path={base}", "--port=8501", "--rest_api_port=8501"], "must differ"),
    (["--model_base_path={base}", "--model_config_file_poll_wait_seconds=5"],
     "needs --model_config_file"),
    (["--model_base_path={base}", "extra"], "unexpected arguments"),
    (["--model_base_path={base}", "--port=70000"], "--port"),
    (["--model_base_path={base}", "--file_system_poll_wait_seconds=-1"],
     "--file_system_poll_wait_seconds"),
    (["--model_base_path={dir}/missing"], "is not a directory"),
    (["--model_base_path={file}"], "is not a directory"),
    (["--model_config_file={bad_config}"],
     "Error parsing text-format tensorflow.serving.ModelServerConfig"),
    (["--model_config_file={dir}/missing.config"], "--model_config_file="),
    (["--model_base_path={base}", "--enable_batching", "--batching_parameters_file={bad_batching}"],
     "allowed_batch_sizes"),
    (["--model_base_path={base}", "--monitoring_config_file={bad_config}"],
     "Error parsing text-format tensorflow.serving.MonitoringConfig"),
], ids=lambda value: value if isinstance(value, str) else None)
def test_usage_errors_exit_2_with_one_clear_line(run_tool, files, args, text):
    code, stdout, stderr = run_tool(serve.run, *[arg.format(**files) for arg in args])
    assert code == 2, (stdout, stderr)
    assert text in stderr and len(stderr.strip().splitlines()) == 1, stderr


class _Lines:
    """Collects a process's stderr lines in a thread, so waiting on a line is bounded in time."""

    def __init__(self, stream):
        self.lines = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream):
        for line in stream:
            self.lines.append(line.rstrip("\n"))

    def wait_for(self, start, process, seconds=60):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if any(line.startswith(start) for line in self.lines):
                return
            assert process.poll() is None, "\n".join(self.lines)
            time.sleep(0.05)
        raise AssertionError(f"no line {start!r} in {seconds} s:\n" + "\n".join(self.lines))


def _median_status_seconds(port, count=11):
    """The median time of `count` status requests on one keep-alive connection."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    times = []
    for _ in range(count):
        start = time.perf_counter()
        connection.request("GET", f"/v1/models/{HPT}")
        assert connection.getresponse().read()
        times.append(time.perf_counter() - start)
    connection.close()
    return sorted(times)[count // 2]


def _grpc_status(port):
    # pylint: disable=import-outside-toplevel  (TensorFlow loads slowly; only this test needs it)
    from tensorflow_serving.apis import get_model_status_pb2
    from tensorflow_serving.apis import model_service_pb2_grpc

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        request = get_model_status_pb2.GetModelStatusRequest()
        request.model_spec.name = HPT
        return model_service_pb2_grpc.ModelServiceStub(channel).GetModelStatus(request, timeout=10)


@pytest.mark.parametrize("stop, exit_status, last_line", [
    (signal.SIGTERM, 0, "Exporting HTTP/REST API at:"),
    (signal.SIGINT, 130, "tfopt-serve: error: interrupted."),  # Ctrl-C: the tools' status
], ids=["sigterm", "sigint"])
def test_serves_rest_and_grpc_and_stops_on_a_signal(half_plus_two_base, stop, exit_status,
                                                    last_line):
    grpc_port, rest_port = _free_port(), _free_port()
    process = start_process(with_default_sigint([
        sys.executable, "-m", "tfopt.cli.serve", f"--port={grpc_port}",
        f"--rest_api_port={rest_port}", f"--model_name={HPT}",
        f"--model_base_path={half_plus_two_base}", "--enable_batching",
        "--file_system_poll_wait_seconds=0"]))
    try:
        lines = _Lines(process.stderr)
        lines.wait_for("Exporting HTTP/REST API at:", process)
        assert f"Running gRPC ModelServer at 127.0.0.1:{grpc_port} ..." in lines.lines
        assert f"Exporting HTTP/REST API at:127.0.0.1:{rest_port} ..." in lines.lines
        url = f"http://127.0.0.1:{rest_port}/v1/models/{HPT}"
        response = httpx.post(url + ":predict", content='{"instances": [1.0, 2.0]}', timeout=20)
        assert response.json() == {"predictions": [2.5, 3.0]}
        assert httpx.get(url, timeout=20).json()["model_version_status"][0]["state"] == "AVAILABLE"
        assert _median_status_seconds(rest_port) < 0.025  # no 40 ms delayed-ACK stall
        status = _grpc_status(grpc_port)
        assert [v.version for v in status.model_version_status] == [123]
        process.send_signal(stop)
        assert process.wait(timeout=30) == exit_status
        time.sleep(0.2)  # the reader thread takes the last lines
        assert lines.lines[-1].startswith(last_line), lines.lines[-3:]
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)


@pytest.mark.parametrize("busy_flag", ["--port", "--rest_api_port"])
def test_a_busy_port_is_a_one_line_failure(half_plus_two_base, busy_flag):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        ports = {"--port": _free_port(), "--rest_api_port": _free_port(), busy_flag: port}
        result = subprocess.run(
            [sys.executable, "-m", "tfopt.cli.serve", *[f"{k}={v}" for k, v in ports.items()],
             f"--model_base_path={half_plus_two_base}", "--file_system_poll_wait_seconds=0"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 1, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert f"cannot listen on 127.0.0.1:{port}" in last, result.stderr
    assert "AVAILABLE" not in result.stderr  # refused before any model loads


def test_the_config_file_is_re_read_every_poll(tmp_path, half_plus_two_base):
    from tfopt.cli import _serve_run  # pylint: disable=import-outside-toplevel
    from tfopt.export import _model_server_config  # pylint: disable=import-outside-toplevel

    def write(names):
        text = "".join(f'config {{ name: "{name}" base_path: "{half_plus_two_base}" '
                       'model_platform: "tensorflow" }\n' for name in names)
        path.write_text("model_config_list {\n" + text + "}\n")

    path = tmp_path / "models.config"
    write([HPT])
    config = _model_server_config.read_model_server_config(str(path))
    server = _serve_run.Server(config, model_config_file=str(path),
                               model_config_file_poll_wait_seconds=1,
                               file_system_poll_wait_seconds=0, log=lambda line: None)
    server.start()
    try:
        assert server.manager.model_names() == [HPT]
        write([HPT, "again"])
        deadline = time.monotonic() + 20
        while True:
            try:
                assert server.manager.servable("again").version == 123
                break
            except ServingError:
                assert time.monotonic() < deadline, "the new config was not loaded in 20 s"
                time.sleep(0.1)
    finally:
        server.stop()


def test_a_malformed_input_is_an_error_and_the_server_keeps_answering(tmp_path):
    """A rank-1 input to a convolution: TensorFlow's oneDNN kernel aborts the process on it
    (a CHECK in MklConvOp); tfopt-serve runs TensorFlow's default kernels, which answer
    INVALID_ARGUMENT, as TF Serving's official image does."""
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    from tfopt import export  # pylint: disable=import-outside-toplevel
    model = keras.Sequential([keras.Input((8, 8, 1), name="image"),
                              keras.layers.Conv2D(4, 3, name="conv"),
                              keras.layers.Flatten(), keras.layers.Dense(3, name="scores")])
    base = str(tmp_path / "cnn")
    export.saved_model(model, base, verify=False)
    rest_port = _free_port()
    process = start_process([sys.executable, "-m", "tfopt.cli.serve", "--port=0",
                             f"--rest_api_port={rest_port}", "--model_name=cnn",
                             f"--model_base_path={base}", "--file_system_poll_wait_seconds=0"])
    try:
        lines = _Lines(process.stderr)
        lines.wait_for("Exporting HTTP/REST API at:", process)
        url = f"http://127.0.0.1:{rest_port}/v1/models/cnn:predict"
        bad = httpx.post(url, content='{"instances": [1.0]}', timeout=20)
        assert bad.status_code == 400 and "error" in bad.json(), bad.text
        good = httpx.post(url, content=json.dumps({"instances": [[[[0.5]] * 8] * 8]}),
                          timeout=20)
        assert good.status_code == 200 and len(good.json()["predictions"][0]) == 3, good.text
        assert process.poll() is None
    finally:
        process.kill()
        process.wait(timeout=30)
