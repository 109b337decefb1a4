"""tfopt._files.atomic_path, which every exporter writes through."""

import os
import subprocess
import sys
import tempfile

import pytest

from tfopt import _files


def test_a_file_appears_only_when_complete(tmp_path):
    target = tmp_path / "new" / "model.tflite"
    with _files.atomic_path(str(target)) as temporary:
        assert os.path.basename(temporary) == "model.tflite"
        assert not os.path.exists(temporary) and not target.exists()
        with open(temporary, "wb") as f:
            f.write(b"content")
        assert not target.exists()
    assert target.read_bytes() == b"content"
    assert os.listdir(target.parent) == ["model.tflite"]


def test_a_directory_works_the_same_way(tmp_path):
    with _files.atomic_path(str(tmp_path / "1")) as temporary:
        os.makedirs(os.path.join(temporary, "variables"))
        open(os.path.join(temporary, "saved_model.pb"), "w").close()
    assert sorted(os.listdir(tmp_path / "1")) == ["saved_model.pb", "variables"]
    assert os.listdir(tmp_path) == ["1"]


def _write_version(temporary, content):
    os.makedirs(os.path.join(temporary, "variables"))
    with open(os.path.join(temporary, "saved_model.pb"), "w") as stream:
        stream.write(content)


def test_a_full_directory_is_swapped_in_one_step(tmp_path, monkeypatch):
    """A version written again never leaves its path empty: no move-aside rename happens."""
    with _files.atomic_path(str(tmp_path / "1")) as temporary:
        _write_version(temporary, "old")

    def no_move_aside(source, destination):
        raise AssertionError(f"{source!r} moved aside: the version would be missing for a moment")

    monkeypatch.setattr(os, "rename", no_move_aside)
    with _files.atomic_path(str(tmp_path / "1")) as temporary:
        _write_version(temporary, "new")
    assert (tmp_path / "1" / "saved_model.pb").read_text() == "new"
    assert os.listdir(tmp_path) == ["1"]


def test_without_a_swap_the_old_directory_moves_aside_and_goes(tmp_path, monkeypatch):
    with _files.atomic_path(str(tmp_path / "1")) as temporary:
        _write_version(temporary, "old")
    monkeypatch.setattr(_files, "_exchange", lambda first, second: False)
    with _files.atomic_path(str(tmp_path / "1")) as temporary:
        _write_version(temporary, "new")
    assert (tmp_path / "1" / "saved_model.pb").read_text() == "new"
    assert os.listdir(tmp_path) == ["1"]


def test_a_failure_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "model.tflite"
    target.write_bytes(b"old")
    with pytest.raises(KeyboardInterrupt):
        with _files.atomic_path(str(target)) as temporary:
            with open(temporary, "wb") as f:
                f.write(b"half")
            raise KeyboardInterrupt
    assert target.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.tflite"]
    with _files.atomic_path(str(target)) as temporary:
        with open(temporary, "wb") as f:
            f.write(b"new")
    assert target.read_bytes() == b"new" and os.listdir(tmp_path) == ["model.tflite"]


def test_writing_nothing_is_an_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="Nothing was written"):
        with _files.atomic_path(str(tmp_path / "model.tflite")):
            pass
    assert os.listdir(tmp_path) == []


def test_staging_left_by_a_killed_process_is_removed_by_the_next_write(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    abandoned = tmp_path / f".tfopt-{dead.stdout.strip()}-abc123"
    (abandoned / "saved_model").mkdir(parents=True)
    in_use = tmp_path / f".tfopt-{os.getpid()}-def456"  # this process: still writing
    in_use.mkdir()
    (tmp_path / ".tfopt-settings").write_text("not a staging directory")
    with _files.atomic_path(str(tmp_path / "model.tflite")) as temporary:
        with open(temporary, "wb") as f:
            f.write(b"content")
    assert sorted(os.listdir(tmp_path)) == sorted([".tfopt-settings", in_use.name, "model.tflite"])


def test_temporary_files_go_to_the_given_directory_for_the_block(tmp_path):
    before = tempfile.gettempdir()
    with _files.temporary_files_in(str(tmp_path)):
        created = tempfile.mkdtemp()
    assert os.path.dirname(created) == str(tmp_path)
    assert tempfile.gettempdir() == before
