"""models.config: ServedModel, model_server_config, update_model_server_config."""

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tfopt.export import _layout
from tfopt.export._model_server_config import ServedModel
from tfopt.export._model_server_config import model_server_config
from tfopt.export._model_server_config import read_model_server_config
from tfopt.export._model_server_config import update_model_server_config


def _parse(path):
    """The file as TF Serving reads it: protobuf's text parser, no tfopt code."""
    with open(path, encoding="utf-8") as file:
        return text_format.Parse(file.read(), model_server_config_pb2.ModelServerConfig())


def _entries(path):
    return list(_parse(path).model_config_list.config)


@pytest.mark.parametrize("arguments, policy, expected", [
    ({}, "latest", 1),
    ({"latest": 3}, "latest", 3),
    ({"versions": "all"}, "all", None),
    ({"versions": [7, 2, 5]}, "specific", [2, 5, 7]),
])
def test_each_version_policy_is_written(arguments, policy, expected, tmp_path):
    path = tmp_path / "models.config"
    model_server_config(ServedModel("digits", **arguments), path)
    (entry,) = _entries(path)
    assert (entry.name, entry.base_path, entry.model_platform) == (
        "digits", f"{_layout.CONTAINER_ROOT}/digits", "tensorflow")
    assert entry.model_version_policy.WhichOneof("policy_choice") == policy
    if policy == "latest":
        assert entry.model_version_policy.latest.num_versions == expected
    if policy == "specific":
        assert list(entry.model_version_policy.specific.versions) == expected
    assert dict(entry.version_labels) == {}


def test_labels_with_specific_versions(tmp_path):
    path = tmp_path / "models.config"
    model_server_config(ServedModel("digits", "/models/digits", versions=[1, 2],
                                    labels={"stable": 1, "canary": 2}), path)
    (entry,) = _entries(path)
    assert list(entry.model_version_policy.specific.versions) == [1, 2]
    assert dict(entry.version_labels) == {"stable": 1, "canary": 2}


def test_labels_with_all_versions(tmp_path):
    path = tmp_path / "models.config"
    model_server_config(ServedModel("digits", versions="all", labels={"stable": 4}), path)
    (entry,) = _entries(path)
    assert entry.model_version_policy.WhichOneof("policy_choice") == "all"
    assert dict(entry.version_labels) == {"stable": 4}


def test_several_models_in_order_from_served_models_and_dicts(tmp_path):
    path = tmp_path / "models.config"
    written = model_server_config([
        ServedModel("digits", versions=[1, 2], labels={"stable": 1, "canary": 2}),
        {"name": "fashion", "base_path": "gs://bucket/fashion", "latest": 2},
        {"name": "mnist", "versions": "all"},
    ], path)
    entries = _entries(path)
    assert [e.name for e in entries] == ["digits", "fashion", "mnist"]
    assert [e.base_path for e in entries] == ["/models/digits", "gs://bucket/fashion",
                                              "/models/mnist"]
    assert entries[1].model_version_policy.latest.num_versions == 2
    assert written == _parse(path) == read_model_server_config(path)


@pytest.mark.parametrize("policy", [{}, {"latest": 2}, {"versions": "all"},
                                    {"versions": [3, 1], "labels": {"stable": 1, "canary": 3}}])
def test_from_proto_inverts_to_proto(policy):
    model = ServedModel("digits", "/models/digits", **policy)
    assert ServedModel.from_proto(model.to_proto()) == model


def test_from_proto_reads_tf_serving_defaults():
    entry = text_format.Parse('name: "m" base_path: "/m" model_type: TENSORFLOW',
                              model_server_config_pb2.ModelConfig())
    assert ServedModel.from_proto(entry) == ServedModel("m", "/m", "tensorflow", None, 1, {})


@pytest.mark.parametrize("arguments, error, match", [
    ({"name": ""}, ValueError, "ServedModel name must be letters"),
    ({"name": "my model"}, ValueError, "got 'my model'"),
    ({"name": "a/b"}, ValueError, "REST paths"),
    ({"name": 3}, TypeError, "ServedModel name must be a string"),
    ({"base_path": "models/m"}, ValueError, "'m': base_path='models/m' is relative.*'/models/m'"),
    ({"base_path": b"/m"}, TypeError, "'m': base_path must be a string"),
    ({"platform": "tflite"}, ValueError, "'m': platform='tflite'.*\\['tensorflow'\\]"),
    ({"versions": []}, ValueError, "'m': versions=\\[\\] serves nothing"),
    ({"versions": [0]}, ValueError, "'m': each of versions must be an integer from 1"),
    ({"versions": [-1, 2]}, ValueError, "got -1"),
    ({"versions": [1, 1]}, ValueError, "'m': versions=\\[1, 1\\] lists \\[1\\] more than once"),
    ({"versions": [1.5]}, TypeError, "'m': each of versions must be an integer, got 1.5"),
    ({"versions": "latest"}, TypeError, "'m': versions must be None, 'all' or a list"),
    ({"versions": 2}, TypeError, "'m': versions must be None, 'all' or a list"),
    ({"latest": 0}, ValueError, "'m': latest must be an integer from 1 to 4294967295"),
    ({"latest": 2**32}, ValueError, "'m': latest must be an integer from 1 to 4294967295"),
    ({"versions": [1], "latest": 1}, ValueError, "'m': give versions=\\[1\\] or latest=1"),
    ({"labels": {"stable": 1}}, ValueError, "'m': labels=.*latest-N policy.*versions=\\[1\\]"),
    ({"versions": [1, 2], "labels": {"canary": 3}}, ValueError,
     "'m': labels \\{'canary': 3\\} name versions that versions=\\[1, 2\\] does not serve"),
    ({"versions": [1], "labels": {"": 1}}, ValueError, "'m': label '' must be letters"),
    ({"versions": [1], "labels": {"a:b": 1}}, ValueError, "'m': label 'a:b' must be letters"),
    ({"versions": [1], "labels": {"stable": "1"}}, TypeError,
     "'m': the version of label 'stable' must be an integer"),
    ({"versions": "all", "labels": {"stable": 0}}, ValueError,
     "'m': the version of label 'stable' must be an integer from 1"),
    ({"versions": [1], "labels": [("stable", 1)]}, TypeError, "'m': labels must be a dict"),
])
def test_served_model_refuses_what_tf_serving_would(arguments, error, match):
    arguments = {"name": "m", **arguments}
    with pytest.raises(error, match=match):
        ServedModel(**arguments)


