"""Tests of tfopt-optimize: a real run, every usage error, the help, quiet start-up.

The runs are in this process (`optimize.run(argv)`), but for the help, which
starts ``python -m tfopt.cli.optimize`` as a user would, for what only a
process shows: absl's help text and TensorFlow's log noise.
"""

import json
import os
import sys

import numpy as np
import pytest

from tests.cli.conftest import noise_in
from tests.cli.conftest import run_process
from tests.conftest import compile_model
from tests.conftest import small_cnn
from tfopt import datasets
from tfopt.cli import optimize
from tfopt.pipeline import _strategy

FLAG_NAMES = ("model", "data", "output_dir", "recipe", "teacher", "width", "channel_fraction",
              "sparsity", "criterion", "qat_scheme", "epochs_per_stage", "min_steps_per_stage",
              "batch_size", "temperature", "max_accuracy_drop", "target_size_kb",
              "target_latency_us", "compare_tfmot", "formats", "model_name", "strategy", "seed",
              "overwrite")
# Defaults as --help shows them: the pipeline's, not those of tools sharing the flag.
DEFAULTS = {"sparsity": "0.7", "criterion": "taylor", "batch_size": "64", "width": "0.75",
            "channel_fraction": "0.4", "epochs_per_stage": "1", "recipe": "auto",
            "min_steps_per_stage": "300", "compare_tfmot": "false",
            "qat_scheme": "int8_prune_preserving", "formats": "tflite_int8,saved_model",
            "strategy": "default", "seed": "0", "overwrite": "false"}


@pytest.fixture
def digits_model(tmp_path):
    """A small CNN trained on digits (~95%), whose int8 file agrees with it as a real model's."""
    (x_train, y_train), _ = datasets.load_digits()
    model = compile_model(small_cnn())
    model.fit(x_train, y_train, epochs=3, batch_size=64, verbose=0)
    path = str(tmp_path / "digits.keras")
    model.save(path)
    return path


def test_a_run_prints_the_stage_table_and_the_report_and_refuses_changed_flags(
        run_tool, digits_model, tmp_path):
    output_dir = str(tmp_path / "run")
    args = [f"--model={digits_model}", "--data=digits", f"--output_dir={output_dir}",
            "--recipe=distill", "--epochs_per_stage=1", "--min_steps_per_stage=30",
            "--formats=tflite_int8", "--model_name=digits"]
    code, out, err = run_tool(optimize.run, *args)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("| stage | parameters | MFLOPs |")
    assert [line.split("|")[1].strip() for line in lines[2:4]] == ["`00-float`", "`01-distill`"]
    exported = os.path.join(output_dir, "export", "tflite", "digits_int8.tflite")
    assert f"exported {exported}" in lines and os.path.isfile(exported)
    report = os.path.join(output_dir, "report.md")
    assert lines[-1] == f"report: {report}" and os.path.isfile(report)
    with open(report, encoding="utf-8") as stream:  # the exact command, for repeating the run
        assert "--recipe=distill --epochs_per_stage=1 --min_steps_per_stage=30" in stream.read()
    # digits' 23 steps an epoch fall short of 30: the stage trained two epochs.
    with open(os.path.join(output_dir, "stages", "01-distill", "figures.json"),
              encoding="utf-8") as stream:
        assert json.load(stream)["epochs"] == 2

    code, out, err = run_tool(optimize.run, *args[:-5], "--recipe=distill", "--width=0.25")
    assert code == 2 and out == ""
    assert err.startswith("tfopt-optimize: error: --output_dir: ") and err.count("\n") == 1
    assert "holds another run" in err and "--overwrite to start over" in err


