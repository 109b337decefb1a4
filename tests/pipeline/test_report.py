"""tfopt.pipeline._report: report.json, report.md and the plots, from synthetic figures."""

import copy
import json
import math
import os
import re

import numpy as np
import pytest
from matplotlib import image

from tfopt.pipeline import _report

PLOTS = ["accuracy_vs_latency.png", "accuracy_vs_size.png", "channels.png", "sparsity.png"]


def _stage(index, name, gzip_bytes, latency, accuracy, channels, sparsity):
    return {
        "stage": f"{index:02d}-{name}", "name": name, "parameters": 1000 * channels[0],
        "mflops": 0.5 * channels[0], "keras_bytes": 40 * gzip_bytes,
        "keras_gzip_bytes": 30 * gzip_bytes, "tflite_bytes": 4 * gzip_bytes,
        "tflite_gzip_bytes": gzip_bytes, "keras_accuracy": accuracy + 0.001,
        "tflite_accuracy": accuracy, "agreement": 0.99, "latency_ms": latency,
        "wall_seconds": 12.5, "epochs": 1,
        "layers": [{"name": layer, "type": "Conv2D" if layer.startswith("conv") else "Dense",
                    "channels": count, "sparsity": sparsity}
                   for layer, count in zip(["conv_1", "conv_2", "logits"], channels)],
    }


def _report_input():
    return {
        "command": "tfopt-optimize --model=builtin:reference_cnn --data=digits --output_dir=run",
        "data": "digits", "seed": 3,
        "versions": {"tensorflow": "2.21.0", "tfopt": "0.1.0"},
        "recipe": ["distill", "channels", "unstructured", "qat"],
        "stages": [_stage(0, "float", 62400, 0.50, 0.975, [32, 64, 10], 0.0),
                   _stage(1, "distill", 15600, 0.20, 0.970, [16, 32, 10], 0.0),
                   _stage(3, "unstructured", 6240, 0.20, 0.972, [16, 32, 10], 0.7),
                   _stage(4, "qat", 2000, 0.10, 0.973, [16, 32, 10], 0.7)],
        "candidates": [{"parameters_tried": {"width": 0.25, "sparsity": 0.8},
                        "tflite_gzip_bytes": 1500, "latency_ms": 0.08, "tflite_accuracy": 0.95},
                       {"parameters_tried": {"width": 0.5, "sparsity": 0.9},
                        "tflite_gzip_bytes": 2500, "latency_ms": 0.12,
                        "tflite_accuracy": 0.96}],
        "reference_points": {"tfmot prune+PQAT": {"tflite_gzip_bytes": 5400, "latency_ms": 0.25,
                                                  "tflite_accuracy": 0.978}},
    }


def _table_rows(markdown, first_header):
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return lines[start], rows


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """(the directory of one report written from `_report_input`, the names `write` returned)."""
    directory = tmp_path_factory.mktemp("report")
    return directory, _report.write(_report_input(), str(directory))


def test_every_file_is_written_and_returned(written):
    directory, names = written
    assert names == sorted(["report.json", "report.md"] + PLOTS)
    assert sorted(os.listdir(directory)) == names


def test_report_json_is_the_input(written):
    with open(written[0] / "report.json") as stream:
        assert json.load(stream) == _report_input()


def test_report_md_has_one_row_per_stage_with_ratios_against_float(written):
    markdown = (written[0] / "report.md").read_text()
    header, rows = _table_rows(markdown, "stage")
    assert header == ("| stage | parameters | MFLOPs | .keras bytes | .keras gzip | TFLite bytes | "
                      "TFLite gzip | Keras acc | TFLite acc | agreement | latency ms | wall s |")
    assert [row[0] for row in rows] == ["`00-float`", "`01-distill`", "`03-unstructured`",
                                        "`04-qat`"]
    by_stage = {row[0]: row for row in rows}
    assert by_stage["`00-float`"][6] == "62,400" and by_stage["`00-float`"][10] == "0.500"
    assert by_stage["`01-distill`"][6] == "15,600 (x4.0 smaller)"
    assert by_stage["`04-qat`"][6] == "2,000 (x31.2 smaller)"
    assert by_stage["`04-qat`"][10] == "0.100 (x5.0 faster)"
    assert by_stage["`04-qat`"][8] == "97.30%"
    assert _report.stage_table(_report_input()) in markdown
    assert ("The last stage, `04-qat`, is x31.2 smaller (gzipped TFLite) and x5.0 faster than "
            "the float stage, at 97.30% TFLite accuracy against 97.50%.") in markdown
    # The repeat section names the command, data, seed and versions.
    assert "```\ntfopt-optimize --model=builtin:reference_cnn --data=digits" in markdown
    assert "- seed: 3" in markdown and "- data: digits" in markdown
    assert "tensorflow 2.21.0" in markdown
    for plot in PLOTS:
        assert f"![{plot}]({plot})" in markdown


