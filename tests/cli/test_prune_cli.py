import os
import subprocess
import sys

import tf_keras as keras

from tests.conftest import compile_model, small_cnn


def _run(*args):
    return subprocess.run([sys.executable, "-m", "tfopt.cli.prune", *args],
                          capture_output=True, text=True, timeout=300)


def test_prunes_shrinks_and_writes_a_loadable_model(tmp_path, digits):
    x, y = digits
    model = compile_model(small_cnn())
    model.fit(x, y, epochs=1, verbose=0)
    source, output = str(tmp_path / "model.keras"), str(tmp_path / "out" / "small.keras")
    model.save(source)
    result = _run(f"--model={source}", f"--output={output}", "--sparsity=0.5",
                  "--structure=channels", "--shrink", "--epochs=1")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy:" in result.stdout and f"wrote {output}" in result.stdout
    small = keras.models.load_model(output)
    assert small.count_params() < model.count_params()
    assert small.get_layer("hidden").units == 8
    assert [f for f in os.listdir(tmp_path / "out")] == ["small.keras"]  # no temporary left


def test_bad_flags_are_explained(tmp_path):
    result = _run("--model=missing.keras", f"--output={tmp_path / 'x.keras'}")
    assert result.returncode != 0 and "--model='missing.keras' does not exist" in result.stderr
    model = str(tmp_path / "m.keras")
    small_cnn().save(model)
    result = _run(f"--model={model}", f"--output={tmp_path / 'x.h5'}")
    assert result.returncode != 0 and "must end in .keras" in result.stderr
    result = _run(f"--model={model}", f"--output={tmp_path / 'x.keras'}", "--shrink")
    assert result.returncode != 0 and "--shrink needs --structure=channels" in result.stderr
    assert not (tmp_path / "x.keras").exists()
