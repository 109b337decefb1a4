"""An export killed outright leaves nothing at its target and no litter after the next one."""

import os
import signal
import subprocess
import sys
import textwrap

import tf_keras as keras

from tfopt import export
from tests.export.conftest import time_limit

# Runs export.tflite with the converter stopped right after it saved the
# temporary SavedModel: the moment an export has written the most on the way.
_CHILD = textwrap.dedent("""
    import os, sys, time
    import tfopt
    import tf_keras as keras
    from tensorflow.lite.python import lite
    from tfopt import export

    def stop(*args, **kwargs):
        # Descriptors 1 and 2 are silenced during the conversion: report on the pipe.
        os.write(int(sys.argv[2]), b"converting\\n")
        time.sleep(600)

    lite._convert_graphdef = stop
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    export.tflite(model, sys.argv[1])
""")


def _tree(directory):
    return sorted(os.path.relpath(os.path.join(root, name), directory)
                  for root, dirs, files in os.walk(directory) for name in dirs + files)


def test_an_export_killed_mid_conversion_leaves_no_litter_after_the_next(tmp_path):
    target, scratch = tmp_path / "out" / "model.tflite", tmp_path / "tmp"
    scratch.mkdir()
    env = dict(os.environ, TMPDIR=str(scratch), TF_CPP_MIN_LOG_LEVEL="3")
    report, reported = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(target), str(reported)],
                             env=env, pass_fds=[reported], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    os.close(reported)
    try:
        with os.fdopen(report) as messages, time_limit(120):
            assert messages.readline().strip() == "converting"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()

    assert not target.exists()
    assert _tree(scratch) == []  # the converter's SavedModel did not go to the system temp
    staging = os.listdir(target.parent)
    assert len(staging) == 1 and staging[0].startswith(f".tfopt-{child.pid}-")
    assert "saved_model.pb" in {os.path.basename(p) for p in _tree(target.parent)}

    export.tflite(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), str(target))
    assert os.listdir(target.parent) == ["model.tflite"]