def test_report_md_says_larger_and_slower_when_a_stage_is():
    report = _report_input()
    report["stages"][1].update(tflite_gzip_bytes=124800, latency_ms=0.75)
    markdown = _report.markdown(report)
    row = _table_rows(markdown, "stage")[1][1]
    assert row[6] == "124,800 (x2.0 larger)" and row[10] == "0.750 (x1.5 slower)"


def test_candidates_and_reference_points_get_tables():
    markdown = _report.markdown(_report_input())
    _, candidates = _table_rows(markdown, "candidate")
    assert candidates == [
        ["`c1`", "sparsity=0.8, width=0.25", "1,500 (x41.6 smaller)", "95.00%",
         "0.080 (x6.2 faster)"],
        ["`c2`", "sparsity=0.9, width=0.5", "2,500 (x25.0 smaller)", "96.00%",
         "0.120 (x4.2 faster)"]]
    _, references = _table_rows(markdown, "reference")
    assert references[0][0] == "`tfmot prune+PQAT`"
    # c2 (2,500 bytes, 96%) is beaten by 04-qat (2,000, 97.3%), the float stage by the
    # reference (5,400, 97.8%).
    assert ("- On the Pareto front (no other point both smaller and more accurate): `c1`, "
            "`04-qat`, `tfmot prune+PQAT`.") in markdown


def test_no_candidates_no_candidate_table():
    report = _report_input()
    report["candidates"], report["reference_points"] = [], {}
    markdown = _report.markdown(report)
    assert "| candidate |" not in markdown and "| reference |" not in markdown


def test_every_plot_decodes_as_an_image_of_sensible_size(written):
    for plot in PLOTS:
        pixels = image.imread(str(written[0] / plot))
        height, width = pixels.shape[:2]
        assert 200 <= height <= 2000 and 300 <= width <= 2000, (plot, pixels.shape)
        assert np.ptp(pixels[..., :3]) > 0.5, f"{plot} is blank"


@pytest.mark.parametrize("points, front", [
    ([], []),
    ([(10, 0.9, "a")], [(10, 0.9, "a")]),
    # b is larger and less accurate than a; c is smaller and less accurate: kept.
    ([(10, 0.9, "a"), (20, 0.8, "b"), (5, 0.7, "c")], [(5, 0.7, "c"), (10, 0.9, "a")]),
    # Same size, less accurate: dominated. Same accuracy, larger: dominated.
    ([(10, 0.9, "a"), (10, 0.8, "b"), (12, 0.9, "c")], [(10, 0.9, "a")]),
    # Identical points dominate neither each other: both stay.
    ([(10, 0.9, "a"), (10, 0.9, "b"), (30, 0.95, "c")],
     [(10, 0.9, "a"), (10, 0.9, "b"), (30, 0.95, "c")]),
])
def test_pareto_front(points, front):
    assert _report.pareto_front(points) == front
    assert _report.pareto_front(list(reversed(points))) == front


def test_missing_layers_skip_their_plots_and_remove_stale_ones(tmp_path):
    _report.write(_report_input(), str(tmp_path))
    report = _report_input()
    for stage in report["stages"]:
        stage["layers"] = []
    written = _report.write(report, str(tmp_path))
    assert "sparsity.png" not in written and "channels.png" not in written
    assert not (tmp_path / "sparsity.png").exists() and not (tmp_path / "channels.png").exists()
    assert "![sparsity.png]" not in (tmp_path / "report.md").read_text()
    assert "accuracy_vs_size.png" in written


