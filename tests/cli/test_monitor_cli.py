"""Tests of tfopt-monitor: reports and exit status on digits logs, usage errors."""

import json

import numpy as np
import pytest

from tests.cli.conftest import console_script
from tests.cli.conftest import noise_in
from tests.cli.conftest import run_process
from tests.serving.conftest import INPUT
from tests.serving.conftest import OUTPUT
from tests.serving.conftest import digits_logs  # noqa: F401  (a fixture)
from tests.serving.conftest import write_log
from tfopt.cli import monitor

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _run(run_tool, digits_logs, kind, output_dir, *extra):
    return run_tool(monitor.run, f"--logs={digits_logs[kind]}",
                    f"--reference={digits_logs['reference']}", f"--output_dir={output_dir}",
                    *extra)


@pytest.mark.parametrize("kind, status, verdict", [
    ("none", 0, "no drift"),
    ("brighter", monitor.DRIFT, f"drift in {INPUT}"),
    ("classes_0_to_4", monitor.DRIFT, f"drift in {OUTPUT}"),
])
def test_writes_the_report_and_exits_by_drift(run_tool, digits_logs, tmp_path, kind, status,
                                              verdict):
    code, stdout, stderr = _run(run_tool, digits_logs, kind, tmp_path)
    assert (code or 0) == status and stderr == "", stderr
    lines = stdout.splitlines()
    assert lines[-1] == verdict
    assert sorted(lines[:-1]) == sorted(["report.json", "report.md", f"{INPUT}_drift.png",
                                         f"{INPUT}_mean.png", f"{OUTPUT}_classes.png"])
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["drift"] is (status == monitor.DRIFT)
    assert report["plots"] == sorted(name for name in lines if name.endswith(".png"))
    for name in report["plots"]:
        assert (tmp_path / name).read_bytes().startswith(PNG_MAGIC), name
    markdown = (tmp_path / "report.md").read_text()
    assert markdown.startswith("# Drift report: model 'digits'")
    assert ("**DRIFT**" in markdown) is (status == monitor.DRIFT)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".tfopt-")]  # no staging left


def test_thresholds_decide_the_exit_status(run_tool, digits_logs, tmp_path):
    code, stdout, _ = _run(run_tool, digits_logs, "none", tmp_path, "--psi_threshold=0.01",
                           "--ks_threshold=0.01")
    assert code == monitor.DRIFT and stdout.splitlines()[-1].startswith("drift in")
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["thresholds"] == {"psi": 0.01, "ks": 0.01}


def test_model_name_picks_one_model_from_mixed_logs(run_tool, digits_logs, tmp_path):
    x = np.load(digits_logs["reference"])["x_train"][:200]
    logs = tmp_path / "logs"
    logs.mkdir()
    write_log(logs / "a.log", x, np.zeros(200, int), model_name="digits")
    write_log(logs / "b.log", 1 - x, np.zeros(200, int), model_name="other")
    code, _, stderr = run_tool(monitor.run, f"--logs={logs}/*.log", "--model_name=digits",
                               f"--reference={digits_logs['reference']}",
                               f"--output_dir={tmp_path / 'out'}", "--top_k=3")
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert report["model_name"] == "digits" and not report["inputs"][INPUT]["drifted"]
    assert len(report["inputs"][INPUT]["top_elements"]) == 3
    assert code == monitor.DRIFT  # every logged prediction is class 0


def _bad_files(directory):
    (directory / "text.log").write_text("not a request log\n")
    (directory / "text.npz").write_text("not an npz\n")
    (directory / "a_file").write_text("")
    np.savez(directory / "images.npz", images=np.zeros((3, 8, 8, 1)))
    np.savez(directory / "mnist.npz", x_train=np.zeros((3, 28, 28, 1)))


@pytest.mark.parametrize("args, message", [
    ([], "--logs and --reference and --output_dir must be given"),
    (["--logs={none}", "--reference={ref}"], "--output_dir must be given"),
    (["--logs={none}", "--reference={ref}", "--output_dir={out}", "extra"],
     "unexpected arguments"),
    (["--logs={none}", "--reference={ref}", "--output_dir={out}", "--psi_threshold=0"],
     "--psi_threshold=0.0 must be above 0"),
    (["--logs={none}", "--reference={ref}", "--output_dir={out}", "--ks_threshold=1.5"],
     "--ks_threshold=1.5 must be between 0 and 1"),
    (["--logs={none}", "--reference={ref}", "--output_dir={out}", "--top_k=0"],
     "--top_k=0 must be at least 1"),
    (["--logs={none}", "--reference={ref}", "--output_dir={out}", "--ks_threshold=x"],
     "flag --ks_threshold=x"),
    (["--logs={none}", "--reference={ref}", "--output_dir={out}", "--no_such_flag=1"],
     "no_such_flag"),
    (["--logs={dir}/missing*", "--reference={ref}", "--output_dir={out}"],
     "No request log file matches"),
    (["--logs={dir}/text.log", "--reference={ref}", "--output_dir={out}"],
     "is not a TFRecord file of PredictionLog: record 0"),
    (["--logs={none}", "--reference={ref}", "--output_dir={out}", "--model_name=other"],
     "no predict, classify or regress record of model 'other'"),
    (["--logs={none}", "--reference={dir}/missing.npz", "--output_dir={out}"],
     "missing.npz' does not exist"),
    (["--logs={none}", "--reference={dir}/text.npz", "--output_dir={out}"],
     "is not an .npz file"),
    (["--logs={none}", "--reference={dir}/images.npz", "--output_dir={out}"],
     r"holds ['images']; the logged requests have the inputs ['input_1']"),
    (["--logs={none}", "--reference={dir}/mnist.npz", "--output_dir={out}"],
     "have shape (28, 28, 1), the logged ones (8, 8, 1)"),
    (["--logs={none}", "--reference={ref}", "--output_dir={dir}/a_file/out"],
     "is a file, not a directory"),
])
def test_usage_errors_exit_2_with_one_line_and_write_nothing(run_tool, digits_logs, tmp_path,
                                                             args, message):
    _bad_files(tmp_path)
    output = tmp_path / "out"
    args = [arg.format(none=digits_logs["none"], ref=digits_logs["reference"], out=output,
                       dir=tmp_path) for arg in args]
    code, stdout, stderr = run_tool(monitor.run, *args)
    assert code == 2, stderr
    assert stderr.startswith("tfopt-monitor: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert stdout == "" and not output.exists()


def test_the_console_script_shows_its_flags_without_tensorflow_noise():
    result = run_process([console_script("tfopt-monitor"), "--help"])
    for name in ("logs", "reference", "output_dir", "psi_threshold", "ks_threshold"):
        assert f"--{name}:" in result.stdout, name
    assert noise_in(result.stdout + result.stderr) == []
