"""Tests of tfopt-export: usage errors, a real export run, updates of models.config, failures.

Most cases run the tool in this process (`export.run(argv)`), as the
tfopt-prune tests do; two start it as a process, for --help and the exit
status a shell sees.
"""

import os
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.cli.conftest import finish_process
from tests.cli.conftest import start_process
from tfopt import export as tfopt_export
from tfopt.cli import export
from tfopt.export import _layout

FLAG_NAMES = ("model", "base_path", "model_name", "version", "formats", "representative_data",
              "warmup_examples", "verify_data", "classify", "labels", "tflite_dir", "overwrite")


@pytest.fixture(scope="module")
def models(tool_files, tmp_path_factory):
    """Model inputs good and bad beside tool_files' trained CNN (`model`)."""
    directory = tmp_path_factory.mktemp("export_models")
    paths = dict(tool_files)
    cnn = keras.models.load_model(tool_files["model"])
    paths["saved_model_dir"] = str(directory / "keras_saved_model")
    cnn.save(paths["saved_model_dir"], save_format="tf")
    paths["plain_saved_model"] = str(directory / "plain_saved_model")
    module = tf.Module()
    module.f = tf.function(lambda x: x * 2, input_signature=[tf.TensorSpec([None, 2])])
    tf.saved_model.save(module, paths["plain_saved_model"])
    paths["serving_base_path"] = str(directory / "served")
    os.makedirs(os.path.join(paths["serving_base_path"], "1"))
    regression = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                   keras.layers.Dense(1)])
    paths["regression"] = str(directory / "regression.keras")
    regression.save(paths["regression"])
    paths["not_a_model"] = str(directory / "notes.keras")
    with open(paths["not_a_model"], "w") as f:
        f.write("not a model")
    return paths


@pytest.fixture
def root(tmp_path):
    return tmp_path / "root"


def _listing(path):
    """Every file and directory under `path`, relative, with file contents."""
    found = {}
    for directory, names, files in os.walk(path):
        for name in names:
            found[os.path.relpath(os.path.join(directory, name), path)] = None
        for name in files:
            full = os.path.join(directory, name)
            with open(full, "rb") as f:
                found[os.path.relpath(full, path)] = f.read()
    return found


def _base(root, name="digits"):
    return [f"--base_path={root / name}", f"--model_name={name}"]