@pytest.mark.parametrize("args,message", [
    ([], "missing --model and --data and --output_dir"),
    (["--model={model}", "--data=digits", "--output_dir={out}", "extra"],
     "unexpected arguments ['extra']"),
    (["--data=mnist"], "--data='mnist': use 'digits' or 'fashion_mnist', or an .npz file"),
    (["--data={missing_keys}"], "has no x_train and y_train"),
    (["--data={object_arrays}"], "x_train holds Python objects"),
    (["--data={wrong_shape}"], "--data: x_train has a batch of shape (40, 28, 28, 1)"),
    (["--data={labels_out_of_range}"], "y_train holds labels 10..19, but the model outputs 10"),
    (["--data={length_mismatch}"], "y_train has 30 labels for 40 examples"),
    (["--recipe=distill,prune"], "--recipe='distill,prune': unknown stage(s) ['prune']"),
    (["--recipe=qat,distill"], "--recipe='qat,distill' is out of order"),
    (["--recipe=unstructured,qat", "--qat_scheme=binary"],
     "--qat_scheme='binary' does not keep the zeros"),
    (["--width=0"], "--width must be a number in (0, 1]; got 0.0"),
    (["--width=1.5"], "--width must be a number in (0, 1]"),
    (["--channel_fraction=nan"], "--channel_fraction must be a number in (0, 1); got nan"),
    (["--sparsity=1"], "--sparsity must be a number in (0, 1); got 1.0"),
    (["--sparsity=high"], "flag --sparsity=high: could not convert string to float"),
    (["--temperature=-1"], "--temperature must be a number in (0, inf)"),
    (["--epochs_per_stage=0"], "--epochs_per_stage must be an int >= 1; got 0"),
    (["--min_steps_per_stage=-1"], "--min_steps_per_stage must be an int >= 0; got -1"),
    (["--batch_size=0"], "--batch_size must be an int >= 1; got 0"),
    (["--seed=-1"], "--seed must be an int >= 0; got -1"),
    (["--criterion=biggest"], "flag --criterion=biggest: value should be one of"),
    (["--qat_scheme=int4"], "flag --qat_scheme=int4: value should be one of"),
    (["--max_accuracy_drop=-0.5"], "--max_accuracy_drop must be a number >= 0 (or None); "
                                   "got -0.5"),
    (["--target_size_kb=0"], "--target_size_kb must be a number >= "),
    (["--target_latency_us=nan"], "--target_latency_us must be a number"),
    (["--max_accuracy_drop=1", "--width=0.25"], "--width with --max_accuracy_drop: the "
                                                "accuracy-aware search picks --width"),
    (["--target_size_kb=9", "--sparsity=0.5", "--channel_fraction=0.5"],
     "--channel_fraction, --sparsity with --target_size_kb"),
    (["--teacher={directory}/missing.keras"], "--teacher='{directory}/missing.keras' does not "
                                              "exist"),
    (["--teacher={directory}"], "--teacher='{directory}': '{directory}' is neither a model "
                                "file (.keras, .h5) nor a SavedModel directory"),
    (["--strategy=threads"], "flag --strategy=threads: value should be one of"),
    (["--formats=tflite_int8,onnx"], "--formats='tflite_int8,onnx': give one or more of "
                                     "tflite_int8, saved_model"),
    (["--formats=saved_model,saved_model"], "each once"),
    (["--model_name=tflite"], "--model_name='tflite' is taken"),
    (["--model=builtin:resnet"], "--model='builtin:resnet': the built-in models are "
                                 "builtin:reference_cnn"),
    (["--model={directory}"], "--model='{directory}' is a directory without saved_model.pb"),
    (["--model=builtin:reference_cnn", "--data={flat}"],
     "--model='builtin:reference_cnn' cannot take --data: reference_cnn takes images"),
])
def test_usage_errors_exit_2_with_one_line_naming_the_flag_and_write_nothing(
        run_tool, tool_files, tmp_path, args, message):
    out_dir = str(tmp_path / "run")
    flat = str(tmp_path / "flat.npz")
    np.savez(flat, x_train=np.zeros((20, 5), np.float32), y_train=np.arange(20) % 2)
    given = {"model": tool_files["model"], "data": "digits", "output_dir": out_dir}
    for arg in args:
        given.pop(arg.lstrip("-").split("=")[0], None)
    args = [arg.format(out=out_dir, flat=flat, **tool_files) for arg in args]
    if args:  # the required flags, unless the case is about them
        args = [f"--{name}={value}" for name, value in given.items()] + args
    code, out, err = run_tool(optimize.run, *args)
    assert code == 2, err
    assert err.startswith("tfopt-optimize: error: ") and err.count("\n") == 1
    assert message.format(**tool_files) in err
    assert out == "" and not os.path.exists(out_dir)


