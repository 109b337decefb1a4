"""Tests of tfopt.cli._app: one-line errors with exit status 2 or 1, and --help's flags."""

import sys

import pytest
from absl import flags

from tfopt.cli import _app
from tfopt.cli import prune

# _app.run needs a module whose flags it shows; prune's are defined already.
TOOL = prune


def _run(run_tool, main, *args):
    return run_tool(lambda argv: _app.run(main, "tfopt-test", TOOL, argv), *args)


def _raises(error):
    def main(argv):
        raise error
    return main


@pytest.mark.parametrize("error,status,message", [
    (_app.UsageError("--model='m.keras' does not exist."), 2,
     "tfopt-test: error: --model='m.keras' does not exist."),
    (_app.Failure("training diverged: the loss became nan"), 1,
     "tfopt-test: error: training diverged: the loss became nan"),
    (RuntimeError("Graph execution error:\n\n  Detected at node x\n  more\n"), 1,
     "tfopt-test: error: RuntimeError: Graph execution error: "
     "(set TFOPT_VERBOSE=1 to see the traceback)"),
    (KeyboardInterrupt(), 130, "tfopt-test: error: interrupted."),
])
def test_errors_exit_with_one_line(run_tool, monkeypatch, error, status, message):
    monkeypatch.delenv("TFOPT_VERBOSE", raising=False)
    code, out, err = _run(run_tool, _raises(error), "--model=m.keras")
    assert code == status
    assert err == message + "\n" and out == ""


@pytest.mark.parametrize("args,message", [
    (["--sparsty=0.5"], "Unknown command line flag 'sparsty'. Did you mean: sparsity ?"),
    (["--epochs=-1"], "flag --epochs=-1: -1 is not a positive integer"),
    (["--criterion=foo"], "flag --criterion=foo: value should be one of"),
])
def test_flag_errors_exit_2_with_one_line_before_main_runs(run_tool, args, message):
    ran = []
    code, _, err = _run(run_tool, ran.append, *args)
    assert code == 2 and not ran
    assert err.startswith("tfopt-test: error: " + message)
    assert err.endswith(". See tfopt-test --help.\n") and err.count("\n") == 1


def test_verbose_failure_shows_the_traceback(run_tool, monkeypatch):
    monkeypatch.setenv("TFOPT_VERBOSE", "1")
    code, _, err = _run(run_tool, _raises(RuntimeError("boom")))
    assert code == 1
    assert "Traceback (most recent call last)" in err
    assert err.endswith("tfopt-test: error: RuntimeError: boom\n")


def test_success_exits_0(run_tool):
    code, _, err = _run(run_tool, lambda argv: None)
    assert code in (0, None) and err == ""


def test_console_script_main_module_gets_the_tools_flags_and_doc(monkeypatch):
    """A console-script wrapper is __main__ with no flags and no docstring: absl's --help
    then lists nothing. After _app adopts them, the wrapper's key flags are the tool's."""
    wrapper = type(sys)("__main__")  # what pip's generated script looks like
    monkeypatch.setitem(sys.modules, "__main__", wrapper)
    monkeypatch.setattr(sys, "argv", ["/venv/bin/tfopt-test"])
    assert flags.FLAGS.get_key_flags_for_module("/venv/bin/tfopt-test") == []
    _app._adopt_flags_and_doc(TOOL)
    adopted = {flag.name for flag in flags.FLAGS.get_key_flags_for_module("/venv/bin/tfopt-test")}
    assert adopted == {flag.name for flag in flags.FLAGS.get_flags_for_module(TOOL.__name__)}
    assert {"model", "output", "sparsity", "structure", "shrink"} <= adopted
    assert wrapper.__doc__ == TOOL.__doc__
    assert "--sparsity" in flags.FLAGS.main_module_help()