# (flags after --model, a part of the one-line message); {root} is the export root.
USAGE_ERRORS = [
    (["extra"], "unexpected arguments ['extra']"),
    (["--formats=saved_model,onnx"], "--formats: unknown format 'onnx'; use one or more of "
     "saved_model, tflite_float32"),
    (["--formats=tflite_int8,tflite_int8"], "--formats names 'tflite_int8' twice"),
    (["--formats="], "names no format"),
    (["--version=0"], "flag --version=0: 0 is not an integer in the range [1, "),
    (["--version=two"], "flag --version=two:"),
    (["--warmup_examples=1000"], "flag --warmup_examples=1000: 1000 is not an integer in the "
     "range [0, 969]"),
    (["--warmup_examples=-1"], "flag --warmup_examples=-1"),
    (["--version=9223372036854775808"], "is not an integer in the range [1, "
     "9223372036854775807]"),
    (["--overwrite"], "--overwrite replaces an existing version: say which with --version=N"),
    (["--tflite_dir={directory}"], "--tflite_dir applies to TFLite files, but "
     "--formats=saved_model writes none"),
    (["--formats=tflite_float16", "--labels=stable"], "--labels applies to the SavedModel, but "
     "--formats=tflite_float16 does not write one"),
    (["--formats=tflite_float16", "--classify"], "--classify applies to the SavedModel"),
    (["--labels=stable,stable"], "--labels names 'stable' twice"),
    (["--labels=can ary"], "--labels: each label must be letters, digits"),
    (["--formats=tflite_int8"], "--formats=tflite_int8 needs --representative_data: it "
     "calibrates the range of every activation. Give --representative_data=digits"),
    (["--formats=saved_model,tflite_int16x8"], "--formats=tflite_int16x8 needs "
     "--representative_data"),
    (["--representative_data={directory}/missing.npz", "--formats=tflite_int8"],
     "--representative_data='{directory}/missing.npz' does not exist"),
    (["--representative_data={wrong_shape}"], "x_train has a batch of shape (40, 28, 28, 1)"),
    (["--verify_data={labels_out_of_range}"], "y_train holds labels 10..19, but the model "
     "outputs 10 classes"),
    (["--verify_data={missing_keys}"], "has no x_train and y_train"),
    (["--verify_data=imagenet"], "--verify_data='imagenet': use 'digits' or 'fashion_mnist'"),
    (["--warmup_examples=5"], "--warmup_examples=5 needs examples to send"),
    (["--verify_data={ok}", "--warmup_examples=41"], "--warmup_examples=41 asks for more "
     "examples than --verify_data holds (40)"),
    (["--tflite_dir={model}", "--formats=tflite_float16"], "--tflite_dir='{model}' is a file"),
]
MODEL_ERRORS = [
    ("{directory}/missing.keras", [], "--model='{directory}/missing.keras' does not exist"),
    ("{not_a_model}", [], "is not a Keras model: neither a .keras archive nor an HDF5 file"),
    ("{directory}", [], "is a directory without saved_model.pb. Give a .keras file"),
    ("{serving_base_path}", [], "It looks like a TF Serving base path"),
    ("{plain_saved_model}", [], "is a SavedModel without keras_metadata.pb"),
    ("{regression}", ["--classify"], "--classify: signatures='classify' needs at least two "
     "classes"),
    ("{regression}", ["--verify_data=digits"], "--verify_data='digits' measures top-1 "
     "accuracy and agreement, so it needs a classifier"),
]
NAME_ERRORS = [
    (["--base_path={root}/digits", "--model_name=my model"], "--model_name must be letters"),
    (["--base_path={root}/tflite", "--model_name=tflite"], "--model_name='tflite' is taken"),
    (["--base_path={root}/other", "--model_name=digits"], "--base_path='{root}/other' must "
     "end in the model's name, 'digits'"),
    (["--base_path={root}/other", "--model_name=digits"], "Use --base_path='{root}/digits'."),
    (["--base_path={model}/digits", "--model_name=digits"], "cannot be written: '{model}' is a "
     "file"),
    (["--model_name=digits"], "missing --base_path: the tool reads a model from --model"),
    (["--base_path={saved_model_dir}", "--model_name=keras_saved_model"], "holds "
     "saved_model.pb: it is a version directory, not a base path"),
]


def _check_usage_error(run_tool, args, message, root, before=None):
    code, stdout, stderr = run_tool(export.run, *args)
    assert code == 2, stderr
    assert stderr.startswith("tfopt-export: error: ") and stderr.count("\n") == 1, stderr
    assert message in stderr
    assert stdout == ""
    assert _listing(root) == (before or {})  # nothing written, not even a directory


@pytest.mark.parametrize("args,message", USAGE_ERRORS)
def test_flag_and_data_errors_exit_2_with_one_line_and_write_nothing(run_tool, models, root,
                                                                      args, message):
    fill = dict(models, root=root)
    args = [f"--model={models['model']}", *_base(root), *(a.format(**fill) for a in args)]
    _check_usage_error(run_tool, args, message.format(**fill), root)


@pytest.mark.parametrize("model,args,message", MODEL_ERRORS)
def test_model_errors_exit_2_with_one_line_and_write_nothing(run_tool, models, root, model,
                                                             args, message):
    args = [f"--model={model.format(**models)}", *_base(root), *args]
    _check_usage_error(run_tool, args, message.format(**models), root)


