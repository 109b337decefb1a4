"""Tests of monitoring digits request logs: drift injected on purpose is found, none is not."""

import numpy as np
import pytest

from tests.serving.conftest import INPUT
from tests.serving.conftest import OUTPUT
from tfopt.serving import _monitor
from tfopt.serving import _request_logs


def _measure(digits_logs, kind, **kwargs):
    log = _request_logs.read(digits_logs[kind])
    reference, classes, source = _monitor.load_reference(digits_logs["reference"], log.inputs)
    assert source == "y_train"
    return _monitor.measure(log, reference, classes, **kwargs)


@pytest.mark.parametrize("kind, inputs_drift, predictions_drift", [
    ("none", False, False),
    ("resampled", False, False),
    ("brighter", True, False),
    ("inverted", True, False),
    # Half the classes gone moves single pixels by PSI ~0.2, under the 0.25 threshold: the
    # class shares are what shows it.
    ("classes_0_to_4", False, True),
])
def test_injected_drift_is_flagged_and_none_is_not(digits_logs, kind, inputs_drift,
                                                   predictions_drift):
    report, samples = _measure(digits_logs, kind)
    assert report["inputs"][INPUT]["drifted"] is inputs_drift
    assert report["predictions"][OUTPUT]["drifted"] is predictions_drift
    assert report["drift"] is (inputs_drift or predictions_drift)
    reference_means, logged_means = samples[INPUT]
    assert len(reference_means) == 1437 and len(logged_means) == report["logs"]["rows"][INPUT]


def test_a_brightness_shift_shows_in_the_mean_summary(digits_logs):
    report, _ = _measure(digits_logs, "brighter")
    summary = {f["name"]: f for f in report["inputs"][INPUT]["summary"]}
    assert summary["mean"]["drifted"] and summary["mean"]["ks"] > 0.5
    shares = report["predictions"][OUTPUT]
    assert shares["reference_shares"][0] == pytest.approx(np.mean(
        np.load(digits_logs["reference"])["y_train"] == 0))


def test_classes_without_traffic_make_prediction_drift(digits_logs):
    report, _ = _measure(digits_logs, "classes_0_to_4")
    logged = report["predictions"][OUTPUT]["logged_shares"]
    assert sum(logged[5:]) == 0 and report["predictions"][OUTPUT]["psi"] > 1


def test_a_large_reference_is_subsampled_with_a_fixed_seed(digits_logs, monkeypatch):
    monkeypatch.setattr(_monitor, "MAX_REFERENCE_ROWS", 500)
    first, _ = _measure(digits_logs, "brighter")
    second, _ = _measure(digits_logs, "brighter")
    drift = first["inputs"][INPUT]
    assert (drift["reference_rows"], drift["reference_rows_given"]) == (500, 1437)
    assert drift == second["inputs"][INPUT] and drift["drifted"]


def test_latency_is_reported_as_not_in_the_logs(digits_logs):
    report, _ = _measure(digits_logs, "none")
    assert report["latency"] == {"available": False, "reason": _monitor.NO_LATENCY}
    assert report["warnings"] == []


def test_reference_arrays_named_after_inputs_and_stored_predictions(digits_logs, tmp_path):
    log = _request_logs.read(digits_logs["classes_0_to_4"])
    x = np.load(digits_logs["reference"])["x_train"]
    path = str(tmp_path / "named.npz")
    np.savez(path, **{INPUT: x, "predictions": np.eye(10)[np.arange(len(x)) % 5]})
    reference, classes, source = _monitor.load_reference(path, log.inputs)
    assert source == "predictions" and set(classes) == set(range(5))
    report, _ = _monitor.measure(log, reference, classes)
    assert report["predictions"][OUTPUT]["drifted"] is False  # both use classes 0..4 only


def test_what_cannot_be_measured_is_a_warning(digits_logs, tmp_path):
    path = str(tmp_path / "x_only.npz")
    np.savez(path, x_train=np.load(digits_logs["reference"])["x_train"])
    log = _request_logs.read(digits_logs["none"])
    log.inputs = {INPUT: log.inputs[INPUT][:50]}
    reference, classes, _ = _monitor.load_reference(path, log.inputs)
    report, _ = _monitor.measure(log, reference, classes)
    assert report["predictions"] == {}
    assert any("no predictions or y_train" in w for w in report["warnings"])
    assert any("Only 50 logged rows" in w for w in report["warnings"])


def test_logged_rows_with_nan_are_left_out_and_text_inputs_skipped(digits_logs):
    log = _request_logs.read(digits_logs["none"])
    reference, classes, _ = _monitor.load_reference(digits_logs["reference"], log.inputs)
    log.inputs[INPUT][[3, 7], 0, 0, 0] = [np.nan, np.inf]
    log.inputs["text"] = np.array([b"a", b"b"])
    report, samples = _monitor.measure(log, {**reference, "text": np.array([b"c"])}, classes)
    assert report["inputs"][INPUT]["rows"] == 358 and len(samples[INPUT][1]) == 358
    assert "text" not in report["inputs"] and report["drift"] is False
    assert any("2 of 360 logged rows of input 'input_1' hold NaN" in w for w in report["warnings"])
    assert any("Input 'text' holds |S1 values, not numbers" in w for w in report["warnings"])


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.full((3, 8, 8, 1), np.nan)}, "must be finite numbers, at least one row; they "
                                                 "are 3 rows of dtype float64 with NaN"),
    ({"x_train": np.zeros((0, 8, 8, 1))}, "they are 0 rows"),
    ({"x_train": np.zeros((3, 8, 8, 1)), "y_train": np.array([])}, "classes .* are empty"),
    ({"images": np.zeros((3, 8, 8, 1))}, r"holds \['images'\]; the logged requests have the "
                                        r"inputs \['input_1'\]"),
    ({"x_train": np.zeros((3, 28, 28, 1))}, r"shape \(28, 28, 1\), the logged ones \(8, 8, 1\)"),
    ({"x_train": np.zeros((3, 8, 8, 1)), "y_train": np.array([0.5, 1, 2])},
     "integer class labels"),
    ({"x_train": np.zeros((3, 8, 8, 1)), "y_train": np.array([0, 1, 12])},
     "classes go up to 12, but output 'output_0' has 10"),
])
def test_a_reference_that_does_not_fit_raises(digits_logs, tmp_path, arrays, message):
    path = str(tmp_path / "reference.npz")
    np.savez(path, **arrays)
    log = _request_logs.read(digits_logs["none"])
    with pytest.raises(ValueError, match=message):
        _monitor.measure(log, *_monitor.load_reference(path, log.inputs)[:2])


@pytest.mark.parametrize("make, message", [
    (lambda p: None, "does not exist"),
    (lambda p: open(p, "w").write("x_train,1\n"), "is not an .npz file"),
])
def test_a_reference_that_is_not_an_npz_file_raises(tmp_path, make, message):
    path = str(tmp_path / "reference.npz")
    make(path)
    with pytest.raises(ValueError, match=message):
        _monitor.load_reference(path, [INPUT])
