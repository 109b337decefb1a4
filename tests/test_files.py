"""tfopt._files.atomic_path, which every exporter writes through."""

import os

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