@pytest.mark.parametrize("args,message", NAME_ERRORS)
def test_name_and_path_errors_exit_2_with_one_line_and_write_nothing(run_tool, models, root,
                                                                      args, message):
    fill = dict(models, root=root)
    args = [f"--model={models['model']}", *(a.format(**fill) for a in args)]
    _check_usage_error(run_tool, args, message.format(**fill), root)


@pytest.mark.parametrize("existing", ["3", "003"])
def test_an_existing_version_needs_overwrite(run_tool, models, root, existing):
    os.makedirs(root / "digits" / existing)
    before = _listing(root)
    _check_usage_error(run_tool, [f"--model={models['model']}", *_base(root), "--version=3"],
                       f"--version=3: {root / 'digits' / existing} exists already; give "
                       "--overwrite", root, before)


@pytest.mark.parametrize("content,message", [
    ("model_config_list { config { name: 'x' base_path: '/models/x' }", "Error parsing "
     "text-format tensorflow.serving.ModelServerConfig"),
    ("model_config_list { config { name: 'digits' base_path: 'relative/digits' } }",
     "base_path='relative/digits' is relative"),
])
def test_an_unusable_models_config_is_a_usage_error_and_stays(run_tool, models, root, content,
                                                               message):
    os.makedirs(root)
    (root / _layout.MODELS_CONFIG).write_text(content)
    before = _listing(root)
    _check_usage_error(run_tool, [f"--model={models['model']}", *_base(root)],
                       f"--base_path: the export root's {root / _layout.MODELS_CONFIG} cannot "
                       "be updated: ", root, before)
    assert message in run_tool(export.run, f"--model={models['model']}", *_base(root))[2]


def _table(stdout):
    """{format: row cells} from the printed table."""
    lines = stdout.splitlines()
    assert lines[0].split() == ["format", "bytes", "gzip", "bytes", "accuracy", "agreement",
                                "max", "abs", "diff", "path"]
    rows = {}
    for line in lines[1:]:
        if line.startswith("configs in "):
            break
        cells = line.split()
        rows[cells[0]] = cells[1:]
    return rows


def _served(root):
    config = tfopt_export.read_model_server_config(str(root / _layout.MODELS_CONFIG))
    return {entry.name: entry for entry in config.model_config_list.config}


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    """Two real runs into one export root that already lists another model.

    Run 1: the .keras model as version 1 (SavedModel with classify and warmup, int8
    TFLite), labelled stable. Run 2: the same model from a SavedModel directory as
    version 2, labelled canary.
    """
    root = tmp_path_factory.mktemp("exported") / "root"
    tfopt_export.model_server_config([tfopt_export.ServedModel("other", latest=2)],
                                     str(root / _layout.MODELS_CONFIG))
    runs = []
    for model, args in [
            (models["model"], ["--formats=saved_model,tflite_int8", "--classify",
                               f"--representative_data={models['ok']}",
                               f"--verify_data={models['ok']}", "--warmup_examples=3",
                               "--labels=stable"]),
            (models["saved_model_dir"], ["--labels=canary"])]:
        with pytest.raises(SystemExit) as exit_info:
            export.run(["tfopt-export", f"--model={model}", *_base(root), *args])
        export.flags.FLAGS.unparse_flags()
        runs.append(exit_info.value.code)
    return root, runs


def test_a_run_writes_the_saved_model_tflite_configs_and_prints_the_table(models, exported,
                                                                          capsys):
    root, codes = exported
    assert codes == [0, 0] or codes == [None, None]
    version = root / "digits" / "1"
    assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
    int8 = root / "tflite" / "digits_int8.tflite"
    assert int8.is_file() and int8.read_bytes()[4:8] == b"TFL3"
    assert tfopt_export.read_batching_config(str(root / _layout.BATCHING_CONFIG)) \
        .max_batch_size.value > 0
    assert tfopt_export.read_monitoring_config(str(root / _layout.MONITORING_CONFIG)) \
        .prometheus_config.enable
    # No staging directory or temporary file is left anywhere.
    assert not [path for path in _listing(root) if "/." in "/" + path]
    with tfopt_export.SavedModelBundle(str(version)) as bundle:  # loaded as TF Serving does
        assert {"serving_default", "classify"} <= set(bundle.signatures)  # --classify
    figures = tfopt_export.verify_saved_model(str(version), None)
    assert figures["warmup_records"] == 3 + 1  # each of 3 examples alone, then one batch of 3


