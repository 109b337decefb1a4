"""Monitoring a served model: request logs against a reference sample, as one report.

`tfopt-monitor` runs `load_reference`, then `measure`, then
`_monitor_report.write`. The report is a plain dict (it becomes report.json):
input drift per input, prediction drift per classifier output, what the
logs held, and warnings about what could not be measured.
"""

import os
import zipfile

import numpy as np

from tfopt.serving import _drift

# Below this many logged rows, PSI and KS mostly measure sampling noise.
MIN_ROWS = 100
# A larger reference sample is subsampled (with a fixed seed): its own sampling noise is
# already far below the logs', and each feature's quantiles and KS sort cost grow with it
# (60,000 x 784 pixels, Fashion-MNIST's size, took 15 s in full and 6 s at 10,000 rows here).
MAX_REFERENCE_ROWS = 10_000
# The .npz keys the reference's inputs and classes may come under.
SINGLE_INPUT_KEY = "x_train"
PREDICTIONS_KEY = "predictions"
LABELS_KEY = "y_train"
# What TF Serving's PredictionLog records hold: a timestamp in seconds, no duration.
NO_LATENCY = ("PredictionLog records carry no request latency (log_metadata has a timestamp in "
              "seconds only); read latency percentiles from the server's Prometheus metrics.")