def test_help_lists_every_flag_with_the_pipelines_defaults_and_no_tensorflow_noise(tmp_path):
    result = run_process([sys.executable, "-m", "tfopt.cli.optimize", "--help"])
    assert result.returncode == 1, result.stderr  # absl's status after --help
    assert result.stdout.startswith("tfopt-optimize: one command from a trained model")
    for name in FLAG_NAMES:
        assert f"--{name}:" in result.stdout or f"--[no]{name}:" in result.stdout, name
    for name, default in DEFAULTS.items():
        text = result.stdout.split(f"{name}:", 1)[1].split("\n  --", 1)[0]
        assert f"(default: '{default}')" in text, (name, text)
    assert not noise_in(result.stdout + result.stderr), result.stderr


def test_the_builtin_model_is_not_trained_into_a_directory_holding_another_run(run_tool,
                                                                              tmp_path):
    (tmp_path / "run.json").write_text("{}")
    code, out, err = run_tool(optimize.run, "--model=builtin:reference_cnn", "--data=digits",
                              f"--output_dir={tmp_path}")
    assert code == 2 and err.count("\n") == 1
    assert "holds another run (not of builtin:reference_cnn)" in err and "--overwrite" in err
    assert sorted(os.listdir(tmp_path)) == ["run.json"]


def test_a_search_that_misses_its_target_exits_1_after_writing_the_best_candidate(
        run_tool, digits_model, tmp_path):
    output_dir = str(tmp_path / "run")
    code, out, err = run_tool(optimize.run, f"--model={digits_model}", "--data=digits",
                              f"--output_dir={output_dir}", "--recipe=distill",
                              "--min_steps_per_stage=0", "--target_size_kb=0.05",
                              "--formats=tflite_int8", "--model_name=digits")
    assert code == 1, err
    assert err.splitlines()[-1].startswith("tfopt-optimize: error: no candidate met "
                                           "--target_size_kb=0.05; the best found is the "
                                           "run's result")
    assert os.path.isfile(os.path.join(output_dir, "export", "tflite", "digits_int8.tflite"))
    with open(os.path.join(output_dir, "report.json"), encoding="utf-8") as stream:
        report = json.load(stream)
    assert report["search"]["missed"] == ["target_size_kb"]
    assert report["search"]["chosen"] == {"width": 0.35}  # the smallest rung
    assert len(report["candidates"]) == report["search"]["candidates_tried"] >= 2
    assert out.splitlines()[-1] == f"report: {os.path.join(output_dir, 'report.md')}"


def test_a_saved_model_teacher_teaches_and_one_of_another_task_is_refused(
        run_tool, digits_model, tmp_path):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    import tf_keras as keras  # pylint: disable=import-outside-toplevel
    teacher = keras.models.load_model(digits_model)
    module = tf.Module()
    module.model = teacher
    module.__call__ = tf.function(lambda x: teacher(x, training=False),
                                  input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "hub"))
    args = [f"--model={digits_model}", "--data=digits", "--recipe=distill",
            "--min_steps_per_stage=0", "--formats=tflite_int8"]
    code, _, err = run_tool(optimize.run, *args, f"--output_dir={tmp_path / 'run'}",
                            f"--teacher={tmp_path / 'hub'}")
    assert code == 0, err
    with open(tmp_path / "run" / "run.json", encoding="utf-8") as stream:
        assert "teacher" in json.load(stream)

    other = compile_model(keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                                            keras.layers.Dense(4)]))
    other.save(str(tmp_path / "other.keras"))
    code, out, err = run_tool(optimize.run, *args, f"--output_dir={tmp_path / 'refused'}",
                              f"--teacher={tmp_path / 'other.keras'}")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "maps (8, 8, 1) to (4,); the model maps (8, 8, 1) to (10,)" in err
    assert not os.path.exists(tmp_path / "refused")


