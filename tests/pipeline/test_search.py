"""Tests of the accuracy-aware search: bisection on made-up figures, then real runs on digits."""

import json
import os

import numpy as np
import pytest

from tests.conftest import compile_model
from tests.conftest import small_cnn
from tfopt import export
from tfopt import pipeline
from tfopt.pipeline import _search


def _figures(rung):
    """Made-up last-stage figures of rung `rung`: each rung 1 point less accurate, half the size."""
    return {"tflite_accuracy": 0.95 - 0.01 * rung, "tflite_gzip_bytes": 64000 // 2 ** rung,
            "latency_ms": 0.1 / (rung + 1)}


def _run_search(goals, rungs=7):
    tried = []

    def evaluate(index):
        tried.append(index)
        return _figures(index)

    chosen, missed, order = _search.search(evaluate, [{}] * rungs, goals, float_accuracy=0.95)
    assert order == tried and len(set(tried)) == len(tried)  # no candidate trained twice
    return chosen, missed, tried


@pytest.mark.parametrize("drop, expected", [(0.0, 0), (1.0, 1), (2.5, 2), (3.0, 3), (4.2, 4),
                                            (5.0, 5), (6.0, 6), (50.0, 6)])
def test_the_search_picks_the_most_aggressive_rung_within_the_drop_in_few_tries(drop, expected):
    chosen, missed, tried = _run_search(_search.Goals(max_accuracy_drop=drop))
    assert (chosen, missed) == (expected, [])
    assert tried[0] == 3 and len(tried) <= 3  # starts at the default rung, bisects 7 rungs


@pytest.mark.parametrize("size_kb, expected", [(64, 0), (32, 1), (20, 2), (8, 3), (1, 6)])
def test_with_a_size_target_alone_the_search_picks_the_most_accurate_rung_that_meets_it(
        size_kb, expected):
    chosen, missed, tried = _run_search(_search.Goals(target_size_kb=size_kb))
    assert (chosen, missed) == (expected, []) and len(tried) <= 3


def test_a_target_no_rung_meets_leaves_the_smallest_candidate_and_names_the_target():
    chosen, missed, _ = _run_search(_search.Goals(target_size_kb=0.1, target_latency_us=1000))
    assert (chosen, missed) == (6, ["target_size_kb"])


def test_a_drop_no_rung_keeps_leaves_the_most_accurate_candidate_tried():
    def evaluate(index):
        return {**_figures(index), "tflite_accuracy": 0.5}

    chosen, missed, tried = _search.search(evaluate, [{}] * 7,
                                           _search.Goals(max_accuracy_drop=1.0), 0.95)
    assert missed == ["max_accuracy_drop"] and chosen in tried and 0 in tried


def test_the_drop_and_a_target_together_name_the_target_the_smallest_model_misses():
    chosen, missed, _ = _run_search(_search.Goals(max_accuracy_drop=2.0, target_size_kb=4))
    assert (chosen, missed) == (2, ["target_size_kb"])  # 16 KB: the smallest within 2 points


def test_latency_is_compared_in_microseconds():
    goals = _search.Goals(target_latency_us=30)
    assert goals.missed({**_figures(0), "latency_ms": 0.031}, 0.95) == ["target_latency_us"]
    assert goals.missed({**_figures(0), "latency_ms": 0.029}, 0.95) == []


@pytest.mark.parametrize("kwargs, message", [
    (dict(max_accuracy_drop=-1), r"max_accuracy_drop must be a number >= 0 \(or None\); got -1"),
    (dict(target_size_kb=0), "target_size_kb must be a number >= "),
    (dict(target_latency_us=float("inf")), "target_latency_us must be a number"),
    (dict(target_size_kb="10"), "target_size_kb must be a number"),
])
def test_bad_goals_are_refused_naming_them(kwargs, message):
    with pytest.raises(ValueError, match=message):
        _search.Goals(**kwargs)


