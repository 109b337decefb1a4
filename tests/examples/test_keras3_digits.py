"""examples/keras3_digits.py runs end to end with tiny epochs, prints its table and checks.

Each test runs the example in a child Python (its flags, Keras backend and
TensorFlow logging are its own). A whole run trains three times and converts
four files: 15-30 s on 2 cores, so these are slow tests (`make test-slow`).
"""

import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
EXAMPLE = os.path.join(ROOT, "examples", "keras3_digits.py")
TINY = ["--epochs=1", "--prune_epochs=1", "--qat_epochs=1"]
ROW = re.compile(r"^(float|pruned \+ shrunk|int8 QAT) +(Keras \.keras|TFLite \w+|SavedModel) +"
                 r"([\d,]+) +([\d.]+) +([\d,]+) +([\d.]+)% +(-|[\d.]+%) +(-|[\d.]+)$")


def _run(arguments, tmp_path, backend="tensorflow"):
    """Runs `arguments` in a child Python from an empty directory, TMPDIR inside tmp_path."""
    (tmp_path / "cwd").mkdir()
    (tmp_path / "tmp").mkdir()
    # PYTHONPATH: the child imports this checkout's tfopt, as the tests do.
    path = os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "TMPDIR": str(tmp_path / "tmp"), "TF_CPP_MIN_LOG_LEVEL": "2",
           "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "PYTHONPATH": path}
    return subprocess.run([sys.executable, *arguments], cwd=tmp_path / "cwd", env=env,
                          capture_output=True, text=True, timeout=600)


def _table(stdout):
    rows = {}
    for line in stdout.splitlines():
        match = ROW.match(line)
        if match:
            stage, kind, params, mflops, size, accuracy, agreement, latency = match.groups()
            rows[stage, kind] = {
                "parameters": int(params.replace(",", "")), "mflops": float(mflops),
                "bytes": int(size.replace(",", "")), "accuracy": float(accuracy),
                "agreement": None if agreement == "-" else float(agreement[:-1]),
                "latency": None if latency == "-" else float(latency)}
    return rows


@pytest.mark.slow
def test_the_example_prints_its_table_and_leaves_no_file(tmp_path):
    result = _run([EXAMPLE, *TINY], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    rows = _table(result.stdout)
    assert list(rows) == [("float", "Keras .keras"), ("float", "TFLite float32"),
                          ("pruned + shrunk", "Keras .keras"),
                          ("pruned + shrunk", "TFLite float32"),
                          ("pruned + shrunk", "SavedModel"), ("int8 QAT", "Keras .keras"),
                          ("int8 QAT", "TFLite int8")], result.stdout
    float_, small = rows["float", "Keras .keras"], rows["pruned + shrunk", "Keras .keras"]
    # Half the channels of each hidden layer: about a quarter of the weights and FLOPs.
    assert small["parameters"] < float_["parameters"] / 3
    assert small["mflops"] < float_["mflops"] / 3
    int8_file = rows["int8 QAT", "TFLite int8"]
    assert int8_file["bytes"] < rows["pruned + shrunk", "TFLite float32"]["bytes"] / 2.5
    files = [row for (_, kind), row in rows.items() if kind != "Keras .keras"]
    assert all(row["agreement"] >= 98.0 for row in files), rows
    assert all(row["latency"] > 0 for (_, kind), row in rows.items() if kind.startswith("TFLite"))
    # Temporary files only, removed at the end; nothing in the working directory.
    assert not os.listdir(tmp_path / "cwd") and not os.listdir(tmp_path / "tmp")


# The example as run, with tfopt's shrink replaced by strip (channels zeroed, not removed).
_SHRINK_THAT_KEEPS_WIDTHS = """
import runpy, sys
from tfopt.keras3 import pruning
pruning.shrink = pruning.strip
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


@pytest.mark.slow
def test_a_failed_check_makes_the_example_exit_non_zero(tmp_path):
    result = _run(["-c", _SHRINK_THAT_KEEPS_WIDTHS, EXAMPLE, *TINY], tmp_path)
    assert result.returncode != 0
    assert "RuntimeError: Verification failed: shrunk widths" in result.stderr, \
        result.stderr[-3000:]
    assert "stage" not in result.stdout  # no table for a run that failed


@pytest.mark.slow
def test_another_keras_backend_is_refused_before_training(tmp_path):
    result = _run([EXAMPLE, *TINY], tmp_path, backend="jax")
    assert result.returncode == 1
    assert result.stderr.strip().endswith(
        "This example exports through TensorFlow, but Keras runs on 'jax': unset "
        "KERAS_BACKEND or set it to 'tensorflow'."), result.stderr[-3000:]
