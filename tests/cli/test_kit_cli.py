"""Tests of tfopt-kit: the deployment kit written from an export root, usage errors."""

import os

import pytest

from tests.cli.conftest import console_script
from tests.cli.conftest import noise_in
from tests.cli.conftest import run_process
from tests.export.conftest import EXAMPLE_MODEL
from tests.export.conftest import write_export_root
from tfopt.cli import kit
from tfopt.export import _layout


@pytest.fixture(scope="module")
def export_root(tmp_path_factory):
    return write_export_root(str(tmp_path_factory.mktemp("kit_cli") / "models"))


def test_writes_the_kit_and_lists_its_files(run_tool, export_root, tmp_path):
    code, stdout, stderr = run_tool(kit.run, f"--export_root={export_root}",
                                    f"--model_name={EXAMPLE_MODEL}", f"--output_dir={tmp_path}")
    assert code in (0, None) and stderr == "", stderr  # sys.exit(None) is success
    listed = stdout.split()
    assert "docker-compose.yml" in listed and os.path.join("kserve", "inferenceservice.yaml") \
        in listed
    for name in listed:
        assert os.path.isfile(tmp_path / name), name
    with open(tmp_path / "docker-compose.yml") as stream:
        assert f"--model_config_file={_layout.CONTAINER_ROOT}/{_layout.MODELS_CONFIG}" \
            in stream.read()


@pytest.mark.parametrize("args, message", [
    ([], "--export_root and --model_name must be given"),
    (["--export_root={root}"], "--model_name must be given"),
    (["--export_root={root}", "--model_name=digits", "extra"], "unexpected arguments"),
    (["--export_root={root}", "--model_name=Digits_2"], "Digits_2"),
    (["--export_root={root}", "--model_name=other"], "other"),
    (["--export_root={root}/missing", "--model_name=digits"], "missing"),
])
def test_usage_errors_exit_2_with_one_line_and_write_nothing(run_tool, export_root, tmp_path,
                                                             args, message):
    output = tmp_path / "kit"
    args = [arg.format(root=export_root) for arg in args] + [f"--output_dir={output}"]
    code, stdout, stderr = run_tool(kit.run, *args)
    assert code == 2, stderr
    assert stderr.startswith("tfopt-kit: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert not output.exists()


def test_the_console_script_shows_its_flags_without_tensorflow_noise():
    result = run_process([console_script("tfopt-kit"), "--help"])
    assert result.stdout.startswith("tfopt-kit: write the deployment kit")
    for name in ("export_root", "model_name", "output_dir"):
        assert f"--{name}:" in result.stdout, name
    assert noise_in(result.stdout + result.stderr) == []
