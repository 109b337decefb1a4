"""What every TF Serving config file tfopt writes shares: proto text, atomic writes, clear reads."""

import os

import numpy as np
import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfopt.export import _layout
from tfopt.export import _model_server_config
from tfopt.export import _serving_config
from tfopt.export import _server_flags_config
from tfopt.export._protos import monitoring_config_pb2
from tfopt.export._protos import session_bundle_config_pb2

# (writer of a non-default file, reader, message class, usual file name, a bad argument set)
FILES = {
    "models": (
        lambda path: _model_server_config.model_server_config(
            _model_server_config.ServedModel("digits", versions=[1, 2],
                                             labels={"stable": 1, "canary": 2}), path),
        _model_server_config.read_model_server_config, model_server_config_pb2.ModelServerConfig,
        _layout.MODELS_CONFIG,
        lambda path: _model_server_config.model_server_config({"name": "digits",
                                                               "base_path": "digits"}, path)),
    "batching": (
        lambda path: _server_flags_config.batching_config(path, max_batch_size=16,
                                                          allowed_batch_sizes=[4, 16]),
        _server_flags_config.read_batching_config, session_bundle_config_pb2.BatchingParameters,
        _layout.BATCHING_CONFIG,
        lambda path: _server_flags_config.batching_config(path, allowed_batch_sizes=[4, 16])),
    "monitoring": (
        lambda path: _server_flags_config.monitoring_config(path, metrics_path="/metrics"),
        _server_flags_config.read_monitoring_config, monitoring_config_pb2.MonitoringConfig,
        _layout.MONITORING_CONFIG,
        lambda path: _server_flags_config.monitoring_config(path, metrics_path="metrics")),
}
KINDS = sorted(FILES)


@pytest.mark.parametrize("kind", KINDS)
def test_written_file_is_the_returned_message_in_text_format(kind, tmp_path):
    write, read, message_class, name, _ = FILES[kind]
    path = str(tmp_path / name)
    written = write(path)
    with open(path, encoding="utf-8") as file:
        text = file.read()
    # Parsed by protobuf itself, not by tfopt's reader.
    assert text_format.Parse(text, message_class()) == written
    assert written != message_class()
    assert text.startswith(
        f"# {message_class.DESCRIPTOR.full_name}, read by tensorflow_model_server")
    assert read(path) == written


@pytest.mark.parametrize("kind", KINDS)
def test_failed_write_leaves_the_existing_file_untouched(kind, tmp_path, monkeypatch):
    write, _, _, name, _ = FILES[kind]
    path = tmp_path / name
    path.write_text("# the previous file\n")

    def write_half_then_fail(temporary, text):
        with open(temporary, "w", encoding="utf-8") as file:
            file.write(text[:len(text) // 2])
        raise OSError("No space left on device")

    monkeypatch.setattr(_serving_config, "_write", write_half_then_fail)
    with pytest.raises(OSError, match="No space left"):
        write(str(path))
    assert path.read_text() == "# the previous file\n"
    assert os.listdir(tmp_path) == [name]  # no staging directory left behind


@pytest.mark.parametrize("kind", KINDS)
def test_invalid_arguments_are_refused_before_the_file_is_touched(kind, tmp_path):
    _, _, _, name, write_bad = FILES[kind]
    path = tmp_path / name
    path.write_text("# the previous file\n")
    with pytest.raises(ValueError):
        write_bad(str(path))
    assert path.read_text() == "# the previous file\n"
    assert os.listdir(tmp_path) == [name]


@pytest.mark.parametrize("kind", KINDS)
def test_a_directory_as_path_is_refused_with_the_usual_file_name(kind, tmp_path):
    write, _, _, name, _ = FILES[kind]
    with pytest.raises(ValueError, match=f"is a directory; give a file in it, e.g. .*{name}"):
        write(str(tmp_path))


@pytest.mark.parametrize("kind", KINDS)
def test_a_path_under_a_file_is_refused(kind, tmp_path):
    write, _, _, name, _ = FILES[kind]
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="is a file, not a directory"):
        write(str(tmp_path / "file" / name))


@pytest.mark.parametrize("kind", KINDS)
def test_unparsable_file_is_reported_in_tf_servings_words_with_the_line(kind, tmp_path):
    _, read, message_class, name, _ = FILES[kind]
    path = tmp_path / name
    path.write_text("# comment\n\n  no_such_field: 1\n")
    with pytest.raises(ValueError) as error:
        read(str(path))
    message = str(error.value)
    assert message.startswith(
        f"Error parsing text-format {message_class.DESCRIPTOR.full_name}: 3:3: ")
    assert "no_such_field" in message and "line 3" in message and str(path) in message


@pytest.mark.parametrize("kind", KINDS)
def test_missing_file_is_reported(kind, tmp_path):
    _, read, message_class, name, _ = FILES[kind]
    with pytest.raises(FileNotFoundError, match=f"No {message_class.DESCRIPTOR.full_name} file"):
        read(str(tmp_path / name))
    with pytest.raises(FileNotFoundError, match="it is a directory"):
        read(str(tmp_path))


@pytest.mark.parametrize("value, error, match", [
    (True, TypeError, "must be an integer, got True"),
    (2.0, TypeError, "must be an integer, got 2.0"),
    ("3", TypeError, "must be an integer, got '3'"),
    (0, ValueError, "from 1 to 9223372036854775807, got 0"),
    (2**63, ValueError, "from 1 to 9223372036854775807"),
])
def test_validate_integer(value, error, match):
    with pytest.raises(error, match=match):
        _serving_config.validate_integer(value, "x", 1)


def test_validate_integer_takes_numpy_integers():
    value = _serving_config.validate_integer(np.int64(5), "x", 1)
    assert value == 5 and type(value) is int
