"""A SavedModel export killed at any moment leaves no half-written version."""

import os
import random
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import tf_keras as keras

from tfopt.export import _versions
from tfopt.export._saved_model import saved_model
from tfopt.export._saved_model_bundle import SavedModelBundle
from tests.export.conftest import time_limit

# Imports tfopt once, then for each base path read from stdin forks a worker that
# exports version after version into it until the test kills it (saying when the
# first, slower one is done). Forking after the
# slow imports (no TensorFlow op has run yet) makes each round cost an export, not
# an interpreter start.
_CHILD = textwrap.dedent("""
    import os, sys
    import numpy as np
    import tfopt
    import tf_keras as keras
    from tfopt.export._saved_model import saved_model

    report = int(sys.argv[1])
    for line in sys.stdin:
        worker = os.fork()
        if worker == 0:
            keras.utils.set_random_seed(0)
            model = keras.Sequential([keras.Input((4,), name="features"),
                                      keras.layers.Dense(3, name="dense")])
            os.write(report, b"%d\\n" % os.getpid())
            for count in range(10**6):
                saved_model(model, line.strip(), warmup_inputs=np.ones((8, 4), "float32"))
                if count == 0:
                    os.write(report, b"exported\\n")
        os.waitpid(worker, 0)
        os.write(report, b"reaped\\n")
""")

# What a complete version holds; TF Serving reads the first two, warmup the third.
_FILES = ("saved_model.pb", os.path.join("variables", "variables.index"),
          os.path.join("assets.extra", "tf_serving_warmup_requests"))
_ROUNDS = 3


def _versions_in(base):
    return [name for name in os.listdir(base) if _versions.parse(name) is not None]


def _incomplete(base):
    """Integer-named directories missing a file, as a polling server would find them."""
    return [name for name in _versions_in(base)
            if not all(os.path.exists(os.path.join(base, name, f)) for f in _FILES)]


def _check_versions(base, killed):
    """Every version whole and numbered 1..n; anything else a dead worker's staging."""
    assert _incomplete(base) == []
    for name in _versions_in(base):
        with SavedModelBundle(base / name) as bundle:
            assert bundle.run("serving_default", np.ones((2, 4)))["dense"].shape == (2, 3)
    numbers = sorted(int(name) for name in _versions_in(base))
    assert numbers == list(range(1, len(numbers) + 1))
    left = [name for name in os.listdir(base) if _versions.parse(name) is None]
    assert all(any(name.startswith(f".tfopt-{pid}-") for pid in killed) for name in left)
    return len(numbers)


# Slow (~15 s of exports killed at random): `make test-slow` runs it; in `make test`,
# test_an_export_failing_at_any_stage_leaves_nothing fails an export at each stage.
@pytest.mark.slow
def test_versions_appear_whole_when_exports_are_killed_at_random(tmp_path):
    base = tmp_path / "digits"
    read, write = os.pipe()
    child = subprocess.Popen([sys.executable, "-c", _CHILD, str(write)], pass_fds=[write],
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, text=True,
                             env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3",
                                      OPENBLAS_NUM_THREADS="1"))
    os.close(write)
    rng, killed = random.Random(0), []
    try:
        with os.fdopen(read) as report:
            for _ in range(_ROUNDS):
                child.stdin.write(f"{base}\n")
                child.stdin.flush()
                with time_limit(120):
                    worker = int(report.readline())
                    assert report.readline().strip() == "exported"
                # Once traced, an export takes a few tenths of a second: each kill lands
                # at another point of another export.
                deadline = time.monotonic() + rng.uniform(0.0, 1.0)
                while time.monotonic() < deadline:  # poll as TF Serving does, only faster
                    if base.exists():
                        assert _incomplete(base) == []
                    time.sleep(0.005)
                os.kill(worker, signal.SIGKILL)
                killed.append(worker)
                with time_limit(60):
                    assert report.readline().strip() == "reaped"
                if base.exists():
                    _check_versions(base, killed)
    finally:
        child.kill()
        child.wait()
        child.stdin.close()

    count = _check_versions(base, killed) if base.exists() else 0
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,), name="features"),
                              keras.layers.Dense(3, name="dense")])
    assert saved_model(model, base) == str(base / str(count + 1))
    assert sorted(os.listdir(base), key=int) == [str(n) for n in range(1, count + 2)]


@pytest.mark.parametrize("stage", ["saved", "warmup written", "verified"])
def test_an_export_failing_at_any_stage_leaves_nothing(stage, tmp_path, monkeypatch):
    """The in-process counterpart: an error at each stage leaves the base path as it was."""
    from tfopt.export import _saved_model

    def fail(*args, **kwargs):
        raise RuntimeError(stage)

    target = {"saved": "_set_method_names", "warmup written": None, "verified": "_check"}[stage]
    model = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(3)])
    base = tmp_path / "m"
    saved_model(model, base, version=1)
    if target:
        monkeypatch.setattr(_saved_model, target, fail)
    else:
        monkeypatch.setattr(_saved_model._warmup, "write", fail)
    with pytest.raises(RuntimeError, match=stage):
        saved_model(model, base, version=1, overwrite=True, signatures="classify",
                    warmup_inputs=np.ones((2, 4), "float32"))
    assert os.listdir(base) == ["1"]
    assert not (base / "1" / "assets.extra").exists()  # the old version, untouched
