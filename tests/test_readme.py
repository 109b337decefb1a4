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
def test_quick_start_runs_as_written_and_reaches_its_target(tmp_path):
    result = run_python(python_blocks("Quick start")[0], tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "training stopped at step" not in result.stderr  # the schedule fits in the fit
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