def test_the_printed_table_lists_every_export_with_its_figures(models, tmp_path, run_tool):
    root = tmp_path / "root"
    code, stdout, stderr = run_tool(
        export.run, f"--model={models['model']}", *_base(root),
        "--formats=saved_model,tflite_float16", f"--verify_data={models['ok']}")
    assert code in (0, None), stderr
    rows = _table(stdout)
    assert list(rows) == ["saved_model", "tflite_float16"]
    saved, float16 = rows["saved_model"], rows["tflite_float16"]
    assert saved[-1] == str(root / "digits" / "1")
    assert float16[-1] == str(root / "tflite" / "digits_float16.tflite")
    raw, compressed = (int(cell.replace(",", "")) for cell in float16[:2])
    assert raw == os.path.getsize(float16[-1]) and 0 < compressed < raw
    assert saved[3] == "100.00%" and float(saved[4]) < 1e-4  # agreement, max abs diff
    assert float(float16[2].rstrip("%")) >= 0 and float16[3].endswith("%")
    assert stdout.splitlines()[-1] == (f"configs in {root}: models.config (written), "
                                       "batching.config (written), monitoring.config (written)")
    assert stderr == ""


def test_labels_move_to_the_new_version_and_the_others_stay(exported):
    root, _ = exported
    served = _served(root)
    assert list(served) == ["other", "digits"]  # the model already listed is kept
    assert served["other"].model_version_policy.latest.num_versions == 2
    digits = served["digits"]
    assert digits.base_path == "/models/digits"
    assert list(digits.model_version_policy.specific.versions) == [1, 2]
    assert dict(digits.version_labels) == {"stable": 1, "canary": 2}
    assert sorted(os.listdir(root / "digits")) == ["1", "2"]


@pytest.fixture
def populated_root(tmp_path):
    """An export root that lists another model and holds an older digits TFLite file."""
    root = tmp_path / "root"
    tfopt_export.model_server_config([tfopt_export.ServedModel("other")],
                                     str(root / _layout.MODELS_CONFIG))
    old = root / "tflite" / "digits_float16.tflite"
    old.parent.mkdir()
    old.write_bytes(b"an older export")
    return root


def _fail_with(error):
    def fail(*unused_args, **unused_kwargs):
        raise error
    return fail


def test_a_config_failure_after_the_saved_model_removes_the_new_version(
        run_tool, models, populated_root, monkeypatch):
    before = _listing(populated_root)
    monkeypatch.setattr(tfopt_export, "update_model_server_config",
                        _fail_with(OSError("No space left on device")))
    code, stdout, stderr = run_tool(export.run, f"--model={models['model']}",
                                    *_base(populated_root), "--formats=saved_model,tflite_float16")
    assert code == 1 and stdout == ""
    assert stderr == (f"tfopt-export: error: No space left on device The new version "
                      f"{populated_root / 'digits' / '1'} was removed; the configs and TFLite "
                      "files are as they were.\n")
    # No version, no batching/monitoring config, the old TFLite file untouched.
    assert _listing(populated_root) == before


