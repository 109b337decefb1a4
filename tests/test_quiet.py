"""Tests of tfopt.quiet: TensorFlow's log noise hidden in tools and examples, and shown on request."""

import os
import subprocess
import sys

import pytest

from tfopt import quiet
from tests.cli.conftest import noise_in
from tests.cli.conftest import run_process

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Starts quietly, then makes TensorFlow pick its devices: on a machine without a
# GPU that is where "failed call to cuInit: ... CUDA error" is logged.
_TINY_RUN = """
import os
from tfopt import quiet
quiet.silence_tensorflow()
import tensorflow as tf
print(float(tf.reduce_sum(tf.ones((2, 2)))), os.environ.get("TF_CPP_MIN_LOG_LEVEL"))
"""

_PREAMBLE = ("WARNING: All log messages before absl::InitializeLog() is called are written "
             "to STDERR\n")


@pytest.mark.parametrize("line,level,noise", [
    (_PREAMBLE, 3, True),
    ("I0000 00:00:1795496675.983626    3866 port.cc:153] oneDNN custom operations are on.\n",
     3, True),
    ("E0000 00:00:1795496867.777784    5580 cuda_platform.cc:52] failed call to cuInit\n",
     3, True),
    ("E0000 00:00:1795496867.777784    5580 cuda_platform.cc:52] failed call to cuInit\n",
     2, False),  # a level the user chose keeps errors
    ("W1124 05:19:13.580431 140592491252608 optimizer.py:908] Skipping variable loading\n",
     2, True),
    ("F0000 00:00:1795496867.777784    5580 main.cc:1] Check failed\n", 3, False),
    ("Traceback (most recent call last):\n", 3, False),
    ("  I0000 is not at the start of this line\n", 3, False),
])
def test_noise_is_told_from_other_output_by_format_and_level(line, level, noise):
    assert quiet._is_noise(line, level) is noise


def test_filter_works_on_the_file_descriptor_and_keeps_the_rest(capfd):
    """TensorFlow's C++ code writes to descriptor 2 itself, past sys.stderr."""
    with quiet._stderr_without_logs_below(3):
        os.write(2, b"I0000 00:00:1.5    7 port.cc:153] oneDNN custom operations are on.\n")
        os.write(2, _PREAMBLE.encode())
        print("a Python warning", file=sys.stderr)
        os.write(2, b"E0000 00:00:1.5    7 cuda_platform.cc:52] failed call to cuInit\n")
    os.write(2, b"I0000 00:00:1.5    7 later.cc:1] after the block: not filtered\n")
    assert capfd.readouterr().err == (
        "a Python warning\nI0000 00:00:1.5    7 later.cc:1] after the block: not filtered\n")


@pytest.mark.parametrize("env,quiet,level", [
    ({}, True, "3"),
    ({"TFOPT_VERBOSE": "1"}, False, None),
    ({"TF_CPP_MIN_LOG_LEVEL": "0"}, False, "0"),  # the user's setting is honoured
])
def test_tiny_run_is_quiet_unless_asked(env, quiet, level):
    result = run_process([sys.executable, "-c", _TINY_RUN], env=env)
    assert result.returncode == 0, result.stderr[-2000:]
    total, seen = result.stdout.split()
    assert total == "4.0"
    if level is None:
        # tfopt set nothing; TensorFlow's import may (it imports Keras 3, which imports
        # jax when installed, and jax sets TF_CPP_MIN_LOG_LEVEL=1 if unset).
        assert seen in ("None", "1"), seen
    else:
        assert seen == level
    assert (noise_in(result.stderr) == []) is quiet, result.stderr


def test_example_starts_quietly():
    result = run_process([sys.executable, os.path.join(_ROOT, "examples", "prune_digits.py"),
                          "--help"])
    assert "--fine_tune_epochs" in result.stdout  # the example ran as far as its flags
    assert noise_in(result.stderr) == [], result.stderr


_TFLITE_RUN = """
from tfopt import quiet
quiet.silence_tensorflow()
import numpy as np
import tf_keras as keras
from tfopt import export
model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
x = np.random.default_rng(0).random((40, 4), dtype=np.float32)
export.tflite(model, "model.tflite", mode="int8", representative_data=x)
export.verify_tflite("model.tflite", x, reference=model, latency_runs=0)
"""


def test_tflite_export_and_verification_print_nothing(tmp_path):
    """Not the converter's lines, nor LiteRT's "Created TensorFlow Lite XNNPACK delegate"."""
    result = subprocess.run([sys.executable, "-c", _TFLITE_RUN], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300,
                            env={key: value for key, value in os.environ.items()
                                 if key not in ("TF_CPP_MIN_LOG_LEVEL", "TFOPT_VERBOSE")})
    assert result.returncode == 0, result.stderr[-2000:]
    assert (result.stdout, result.stderr) == ("", "")
