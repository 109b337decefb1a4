"""pipeline.optimize (tfopt/pipeline/_run.py): stages saved one by one, continued, refused."""

import json
import math
import os
import shutil

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter

from tfopt import pipeline
from tfopt import quantization
from tfopt.pipeline import _figures
from tfopt.pipeline import _run

STAGE_DIRS = ["00-float", "01-distill", "02-channels", "03-unstructured", "04-qat"]
FIGURES = {"stage", "name", "epochs", "parameters", "mflops", "keras_bytes", "keras_gzip_bytes",
           "tflite_bytes", "tflite_gzip_bytes", "keras_accuracy", "tflite_accuracy",
           "agreement", "latency_ms", "wall_seconds", "layers"}


def _stage_dir(result, stage):
    return os.path.join(result.output_dir, _run.STAGES_DIR, stage)


def test_the_report_names_every_stage_and_the_call(finished_run):
    result, _ = finished_run
    assert result.report == os.path.join(result.output_dir, "report.md")
    with open(os.path.join(result.output_dir, "report.json"), encoding="utf-8") as stream:
        report = json.load(stream)
    assert report["stages"] == result.stages
    assert report["command"].startswith("tfopt.pipeline.optimize(model, data, output_dir, "
                                        "recipe=['distill', 'channels', 'unstructured', 'qat']")
    assert report["seed"] == 3 and report["versions"]["tensorflow"].startswith("2.")
    with open(result.report, encoding="utf-8") as stream:
        text = stream.read()
    assert all(stage in text for stage in STAGE_DIRS)
    assert os.path.exists(os.path.join(result.output_dir, "accuracy_vs_size.png"))


def test_every_stage_leaves_its_model_tflite_file_and_figures(finished_run):
    result, _ = finished_run
    assert sorted(os.listdir(os.path.join(result.output_dir, _run.STAGES_DIR))) == STAGE_DIRS
    assert [figures["stage"] for figures in result.stages] == STAGE_DIRS
    for figures in result.stages:
        assert set(figures) == FIGURES
        assert figures == _figures.read_figures(_stage_dir(result, figures["stage"]))
        for key in FIGURES - {"stage", "name", "layers"}:
            assert isinstance(figures[key], (int, float)) and math.isfinite(figures[key]), key
        assert 0 <= figures["tflite_accuracy"] <= 1 and 0 <= figures["agreement"] <= 1
        files = os.listdir(_stage_dir(result, figures["stage"]))
        assert sorted(files) == sorted([_figures.MODEL_FILE, _figures.TFLITE_FILE,
                                        _figures.FIGURES_FILE])


def test_stages_narrow_prune_and_quantize_the_model(finished_run):
    result, options = finished_run
    by_name = {figures["name"]: figures for figures in result.stages}
    channels = {name: [layer["channels"] for layer in by_name[name]["layers"]]
                for name in by_name}
    # The classifier keeps its 10 outputs; the hidden layers narrow stage by stage.
    assert channels["float"] == [8, 8, 16, 10]
    assert channels["distill"] == [6, 6, 12, 10]  # width 0.75
    assert all(c < d for c, d in zip(channels["channels"][:3], channels["distill"][:3]))
    assert by_name["channels"]["parameters"] < by_name["distill"]["parameters"] < by_name[
        "float"]["parameters"]
    sparsity = [layer["sparsity"] for layer in by_name["unstructured"]["layers"]]
    assert all(abs(value - options["sparsity"]) < 0.1 for value in sparsity), sparsity
    # Prune-preserving QAT keeps the zeros; the qat file is integer-only.
    assert by_name["qat"]["layers"] == by_name["unstructured"]["layers"]
    interpreter = Interpreter(os.path.join(_stage_dir(result, "04-qat"), _figures.TFLITE_FILE))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert by_name["qat"]["tflite_gzip_bytes"] < by_name["float"]["tflite_gzip_bytes"]


def test_a_finished_run_started_again_does_nothing_and_says_so(
        finished_run, float_model, digits_data, monkeypatch):
    result, options = finished_run
    before = {stage: os.stat(_stage_dir(result, stage)).st_mtime_ns for stage in STAGE_DIRS}
    said = []
    monkeypatch.setattr(_run.logging, "info", lambda text, *args: said.append(text % args))
    again = pipeline.optimize(float_model, digits_data, result.output_dir, **options)
    assert again.stages == result.stages
    assert {stage: os.stat(_stage_dir(result, stage)).st_mtime_ns
            for stage in STAGE_DIRS} == before
    assert sum("is done" in line for line in said) == len(STAGE_DIRS)
    assert said[-1].endswith("holds this run, finished: nothing to do")


