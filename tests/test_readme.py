"""The README's code does what the README says when it is copied and run."""

import os
import re
import subprocess
import sys

import pytest

README = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "README.md")


def python_blocks(section):
    """The ```python blocks of one `## section` of the README, in order."""
    with open(README, encoding="utf-8") as f:
        text = f.read()
    start = text.index(f"## {section}\n")
    end = text.find("\n## ", start + 1)
    return re.findall(r"```python\n(.*?)```", text[start:end if end > 0 else None], re.S)


def run_python(code, cwd):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.mark.slow
def test_quick_start_quantization_and_distillation_run_as_written(tmp_path):
    """The four snippets, run one after the other as the README presents them."""
    code = "\n".join([python_blocks("Quick start")[0],
                      python_blocks("Quick start")[1],  # quantization and TFLite export
                      python_blocks("Quick start")[2],  # distillation
                      "small.compile(loss=loss, metrics=['accuracy'])",
                      "print(f'distilled student: {small.count_params():,} parameters, "
                      "accuracy {small.evaluate(x_test, y_test, verbose=0)[1]:.3f}')",
                      python_blocks("Quick start")[3]])  # SavedModel export and the kit
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]

    # Pruning: the schedule reaches its target inside the fit it shows.
    assert "training stopped at step" not in result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    for hidden in ("conv2d", "conv2d_1", "dense"):
        assert rows[hidden][2] == "channels"
        assert abs(float(rows[hidden][-1].rstrip("%")) - 80.0) < 2.5, rows[hidden]
    summary = re.search(r"parameters ([\d,]+) -> ([\d,]+), test accuracy ([\d.]+) -> ([\d.]+)",
                        result.stdout)
    assert summary, result.stdout
    before, after = (int(summary.group(i).replace(",", "")) for i in (1, 2))
    assert after < 0.1 * before
    assert float(summary.group(4)) > 0.85
    assert os.listdir(tmp_path / "logs")  # PruningSummaries wrote its events

    # Quantization: a verified int8 file, figures in the units the tables use.
    int8 = re.search(r"int8 file: ([\d,]+) bytes, accuracy ([\d.]+), agrees with Keras on "
                     r"([\d.]+)%, ([\d.]+) ms", result.stdout)
    assert int8, result.stdout
    assert int(int8.group(1).replace(",", "")) == os.path.getsize(tmp_path / "model.tflite")
    assert float(int8.group(2)) > 0.85 and float(int8.group(3)) >= 98.0
    assert 0 < float(int8.group(4)) < 10

    # Distillation: a student with a fraction of the teacher's parameters that learned.
    student = re.search(r"distilled student: ([\d,]+) parameters, accuracy ([\d.]+)",
                        result.stdout)
    assert student, result.stdout
    assert int(student.group(1).replace(",", "")) < 0.2 * before
    assert float(student.group(2)) > 0.85

    # SavedModel export: version 1, verified through TF Serving's loader, with its configs
    # and a kit that names them.
    saved = re.search(r"SavedModel (\S+): accuracy ([\d.]+), max abs diff ([\d.e+-]+), "
                      r"(\d+) warmup records replayed", result.stdout)
    assert saved, result.stdout
    assert saved.group(1) == str(tmp_path / "models" / "digits" / "1")
    assert abs(float(saved.group(2)) - float(student.group(2))) < 0.01
    assert float(saved.group(3)) < 1e-3 and int(saved.group(4)) == 32 + 1
    from tfopt import export
    [served] = export.read_model_server_config(
        str(tmp_path / "models" / "models.config")).model_config_list.config
    assert (served.name, served.base_path, dict(served.version_labels)) == (
        "digits", "/models/digits", {"stable": 1})
    with open(tmp_path / "kit" / "docker-compose.yml") as stream:
        assert "--model_config_file=/models/models.config" in stream.read()


@pytest.mark.slow
def test_the_keras3_example_runs_as_written(tmp_path):
    """The README's Keras 3 block on a small digits CNN: a verified fully-int8 file."""
    setup = "\n".join([
        "import keras",
        "from tfopt.datasets import load_digits",
        "(x, y), _ = load_digits()",
        "keras.utils.set_random_seed(0)",
        "model = keras.Sequential([keras.Input((8, 8, 1)),",
        "    keras.layers.Conv2D(16, 3, activation='relu'), keras.layers.Flatten(),",
        "    keras.layers.Dense(10)])"])
    check = "\n".join([
        "from tfopt.export import verify_tflite",
        "figures = verify_tflite('model.tflite', x[:200], y[:200], reference=qat)",
        "print('agreement', figures['agreement'])"])
    code = "\n".join([setup, python_blocks("Keras 2 and Keras 3")[0], check])
    result = run_python(code, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training stopped at step" not in result.stderr  # the schedule ends inside fit
    agreement = float(re.search(r"agreement ([\d.]+)", result.stdout).group(1))
    assert agreement >= 0.98
    assert os.path.getsize(tmp_path / "model.tflite") > 0
