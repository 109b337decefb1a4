"""Fixtures for the command-line tools: input files, in-process runs, console-script runs."""

import os
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from tests.conftest import compile_model, small_cnn

# TensorFlow's C++ log lines, as it prints them when nothing silences it.
NOISE = ("oneDNN custom operations", "Could not find cuda drivers", "cuInit",
         "absl::InitializeLog", "cpu_feature_guard")


def console_script(name):
    """The installed console script `name`, beside the interpreter running the tests."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    assert os.path.exists(path), (f"{path} is not installed; run `pip install -e .` (or make "
                                  "test), which writes the console scripts of setup.cfg.")
    return path


def start_process(command, env=None):
    """Starts `command` with TensorFlow's log settings left to the code under test."""
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("TF_CPP_MIN_LOG_LEVEL", "TFOPT_VERBOSE")}
    environment.update(env or {})
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=environment)


def with_default_sigint(command):
    """`command` started with SIGINT at its default disposition, as a terminal starts it.

    A suite run as a background job of a non-interactive shell (`make test &`) has SIGINT
    ignored, and children inherit that: Python then installs no KeyboardInterrupt handler
    and Ctrl-C is a no-op, as it should be under nohup. The exec keeps SIG_DFL.
    """
    reset = ("import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
             "os.execv(sys.argv[1], sys.argv[1:])")
    return [sys.executable, "-c", reset] + list(command)


def finish_process(process, timeout=300):
    """Waits for a started process: a CompletedProcess with its output."""
    stdout, stderr = process.communicate(timeout=timeout)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


def run_process(command, env=None):
    return finish_process(start_process(command, env))


def noise_in(text):
    return [line for line in text.splitlines() if any(mark in line for mark in NOISE)]


@pytest.fixture(autouse=True)
def fresh_flags():
    """absl flags are global: every in-process run starts from the defaults."""
    flags.FLAGS.unparse_flags()
    yield
    flags.FLAGS.unparse_flags()


@pytest.fixture(scope="session")
def tool_files(tmp_path_factory):
    """A small trained digits CNN saved as .keras, and .npz files good and bad."""
    directory = tmp_path_factory.mktemp("tool_files")
    rng = np.random.default_rng(0)
    x = rng.random((40, 8, 8, 1), dtype=np.float32)
    y = rng.integers(0, 10, 40)
    model = compile_model(small_cnn())
    model.fit(x, y, epochs=1, verbose=0)
    paths = {"model": str(directory / "model.keras"), "directory": str(directory)}
    model.save(paths["model"])
    arrays = {
        "ok": dict(x_train=x, y_train=y),
        "wrong_shape": dict(x_train=rng.random((40, 28, 28, 1)), y_train=y),
        "labels_out_of_range": dict(x_train=x, y_train=y + 10),
        "length_mismatch": dict(x_train=x, y_train=y[:30]),
        "missing_keys": dict(images=x, labels=y),
        "object_arrays": dict(x_train=np.array([x[0], "a"], dtype=object), y_train=y[:2]),
    }
    for name, content in arrays.items():
        paths[name] = str(directory / f"{name}.npz")
        np.savez(paths[name], **content)
    return paths


@pytest.fixture
def run_tool(capsys):
    """Runs a tool's `run(argv)` in this process: (exit status, stdout, stderr)."""
    def run(tool_run, *args):
        with pytest.raises(SystemExit) as exit_info:
            tool_run(["tool", *args])
        out, err = capsys.readouterr()
        return exit_info.value.code, out, err
    return run
