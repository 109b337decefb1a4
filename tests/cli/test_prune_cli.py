"""Tests of tfopt-prune: help, exit statuses, one-line errors, quiet output, a real run.

Most cases run the tool in this process (`prune.run(argv)`); a few start the
installed console script, as a user does, for what only a process shows:
the help a console script prints, exit statuses and TensorFlow's log noise.
"""

import os
import sys

import pytest
import tf_keras as keras

from tests.cli.conftest import console_script
from tests.cli.conftest import finish_process
from tests.cli.conftest import noise_in
from tests.cli.conftest import run_process
from tests.cli.conftest import start_process
from tfopt.cli import prune

FLAG_NAMES = ("model", "output", "data", "sparsity", "structure", "criterion", "epochs",
              "batch_size", "learning_rate", "from_logits", "shrink")


@pytest.fixture
def output(tmp_path):
    return str(tmp_path / "out" / "pruned.keras")


@pytest.mark.parametrize("args,message", [
    ([], "missing --model and --output: the tool reads a model from --model"),
    (["--model={model}"], "missing --output"),
    (["--model={model}", "--output={output}", "extra"], "unexpected arguments ['extra']"),
    (["--model={model}", "--output={output}", "--sparsity=1.5"],
     "flag --sparsity=1.5: must be in [0, 1)"),
    (["--model={model}", "--output={output}", "--structure=foo"],
     "flag --structure=foo: use 'unstructured', 'channels', or N:M"),
    (["--model={model}", "--output={output}", "--structure=2:x"], "flag --structure=2:x: use"),
    (["--model={model}", "--output={output}", "--structure=4:2"], "with 0 < N < M"),
    (["--model={model}", "--output={output}", "--learning_rate=0"],
     "flag --learning_rate=0.0: must be above 0"),
    (["--model={model}", "--output={output}", "--shrink"], "--shrink needs --structure=channels"),
    (["--model={directory}", "--output={output}"], "is a directory, not a model file"),
    (["--model={model}", "--output={output}", "--data={wrong_shape}"],
     "x_train has a batch of shape (40, 28, 28, 1)"),
    (["--model={model}", "--output={output}", "--data={labels_out_of_range}"],
     "y_train holds labels 10..19, but the model outputs 10 classes"),
    (["--model={model}", "--output={output}", "--data={length_mismatch}"],
     "y_train has 30 labels for 40 examples"),
    (["--model={model}", "--output={output}", "--data={object_arrays}"],
     "x_train holds Python objects"),
    (["--model={model}", "--output={directory}/pruned.h5"], "must end in .keras"),
])
def test_usage_errors_exit_2_with_one_line_and_write_nothing(run_tool, tool_files, output,
                                                             args, message):
    args = [arg.format(output=output, **tool_files) for arg in args]
    code, stdout, stderr = run_tool(prune.run, *args)
    assert code == 2
    assert stderr.startswith("tfopt-prune: error: ") and stderr.count("\n") == 1
    assert message in stderr
    assert stdout == ""  # refused before any training
    assert not os.path.exists(os.path.dirname(output))


def test_diverging_training_exits_1_and_writes_nothing(run_tool, tool_files, output):
    code, _, stderr = run_tool(prune.run, f"--model={tool_files['model']}", f"--output={output}",
                               f"--data={tool_files['ok']}", "--learning_rate=1e30",
                               "--batch_size=8", "--epochs=1")
    assert code == 1
    assert stderr.startswith("tfopt-prune: error: training diverged: ")
    assert "nothing was written. Try a lower --learning_rate (now 1e+30)." in stderr
    assert not os.path.exists(os.path.dirname(output))


@pytest.fixture(scope="module")
def short_runs(tool_files, tmp_path_factory):
    """Console-script runs that stop before any training, started together: each spends
    nearly all its time importing TensorFlow, so running them side by side saves time."""
    output = str(tmp_path_factory.mktemp("short_runs") / "out" / "pruned.keras")
    script = console_script("tfopt-prune")
    commands = {
        "help": [script, "--help"],
        "helpfull": [script, "--helpfull"],
        "module_help": [sys.executable, "-m", "tfopt.cli.prune", "--help"],
        "usage_error": [script, f"--model={tool_files['model']}", f"--output={output}",
                        f"--data={tool_files['labels_out_of_range']}"],
    }
    processes = {name: start_process(command) for name, command in commands.items()}
    return output, {name: finish_process(process) for name, process in processes.items()}


def test_console_script_help_lists_the_tools_flags_quietly(short_runs):
    result = short_runs[1]["help"]
    assert result.stdout.startswith("tfopt-prune: prune a saved Keras model")
    for name in FLAG_NAMES:
        assert f"--{name}" in result.stdout or f"--[no]{name}" in result.stdout, name
    assert "TFOPT_VERBOSE=1" in result.stdout  # how to see TensorFlow's logs again
    assert noise_in(result.stderr) == [] and result.stderr == ""


def test_console_script_helpfull_still_lists_every_flag(short_runs):
    result = short_runs[1]["helpfull"]
    assert "--sparsity: Final sparsity" in result.stdout
    assert "absl.app:" in result.stdout and "--helpfull" in result.stdout


def test_module_help_lists_the_tools_flags(short_runs):
    result = short_runs[1]["module_help"]
    for name in ("model", "output", "sparsity", "structure", "criterion"):
        assert f"--{name}:" in result.stdout, name


def test_console_script_usage_error_exits_2_with_one_line(short_runs):
    output, results = short_runs
    result = results["usage_error"]
    assert result.returncode == 2
    assert result.stderr.startswith("tfopt-prune: error: --data=") and \
        result.stderr.count("\n") == 1, result.stderr
    assert not os.path.exists(os.path.dirname(output))


def test_console_script_prunes_shrinks_and_writes_quietly(tool_files, digits, tmp_path):
    output = str(tmp_path / "out" / "small.keras")
    result = run_process([console_script("tfopt-prune"), f"--model={tool_files['model']}",
                          f"--output={output}", "--sparsity=0.5", "--structure=channels",
                          "--shrink", "--epochs=1"])
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy:" in result.stdout and f"wrote {output}" in result.stdout
    assert noise_in(result.stderr) == [], result.stderr
    small = keras.models.load_model(output)
    original = keras.models.load_model(tool_files["model"])
    assert small.count_params() < original.count_params()
    assert small.get_layer("hidden").units == 8
    assert os.listdir(tmp_path / "out") == ["small.keras"]  # no temporary left