def test_the_validation_split_is_a_seeded_tenth_of_the_training_data_and_apart_from_it():
    x, y = np.arange(200, dtype=np.float32).reshape(100, 2), np.arange(100) % 10
    (x_fit, y_fit), (x_val, y_val) = _search.validation_split((x, y), seed=3)
    assert (len(x_fit), len(x_val)) == (90, 10)
    assert not set(x_fit[:, 0]) & set(x_val[:, 0])
    assert set(x_fit[:, 0]) | set(x_val[:, 0]) == set(x[:, 0])
    np.testing.assert_array_equal(y_val, (x_val[:, 0] // 2).astype(int) % 10)  # rows kept whole
    again = _search.validation_split((x, y), seed=3)[1][0]
    other = _search.validation_split((x, y), seed=4)[1][0]
    np.testing.assert_array_equal(again, x_val)
    assert not np.array_equal(other, x_val)


def test_rungs_keep_only_the_parameters_of_the_recipe():
    assert _search.rungs(["distill", "qat"]) == [{"width": w} for w in (1.0, 0.75, 0.5, 0.35)]
    assert _search.rungs(["qat"]) == [{}]
    assert len(_search.rungs(list(pipeline.STAGES))) == len(_search.LADDER)


SEARCH_OPTIONS = dict(recipe="distill", epochs_per_stage=1, min_steps_per_stage=60, seed=2)
DROP = 3.0


@pytest.fixture(scope="module")
def held_out(digits_data):
    """(a float model trained on 90% of digits' training split, its data, the other 10%)."""
    (x_train, y_train), test = digits_data
    fit, validation = _search.validation_split((x_train, y_train), seed=5)
    model = compile_model(small_cnn())
    model.fit(*fit, epochs=8, batch_size=64, verbose=0)
    return model, (fit, test), validation


def test_a_search_on_digits_stays_within_its_drop_judged_on_held_out_data(tmp_path, held_out):
    float_model, digits_data, validation = held_out
    result = pipeline.optimize(float_model, digits_data, tmp_path / "run", max_accuracy_drop=DROP,
                               validation_data=validation, **SEARCH_OPTIONS)
    with open(result.report.replace(".md", ".json"), encoding="utf-8") as stream:
        report = json.load(stream)
    search = report["search"]
    assert result.missed == search["missed"] == []
    assert 1 <= search["candidates_tried"] == len(result.candidates) <= 3
    assert report["candidates"] == json.loads(json.dumps(result.candidates))
    float_accuracy = search["float_validation_accuracy"]
    chosen = [c for c in result.candidates if c["parameters_tried"] == search["chosen"]]
    assert len(chosen) == 1 and (float_accuracy - chosen[0]["tflite_accuracy"]) * 100 <= DROP
    assert search["validation"] == "validation data given to the run"
    # Every more aggressive rung tried broke the drop: the chosen one is the smallest kept.
    ladder = search["ladder"]
    for candidate in result.candidates:
        if ladder.index(candidate["parameters_tried"]) > ladder.index(search["chosen"]):
            assert candidate["missed"] == ["max_accuracy_drop"]

    # Candidates were judged on the held-out split: their accuracy is that of their file there.
    (x_val, y_val), (x_test, y_test) = validation, digits_data[1]
    first = result.candidates[0]
    directory = os.path.join(result.output_dir, "candidates",
                             f"{ladder.index(first['parameters_tried']):02d}-width"
                             f"{first['parameters_tried']['width']:g}")
    measured = export.verify_tflite(os.path.join(directory, "stages", "01-distill",
                                                 "model.tflite"), x_val, y_val)
    assert measured["accuracy"] == pytest.approx(first["tflite_accuracy"])
    # The run's stages are the chosen candidate's files, measured on the test split.
    last = result.stages[-1]
    on_test = export.verify_tflite(os.path.join(result.output_dir, "stages", "01-distill",
                                                "model.tflite"), x_test, y_test)
    assert on_test["accuracy"] == pytest.approx(last["tflite_accuracy"])
    assert last["tflite_gzip_bytes"] == chosen[0]["tflite_gzip_bytes"]
    with open(result.report, encoding="utf-8") as stream:
        markdown = stream.read()
    assert "## Accuracy-aware search" in markdown and "never on the test split" in markdown

    again = pipeline.optimize(float_model, digits_data, tmp_path / "run", max_accuracy_drop=DROP,
                              validation_data=validation, **SEARCH_OPTIONS)  # read back
    assert again.stages == result.stages and again.candidates == result.candidates


# Slow (~20 s: two whole searches); tests/cli/test_optimize_cli.py checks a missed target's
# exit status and files in `make test`.
@pytest.mark.slow
def test_a_target_no_candidate_meets_ends_with_the_best_found_and_names_it(
        tmp_path, float_model, digits_data):
    result = pipeline.optimize(float_model, digits_data, tmp_path / "run", target_size_kb=0.05,
                               **{**SEARCH_OPTIONS, "min_steps_per_stage": 0})
    assert result.missed == ["target_size_kb"]
    smallest = min(result.candidates, key=lambda c: c["tflite_gzip_bytes"])
    assert result.candidates[-1]["parameters_tried"] == {"width": 0.35}
    assert result.stages[-1]["tflite_gzip_bytes"] == smallest["tflite_gzip_bytes"]
    with open(result.report, encoding="utf-8") as stream:
        markdown = stream.read()
    assert "**No candidate met target_size_kb.**" in markdown
    assert "held out of the training data" in markdown

    # Started over with other options: the old run's candidates are not taken for new ones.
    again = pipeline.optimize(float_model, digits_data, tmp_path / "run", target_size_kb=0.05,
                              overwrite=True, **{**SEARCH_OPTIONS, "min_steps_per_stage": 0,
                                                 "epochs_per_stage": 2})
    assert [candidate["epochs"] for candidate in again.candidates] == [2] * len(
        again.candidates)


@pytest.mark.parametrize("kwargs", [dict(width=0.25), dict(sparsity=0.9, channel_fraction=0.3)])
def test_the_searched_parameters_cannot_be_given_with_a_goal(tmp_path, float_model, digits_data,
                                                             kwargs):
    with pytest.raises(ValueError, match="the accuracy-aware search .* chooses width, "
                                         "channel_fraction, sparsity itself"):
        pipeline.optimize(float_model, digits_data, tmp_path / "run", max_accuracy_drop=1.0,
                          **kwargs)
    assert not os.path.exists(tmp_path / "run")