@pytest.mark.parametrize("failing,message", [
    ("tflite", "tflite_float16: The TFLite converter cannot convert 'm'. Nothing was written."),
    ("saved_model", "saved_model: version 1 differs from the Keras model by 0.5. Nothing was "
     "written."),
])
def test_a_failed_export_exits_1_and_leaves_the_export_root_as_it_was(
        run_tool, models, populated_root, monkeypatch, failing, message):
    """The TFLite file is converted for real first; a later SavedModel failure discards it."""
    before = _listing(populated_root)
    monkeypatch.setattr(tfopt_export, failing, _fail_with(ValueError(message.split(": ", 1)[1]
                                                                     .split(" Nothing")[0])))
    code, _, stderr = run_tool(export.run, f"--model={models['model']}", *_base(populated_root),
                               "--formats=saved_model,tflite_float16")
    assert code == 1
    assert stderr == f"tfopt-export: error: {message}\n"
    assert _listing(populated_root) == before


def test_overwrite_replaces_the_version_given(run_tool, models, tmp_path):
    root = tmp_path / "root"
    stale = root / "digits" / "1" / "stale.txt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from an older export")
    code, _, stderr = run_tool(export.run, f"--model={models['model']}", *_base(root),
                               "--version=1", "--overwrite")
    assert code in (0, None), stderr
    assert sorted(os.listdir(root / "digits" / "1")) == ["assets", "fingerprint.pb",
                                                         "saved_model.pb", "variables"]


def test_int8_needs_representative_data_unless_the_model_is_quantization_aware(models,
                                                                                 monkeypatch):
    """The rule is export.tflite's: a quantization-aware model learned its int8 ranges."""
    from tfopt.cli import _export_inputs
    from tfopt.export import _tflite
    model = keras.models.load_model(models["model"])
    with pytest.raises(export._app.UsageError, match="--formats=tflite_int8 needs"):
        _export_inputs.validate_calibration(model, "int8", None)
    monkeypatch.setattr(_tflite, "_is_quantization_aware", lambda unused_model: True)
    _export_inputs.validate_calibration(model, "int8", None)
    with pytest.raises(export._app.UsageError, match="--formats=tflite_int16x8 needs"):
        _export_inputs.validate_calibration(model, "int16x8", None)


@pytest.mark.parametrize("current,labels,versions,expected_labels", [
    (None, [], None, {}),  # new model, no labels: TF Serving's default, the latest
    (None, ["stable"], [4], {"stable": 4}),
    (dict(latest=2), [], "latest 2", {}),  # the latest-2 policy serves the new version
    (dict(latest=2, versions=None), ["canary"], [4], {"canary": 4}),
    (dict(versions=[1, 3], labels={"stable": 1, "canary": 3}), ["canary"], [1, 3, 4],
     {"stable": 1, "canary": 4}),  # the label moves, version 3 stays served
    (dict(versions=[2]), [], [2, 4], {}),
    (dict(versions="all", labels={"stable": 1}), ["canary"], "all", {"stable": 1, "canary": 4}),
])
def test_the_models_config_entry_after_exporting_version_4(tmp_path, current, labels, versions,
                                                           expected_labels):
    from tfopt.cli import _export_configs
    root = tmp_path / "root"
    if current is not None:
        tfopt_export.model_server_config([tfopt_export.ServedModel("digits", **current)],
                                         str(root / _layout.MODELS_CONFIG))
    update = _export_configs.ConfigUpdate(str(root), "digits", str(root / "digits"), labels)
    entry = update.served_model(4).to_proto()
    policy = entry.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    found = {"all": "all", "latest": f"latest {policy.latest.num_versions}",
             "specific": list(policy.specific.versions)}[kind]
    assert found == (versions or "latest 1")
    assert dict(entry.version_labels) == expected_labels
    assert entry.base_path == "/models/digits"


def test_the_tool_as_a_process_shows_its_help_and_flags(tmp_path):
    result = finish_process(start_process([sys.executable, "-m", "tfopt.cli.export", "--help"]))
    assert result.stdout.startswith("tfopt-export: export a saved Keras model")
    assert "Exit status: 0 done, 2 bad flags" in result.stdout
    for name in FLAG_NAMES:
        assert f"--{name}:" in result.stdout or f"--[no]{name}:" in result.stdout, name