def test_a_search_judges_on_the_npz_validation_arrays_and_needs_both(run_tool, digits_model,
                                                                      tmp_path):
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    data = str(tmp_path / "data.npz")
    np.savez(data, x_train=x_train[:1200], y_train=y_train[:1200], x_test=x_test,
             y_test=y_test, x_val=x_train[1200:], y_val=y_train[1200:])
    args = [f"--model={digits_model}", f"--data={data}", "--recipe=qat",
            "--min_steps_per_stage=0", "--max_accuracy_drop=50", "--formats=tflite_int8"]
    code, _, err = run_tool(optimize.run, *args, f"--output_dir={tmp_path / 'run'}")
    assert code == 0, err
    with open(tmp_path / "run" / "report.json", encoding="utf-8") as stream:
        search = json.load(stream)["search"]
    assert search["validation_examples"] == len(x_train) - 1200
    assert search["validation"] == "validation data given to the run"

    np.savez(data, x_train=x_train, y_train=y_train, x_val=x_train[:10])
    code, out, err = run_tool(optimize.run, *args, f"--output_dir={tmp_path / 'refused'}")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "has x_val without y_val; save both, or neither" in err


@pytest.mark.parametrize("tf_config, message", [
    (None, "--strategy=multi_worker: strategy='multi_worker' needs the TF_CONFIG environment "
           "variable naming the cluster and this worker's task"),
    ("{'cluster': {}}", "--strategy=multi_worker: TF_CONFIG is not JSON"),
    ('{"cluster": {"worker": ["127.0.0.1:2222"]}}',
     "--strategy=multi_worker: TF_CONFIG needs a 'cluster' and a 'task' object"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}',
     "cluster job 'worker' must list 'host:port' addresses"),
    ('{"cluster": {"worker": ["127.0.0.1:2222"]}, "task": {"type": "worker", "index": 1}}',
     "is not a training task of the cluster (training tasks: worker 0..0)"),
])
def test_multi_worker_without_a_usable_tf_config_is_a_usage_error(
        run_tool, tool_files, tmp_path, monkeypatch, tf_config, message):
    if tf_config is None:
        monkeypatch.delenv(_strategy.TF_CONFIG, raising=False)
    else:
        monkeypatch.setenv(_strategy.TF_CONFIG, tf_config)
    out_dir = str(tmp_path / "run")
    code, out, err = run_tool(optimize.run, f"--model={tool_files['model']}", "--data=digits",
                              f"--output_dir={out_dir}", "--strategy=multi_worker")
    assert code == 2, err
    assert err.startswith("tfopt-optimize: error: ") and err.count("\n") == 1
    assert message in err
    assert out == "" and not os.path.exists(out_dir)


def test_mirrored_trains_on_every_local_device(run_tool, digits_model, tmp_path, monkeypatch,
                                               mirrored_strategy):
    # MirroredStrategy() takes this process's two logical CPUs (tests/conftest.py); the
    # session's strategy over them stands in for it (a second one would collide).
    monkeypatch.setitem(_strategy._made, "mirrored", mirrored_strategy)
    output_dir = tmp_path / "run"
    code, out, err = run_tool(optimize.run, f"--model={digits_model}", "--data=digits",
                              f"--output_dir={output_dir}", "--recipe=distill",
                              "--formats=tflite_int8", "--strategy=mirrored")
    assert code == 0, err
    assert out.splitlines()[-1] == f"report: {output_dir / 'report.md'}"
    with open(output_dir / "run.json", encoding="utf-8") as stream:
        record = json.load(stream)
    assert (record["strategy"], record["workers"], record["replicas"]) == ("mirrored", 1, 2)
