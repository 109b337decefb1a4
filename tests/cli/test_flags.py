"""Tests of flags shared by several tools: one definition, each tool's default, help and checks."""

from absl import flags

from tfopt.cli import _flags
from tfopt.cli import export
from tfopt.cli import optimize
from tfopt.cli import prune

# name: {tool module: (default as absl shows it, words of the tool's help)}
SHARED = {
    "sparsity": {prune: ("0.8", "Final sparsity"), optimize: ("0.7", "unstructured stage")},
    "criterion": {prune: ("magnitude", "Which weights to keep"),
                  optimize: ("taylor", "ranks channels")},
    "batch_size": {prune: ("32", "Batch size."), optimize: ("64", "Training batch size")},
    "data": {prune: ("digits", "x_train, y_train"), optimize: (None, "(required)")},
    "formats": {export: ("saved_model", "What to write"),
                optimize: ("tflite_int8,saved_model", "What to export from the last stage")},
    "overwrite": {export: ("false", "Replace the version"), optimize: ("false", "Start over")},
}


def test_each_tool_puts_its_own_default_and_help_on_a_shared_flag():
    for name, tools in SHARED.items():
        for module, (default, words) in tools.items():
            _flags.use_tool(module.__name__)
            flag = flags.FLAGS[name]
            assert flag.default_as_str == (None if default is None else f"'{default}'"), \
                (name, module.__name__)
            assert words in flag.help and flag.value == flag.default, (name, module.__name__)
            assert flag in flags.FLAGS.get_flags_for_module(module.__name__)
    _flags.use_tool(optimize.__name__)
    assert flags.FLAGS["criterion"].help.startswith("<magnitude|l2|taylor|random>: ")


def test_a_tools_checks_apply_only_while_it_runs(run_tool, tool_files, tmp_path):
    # prune allows sparsity 0 (no pruning) and refuses 1.5 itself; optimize needs (0, 1).
    code, _, err = run_tool(optimize.run, f"--model={tool_files['model']}", "--data=digits",
                            f"--output_dir={tmp_path}/run", "--sparsity=1.5")
    assert code == 2 and "--sparsity must be a number in (0, 1); got 1.5" in err
    code, _, err = run_tool(prune.run, "--sparsity=1.5")
    assert code == 2 and "flag --sparsity=1.5: must be in [0, 1)" in err


def test_a_flag_shared_with_another_kind_is_refused():
    try:
        _flags.shared_integer("sparsity", 1, "help", "some_tool")
    except ValueError as error:
        assert "shared as ('float',)" in str(error)
    else:
        raise AssertionError("a float flag was shared as an integer")