def test_layers_without_channels_skip_only_the_channel_plot(tmp_path):
    report = _report_input()
    for stage in report["stages"]:
        for layer in stage["layers"]:
            layer["channels"] = None
    written = _report.write(report, str(tmp_path))
    assert "channels.png" not in written and "sparsity.png" in written


def _without(key):
    def change(report):
        del report["stages"][2][key]
    return change


def _set(path, value):
    def change(report):
        target = report
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value
    return change


@pytest.mark.parametrize("change, words", [
    (lambda report: report.pop("seed"), ["'seed'"]),
    (lambda report: report.pop("stages"), ["'stages'"]),
    (_set(["stages"], []), ["'stages'", "float"]),
    (_without("latency_ms"), ["'latency_ms'", "'03-unstructured'"]),
    (_without("layers"), ["'layers'", "'03-unstructured'"]),
    (_set(["stages", 1], {}), ["stages[1]", "no figures"]),
    (_set(["stages", 2, "tflite_accuracy"], math.nan), ["'tflite_accuracy'",
                                                        "'03-unstructured'", "nan"]),
    (_set(["stages", 2, "wall_seconds"], math.inf), ["'wall_seconds'", "'03-unstructured'"]),
    (_set(["stages", 3, "tflite_gzip_bytes"], 0), ["'tflite_gzip_bytes'", "'04-qat'"]),
    (_set(["stages", 3, "tflite_gzip_bytes"], np.int64(5)), ["'tflite_gzip_bytes'", "int64"]),
    (_set(["stages", 3, "keras_accuracy"], 97.3), ["'keras_accuracy'", "'04-qat'", "share"]),
    (_set(["stages", 3, "epochs"], True), ["'epochs'", "'04-qat'"]),
    (_set(["stages", 3, "layers", 1, "sparsity"], math.nan), ["'sparsity'", "'04-qat'",
                                                              "layers[1]"]),
    (_set(["stages", 3, "layers", 0, "channels"], 3.5), ["'channels'", "'04-qat'"]),
    (lambda report: report["stages"].pop(0), ["first stage", "'01-distill'"]),
    (lambda report: report["candidates"][1].pop("latency_ms"), ["'latency_ms'",
                                                                "candidates[1]"]),
    (_set(["candidates", 0, "parameters_tried"], [0.5]), ["'parameters_tried'", "candidates[0]"]),
    (_set(["reference_points", "tfmot prune+PQAT", "latency_ms"], math.nan),
     ["'latency_ms'", "'tfmot prune+PQAT'"]),
    (_set(["versions", "numpy"], math.nan), ["'versions'", "'numpy'"]),
    (_set(["command"], None), ["'command'", "str"]),
    (_set(["recipe"], ["qat", 4]), ["'recipe'", "4"]),
])
def test_bad_input_raises_naming_the_key_and_writes_nothing(tmp_path, change, words):
    report = copy.deepcopy(_report_input())
    change(report)
    with pytest.raises(ValueError) as raised:
        _report.write(report, str(tmp_path / "run"))
    for word in words:
        assert word in str(raised.value)
    assert not (tmp_path / "run").exists()


def test_a_report_that_is_not_a_dict_raises():
    with pytest.raises(ValueError, match="must be a dict"):
        _report.write([], "unused")


def test_writing_again_replaces_every_file_and_leaves_no_temporary_files(tmp_path):
    _report.write(_report_input(), str(tmp_path))
    report = _report_input()
    report["seed"] = 4
    report["stages"][3]["tflite_gzip_bytes"] = 3120
    before = {name: os.stat(tmp_path / name).st_ino for name in os.listdir(tmp_path)}
    written = _report.write(report, str(tmp_path))
    assert sorted(os.listdir(tmp_path)) == written  # no .tfopt-* staging directory left
    for name in written:  # each file was renamed into place, not rewritten in it
        assert os.stat(tmp_path / name).st_ino != before[name], name
    with open(tmp_path / "report.json") as stream:
        assert json.load(stream)["seed"] == 4
    assert re.search(r"\| `04-qat` \|.*\| 3,120 \(x20\.0 smaller\) \|",
                     (tmp_path / "report.md").read_text())