@pytest.mark.parametrize("models, error, match", [
    ([], ValueError, "models is empty"),
    ("digits", TypeError, "models must be a ServedModel, a dict"),
    (None, TypeError, "models must be a ServedModel, a dict"),
    ([ServedModel("a"), ("b",)], TypeError, "each model must be a ServedModel or a dict"),
    ([ServedModel("a"), {"name": "b", "version": 2}], ValueError,
     "unknown keys \\['version'\\]; its keys are \\['name', 'base_path'"),
    ([{"base_path": "/b"}], ValueError, "has no 'name'"),
    ([ServedModel("a"), ServedModel("b"), {"name": "a", "latest": 2}], ValueError,
     "names must be unique.*Illegal to list model a multiple times.*\\['a'\\]"),
    ([{"name": "a", "versions": [1], "labels": {"x": 2}}], ValueError, "ServedModel 'a': labels"),
])
def test_model_server_config_refuses_bad_model_lists(models, error, match, tmp_path):
    with pytest.raises(error, match=match):
        model_server_config(models, tmp_path / "models.config")
    assert not list(tmp_path.iterdir())


def test_with_version_adds_a_version_and_moves_a_label():
    stable = ServedModel("digits", versions=[1], labels={"stable": 1})
    canary = stable.with_version(2, label="canary")
    assert (canary.versions, canary.labels) == ((1, 2), {"stable": 1, "canary": 2})
    promoted = canary.with_version(2, label="stable")
    assert (promoted.versions, promoted.labels) == ((1, 2), {"stable": 2, "canary": 2})
    assert stable.labels == {"stable": 1}  # the original is unchanged
    assert ServedModel("d", versions="all").with_version(5, "canary").labels == {"canary": 5}
    assert ServedModel("d", latest=2).with_version(3) == ServedModel("d", latest=2)


@pytest.mark.parametrize("model, call, error, match", [
    (ServedModel("d"), lambda m: m.with_version(2, label="canary"), ValueError,
     "latest-N policy.*versions=\\[2\\]"),
    (ServedModel("d", versions=[1]), lambda m: m.with_version(0), ValueError,
     "'d': version must be an integer from 1"),
    (ServedModel("d", versions=[1]), lambda m: m.with_version(2, label="a b"), ValueError,
     "label 'a b' must be letters"),
])
def test_with_version_refuses(model, call, error, match):
    with pytest.raises(error, match=match):
        call(model)


def test_update_replaces_one_entry_and_keeps_the_others(tmp_path):
    # What tfopt-export does when version 2 is exported with --labels=canary.
    path = tmp_path / "models.config"
    model_server_config([ServedModel("digits", versions=[1], labels={"stable": 1}),
                         ServedModel("fashion", latest=2)], path)
    entry = read_model_server_config(path).model_config_list.config[0]
    updated = ServedModel.from_proto(entry).with_version(2, label="canary")
    written = update_model_server_config(updated, path)
    entries = _entries(path)
    assert written == _parse(path)
    assert [e.name for e in entries] == ["digits", "fashion"]
    assert list(entries[0].model_version_policy.specific.versions) == [1, 2]
    assert dict(entries[0].version_labels) == {"stable": 1, "canary": 2}
    assert entries[1].model_version_policy.latest.num_versions == 2


def test_update_appends_a_new_model_and_creates_a_missing_file(tmp_path):
    path = tmp_path / "export" / "models.config"
    update_model_server_config({"name": "digits"}, path)
    update_model_server_config(ServedModel("fashion", versions=[3]), path)
    assert [e.name for e in _entries(path)] == ["digits", "fashion"]


def test_update_keeps_entries_tfopt_would_not_write(tmp_path):
    path = tmp_path / "models.config"
    path.write_text('model_config_list { config { name: "legacy" base_path: "/srv/legacy" '
                    'model_type: TENSORFLOW } }')
    update_model_server_config({"name": "digits"}, path)
    legacy, digits = _entries(path)
    assert (legacy.name, legacy.model_type, legacy.model_platform) == (
        "legacy", model_server_config_pb2.TENSORFLOW, "")
    assert digits.name == "digits"


@pytest.mark.parametrize("content, error, match", [
    ('custom_model_config { type_url: "x" }', ValueError, "holds a custom_model_config"),
    ("model_config_list { config { nme: 1 } }", ValueError,
     "Error parsing text-format tensorflow.serving.ModelServerConfig: 1:30"),
])
def test_update_refuses_files_it_cannot_extend_and_leaves_them(content, error, match, tmp_path):
    path = tmp_path / "models.config"
    path.write_text(content)
    with pytest.raises(error, match=match):
        update_model_server_config({"name": "digits"}, path)
    assert path.read_text() == content
