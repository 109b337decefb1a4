"""serving/README.md's local loop, run in bash as written: export, tfopt-serve, requests, drift.

The block starts with `make -C .. demo`, the digits example's export; the test
makes that export itself (a classifier trained on digits, so its predicted
classes follow the reference's) and runs the rest of the block as written,
except that the servers bind free ports instead of 8500 and 8501.
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import tf_keras as keras

from tests.export.conftest import EXAMPLE_MODEL
from tests.export.test_kit_readme import README
from tests.export.test_kit_readme import _make_kit_copy
from tfopt import datasets
from tfopt import export

MARKER = "<!-- runs in tests/serving/test_local_loop_readme.py"


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _block():
    with open(README, encoding="utf-8") as stream:
        text = stream.read()
    [block] = re.findall(re.escape(MARKER) + r"[^\n]*-->\n```bash\n(.*?)```", text, flags=re.S)
    return block


def _trained_digits_classifier():
    keras.utils.set_random_seed(0)
    (x_train, y_train), _ = datasets.load_digits()
    model = keras.Sequential([keras.Input((8, 8, 1), name="image"), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax", name="digit")])
    model.compile("adam", "sparse_categorical_crossentropy")
    model.fit(x_train, y_train, epochs=30, batch_size=64, verbose=0)
    return model


@pytest.mark.slow
def test_local_loop_runs_as_written_and_finds_no_drift(tmp_path):
    folder = _make_kit_copy(tmp_path)
    base_path = os.path.join(folder, "models", EXAMPLE_MODEL)
    export.saved_model(_trained_digits_classifier(), base_path, version=3)  # the newest
    demo, block = _block().split("\n", 1)
    assert demo.startswith("make -C .. demo")
    rest_port, grpc_port = _free_port(), _free_port()
    block = block.replace("8501", str(rest_port)).replace(
        "tfopt-serve ", f"tfopt-serve --port={grpc_port} ", 1)
    environment = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ["PATH"])
    result = subprocess.run(["bash", "-e", "-c", block], cwd=folder, env=environment,
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, f"{block}\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert '"predictions": [' in result.stdout
    assert (':tensorflow:serving:request_count{model_name="digits",status="OK"} '
            in result.stdout)
    [log] = os.listdir(os.path.join(folder, "logs"))
    assert log.startswith("digits-")
    with open(os.path.join(folder, "drift", "report.json"), encoding="utf-8") as stream:
        report = json.load(stream)
    # predict.json's 2 digits and traffic.json's 797, served by the newest version.
    assert report["logs"]["rows"] == {"image": 799} and report["logs"]["versions"] == [3]
    assert report["drift"] is False and "no drift" in result.stdout
    assert np.load(os.path.join(folder, "reference.npz"))["x_train"].shape == (1000, 8, 8, 1)