def test_the_float_model_is_not_changed(finished_run, float_model):
    result, _ = finished_run
    float_file = os.path.join(_stage_dir(result, "00-float"), _figures.MODEL_FILE)
    saved = quantization.load_model(float_file, compile=False)
    for ours, theirs in zip(float_model.get_weights(), saved.get_weights()):
        np.testing.assert_array_equal(ours, theirs)


def test_a_run_continues_after_its_last_finished_stage(tmp_path, finished_run, float_model,
                                                      digits_data):
    result, options = finished_run
    output_dir = tmp_path / "run"
    shutil.copytree(result.output_dir, output_dir)
    shutil.rmtree(os.path.join(output_dir, _run.STAGES_DIR, "04-qat"))  # stopped during qat
    kept = os.stat(os.path.join(output_dir, _run.STAGES_DIR, "03-unstructured")).st_mtime_ns
    again = pipeline.optimize(float_model, digits_data, output_dir, **options)
    assert os.stat(os.path.join(output_dir, _run.STAGES_DIR, "03-unstructured")).st_mtime_ns == kept
    assert again.stages[:4] == result.stages[:4]
    # The same seed and the same starting model: the redone stage ends where it ended, up to
    # the order of float sums in TensorFlow's threaded kernels.
    assert again.stages[4]["layers"] == result.stages[4]["layers"]
    models = [quantization.load_model(os.path.join(root, _run.STAGES_DIR, "04-qat",
                                                   _figures.MODEL_FILE), compile=False)
              for root in (result.output_dir, output_dir)]
    for first, second in zip(*(model.get_weights() for model in models)):
        np.testing.assert_allclose(first, second, atol=1e-4)


@pytest.mark.parametrize("change, differs", [
    (lambda options, data: ({**options, "sparsity": 0.5}, data), "options"),
    (lambda options, data: (options, ((data[0][0][:-1], data[0][1][:-1]), data[1])), "data"),
])
def test_another_run_in_the_same_directory_is_refused(finished_run, float_model, digits_data,
                                                      change, differs):
    result, options = finished_run
    options, data = change(options, digits_data)
    with pytest.raises(ValueError, match=rf"holds another run \(it differs in \['{differs}'\]\); "
                                         r"give another output_dir, or overwrite=True"):
        pipeline.optimize(float_model, data, result.output_dir, **options)


def test_overwrite_starts_over(tmp_path, float_model, digits_data):
    output_dir = tmp_path / "run"
    options = dict(recipe="distill", epochs_per_stage=1, min_steps_per_stage=0)
    pipeline.optimize(float_model, digits_data, output_dir, **options)
    result = pipeline.optimize(float_model, digits_data, output_dir, width=0.25, overwrite=True,
                               **options)
    assert [layer["channels"] for layer in result.stages[1]["layers"]] == [2, 2, 4, 10]
    with open(os.path.join(output_dir, _run.RUN_FILE), encoding="utf-8") as stream:
        assert json.load(stream)["options"]["width"] == 0.25


@pytest.mark.parametrize("change, message", [
    (lambda d: ((d[0][0][:, :4], d[0][1]), d[1]), r"x_train has examples of shape \(4, 8, 1\)"),
    (lambda d: ((d[0][0], d[0][1] + 10), d[1]), r"y_train holds classes 10..19; the model has "
                                                 r"10 outputs"),
    (lambda d: ((d[0][0], d[0][1].astype(float)), d[1]), r"y_train must be \d+ integer class ids"),
    (lambda d: (d[0][0], d[0][1]), r"data must be \(\(x_train, y_train\), \(x_test, y_test\)\)"),
    (lambda d: (d[0], (d[1][0][:0], d[1][1][:0])), "x_test holds no examples"),
])
def test_bad_data_is_refused_before_anything_runs(tmp_path, float_model, digits_data, change,
                                                  message):
    with pytest.raises(ValueError, match=message):
        pipeline.optimize(float_model, change(digits_data), tmp_path / "run")
    assert not os.path.exists(tmp_path / "run")