def load_reference(path, input_names):
    """The reference inputs ``{input name: array}`` and classes (or None) from an .npz file.

    The file holds arrays named after the model's inputs, or ``x_train`` for a
    model with one input (the files tfopt-prune reads). Reference classes come
    from ``predictions`` (the model's outputs on the reference, or their
    classes) when present, else from the labels ``y_train``.

    Raises:
      ValueError: the file is missing, not an .npz file, or lacks an input.
    """
    if not os.path.isfile(path):
        raise ValueError(f"{path!r} " + ("does not exist." if not os.path.exists(path)
                                         else "is a directory, not an .npz file."))
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path!r} is not an .npz file (the zip archive numpy.savez writes).")
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {key: data[key] for key in data.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise ValueError(f"{path!r} cannot be read as numeric arrays ({error}); write it again "
                         "with numpy.savez.") from error
    names = sorted(input_names)
    if set(names) <= set(arrays):
        inputs = {name: arrays[name] for name in names}
    elif len(names) == 1 and SINGLE_INPUT_KEY in arrays:
        inputs = {names[0]: arrays[SINGLE_INPUT_KEY]}
    else:
        raise ValueError(f"{path!r} holds {sorted(arrays)}; the logged requests have the inputs "
                         f"{names}. Save arrays named after them (or x_train for a model with "
                         "one input) with numpy.savez.")
    classes = arrays.get(PREDICTIONS_KEY, arrays.get(LABELS_KEY))
    source = next((key for key in (PREDICTIONS_KEY, LABELS_KEY) if key in arrays), None)
    return inputs, _as_classes(classes), source


def measure(log, reference, reference_classes=None, psi_threshold=_drift.PSI_SIGNIFICANT,
            ks_threshold=_drift.KS_DEFAULT, top_k=_drift.TOP_K):
    """Input and prediction drift of a `RequestLog` against reference data.

    Args:
      log: the `_request_logs.RequestLog`.
      reference: ``{input name: array}`` holding every logged input.
      reference_classes: integer classes of the reference examples, or None.
      psi_threshold: PSI above which a feature drifts. Defaults to 0.25.
      ks_threshold: KS distance above which a feature drifts. Defaults to 0.2.
      top_k: elements listed per input. Defaults to 10.

    Returns:
      ``(report, samples)``: the report dict, and for the plots
      ``{input: (reference means, logged means)}`` per example.
    """
    report = {"model_name": log.model_name, "drift": False,
              "thresholds": {"psi": psi_threshold, "ks": ks_threshold},
              "logs": _describe_log(log), "inputs": {}, "predictions": {},
              "latency": {"available": False, "reason": NO_LATENCY}, "warnings": []}
    samples = {}
    for name, current in sorted(log.inputs.items()):
        checked = _finite_rows(name, current, report["warnings"])
        if checked is None:
            continue
        ref = _validate_reference_input(name, reference[name], current)
        current = checked
        if len(ref) > MAX_REFERENCE_ROWS:
            rows = np.random.default_rng(0).choice(len(ref), MAX_REFERENCE_ROWS, replace=False)
            ref = ref[np.sort(rows)]
        summary, top, elements = _drift.input_drift(ref, current, psi_threshold, ks_threshold,
                                                    top_k)
        drifted = any(d.drifted for d in summary + top)
        report["inputs"][name] = {
            "drifted": drifted, "rows": len(current), "reference_rows": len(ref),
            "reference_rows_given": len(reference[name]),
            "elements": elements, "summary": [vars(d) for d in summary],
            "top_elements": [vars(d) for d in top]}
        samples[name] = (ref.reshape(len(ref), -1).mean(axis=1),
                         current.reshape(len(current), -1).mean(axis=1))
        report["drift"] |= drifted
        if len(current) < MIN_ROWS:
            report["warnings"].append(
                f"Only {len(current)} logged rows of input {name!r}: below {MIN_ROWS}, PSI and "
                "KS mostly measure sampling noise.")
    report["predictions"] = _prediction_drift(log, reference_classes, psi_threshold, report)
    return report, samples


def _validate_reference_input(name, ref, current):
    ref = np.asarray(ref)
    if ref.shape[1:] != current.shape[1:]:
        raise ValueError(f"The reference examples of input {name!r} have shape "
                         f"{ref.shape[1:]}, the logged ones {current.shape[1:]}; give "
                         "reference data shaped like the requests.")
    if ref.dtype.kind not in "biuf" or not np.all(np.isfinite(ref)) or not len(ref):
        raise ValueError(f"The reference examples of input {name!r} must be finite numbers, at "
                         f"least one row; they are {len(ref)} rows of dtype {ref.dtype}"
                         f"{'' if ref.dtype.kind not in 'biuf' else ' with NaN or infinity'}.")
    return ref


def _finite_rows(name, current, warnings):
    """The logged rows of numbers without NaN or infinity, or None when none are left.

    Served inputs may hold them (a client bug is worth knowing about), so they
    are counted in a warning rather than failing the whole report.
    """
    if current.dtype.kind not in "biuf":
        warnings.append(f"Input {name!r} holds {current.dtype} values, not numbers; its drift "
                        "is not measured.")
        return None
    finite = np.all(np.isfinite(current.reshape(len(current), -1)), axis=1)
    if not finite.all():
        warnings.append(f"{int((~finite).sum())} of {len(current)} logged rows of input "
                        f"{name!r} hold NaN or infinity; drift is measured without them.")
    return current[finite] if finite.any() else None


def _prediction_drift(log, reference_classes, psi_threshold, report):
    if not log.outputs:
        report["warnings"].append("The logs hold no responses, so prediction drift is not "
                                  "measured.")
        return {}
    if reference_classes is None:
        report["warnings"].append("The reference has no predictions or y_train labels, so "
                                  "prediction drift is not measured.")
        return {}
    drift = {}
    for name, output in sorted(log.outputs.items()):
        classes = _drift.predicted_classes(output)
        if classes is None:
            report["warnings"].append(f"Output {name!r} has shape {output.shape}, not (batch, "
                                      "classes); it has no class distribution to compare.")
            continue
        count = output.shape[1]
        if reference_classes.max() >= count:
            raise ValueError(f"The reference classes go up to {reference_classes.max()}, but "
                             f"output {name!r} has {count} classes; give the reference of "
                             "this model.")
        value = _drift.class_psi(reference_classes, classes, count)
        shares = [np.bincount(c, minlength=count)[:count] / len(c)
                  for c in (reference_classes, classes)]
        drift[name] = {"drifted": value > psi_threshold, "psi": value,
                       "reference_shares": shares[0].tolist(),
                       "logged_shares": shares[1].tolist()}
        report["drift"] |= value > psi_threshold
    return drift


def _describe_log(log):
    times = sorted(log.timestamps)
    return {"files": log.files, "records": log.records, "responses": log.responses,
            "rows": {name: len(x) for name, x in sorted(log.inputs.items())},
            "versions": log.versions, "signatures": log.signatures,
            "skipped_records": log.skipped,
            "first_timestamp": times[0] if times else None,
            "last_timestamp": times[-1] if times else None}


def _as_classes(values):
    """Integer classes from labels or from stored predictions (argmax of their rows)."""
    if values is None:
        return None
    values = np.asarray(values)
    if values.size == 0:
        raise ValueError("The reference's classes (predictions or y_train) are empty; give one "
                         "per reference example, or leave them out.")
    if values.ndim == 2 and values.shape[1] > 1:
        return np.argmax(values, axis=1)
    values = values.reshape(len(values))
    if values.dtype.kind not in "biuf" or not np.array_equal(values, np.round(values)) \
            or values.min() < 0:
        raise ValueError("The reference's classes (predictions or y_train) must be integer "
                         "class labels 0, 1, 2, ... or (batch, classes) model outputs.")
    return values.astype(np.int64)
