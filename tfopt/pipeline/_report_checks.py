"""Checks of the report input before anything is written.

The report divides by the float stage's size and latency, draws sizes on a
log axis and writes strict JSON, so a missing figure, a zero size or a NaN
would otherwise surface as a ZeroDivisionError, a blank plot or a report.json
no JSON reader accepts. Each check names the key and the stage (or candidate,
or reference point) it concerns.
"""

import math

_TOP_LEVEL = (("command", str), ("data", str), ("seed", int), ("versions", dict),
              ("recipe", list), ("stages", list), ("candidates", list),
              ("reference_points", dict))

# Figure -> (type, lowest value, whether the lowest value itself is allowed).
_SHARE = (float, 0.0, True)
_FIGURES = {
    "parameters": (int, 0, True),
    "mflops": (float, 0.0, True),
    "keras_bytes": (int, 0, False),
    "keras_gzip_bytes": (int, 0, False),
    "tflite_bytes": (int, 0, False),
    "tflite_gzip_bytes": (int, 0, False),  # ratios divide by it, the size axis is logarithmic
    "keras_accuracy": _SHARE,
    "tflite_accuracy": _SHARE,
    "agreement": _SHARE,
    "latency_ms": (float, 0.0, False),  # as tflite_gzip_bytes
    "wall_seconds": (float, 0.0, True),
    "epochs": (int, 0, True),
}
_SHARES = ("keras_accuracy", "tflite_accuracy", "agreement")
_PLOTTED = ("tflite_gzip_bytes", "latency_ms", "tflite_accuracy")
_CONTRACT = "tfopt/pipeline/_figures.py writes every figure a stage needs (figures.json)."


def validate_report(report):
    """Raises ValueError naming the key (and stage) of the first bad entry of `report`."""
    if not isinstance(report, dict):
        raise ValueError(f"The report must be a dict (what pipeline.optimize builds); got "
                         f"{type(report).__name__}.")
    for key, kind in _TOP_LEVEL:
        if key not in report:
            raise ValueError(f"The report has no {key!r}; it needs "
                             f"{', '.join(name for name, _ in _TOP_LEVEL)}.")
        if not _is(report[key], kind):
            raise ValueError(f"The report's {key!r} must be a {kind.__name__}; got "
                             f"{report[key]!r}.")
    if not all(isinstance(name, str) for name in report["recipe"]):
        raise ValueError(f"The report's 'recipe' must list stage names; got {report['recipe']!r}.")
    if not report["stages"]:
        raise ValueError("The report's 'stages' is empty; it needs at least the float stage "
                         "('00-float'), whose figures the others are compared with.")
    for index, stage in enumerate(report["stages"]):
        where = f"stage {_label(stage, index)} (stages[{index}])"
        _validate_figures(stage, where, list(_FIGURES) + ["stage", "name", "layers"])
        _validate_layers(stage["layers"], where)
    if report["stages"][0]["name"] != "float":
        raise ValueError(f"The report's first stage must be the float stage ('00-float'): "
                         f"sizes and latency are compared with it; got "
                         f"{report['stages'][0]['stage']!r}.")
    for index, candidate in enumerate(report["candidates"]):
        where = f"candidate {index + 1} (candidates[{index}])"
        _validate_figures(candidate, where, list(_PLOTTED) + ["parameters_tried"])
        if not isinstance(candidate["parameters_tried"], dict):
            raise ValueError(f"The report's {where}: 'parameters_tried' must be a dict "
                             f"{{name: value}}; got {candidate['parameters_tried']!r}.")
    for label, point in report["reference_points"].items():
        _validate_figures(point, f"reference point {label!r}", _PLOTTED)
    _validate_finite(report, "report")


def _validate_figures(figures, where, required):
    if not isinstance(figures, dict) or not figures:
        raise ValueError(f"The report's {where} has no figures (got {figures!r}); it needs "
                         f"{', '.join(required)}. {_CONTRACT}")
    for key in required:
        if key not in figures:
            raise ValueError(f"The report's {where} has no {key!r}. {_CONTRACT}")
    for key in ("stage", "name"):
        if key in figures and not isinstance(figures[key], str):
            raise ValueError(f"The report's {where}: {key!r} must be a str; got "
                             f"{figures[key]!r}.")
    for key, (kind, lowest, lowest_allowed) in _FIGURES.items():
        if key not in figures:
            continue
        value = figures[key]
        if not _is(value, kind):
            raise ValueError(f"The report's {where}: {key!r} must be a number "
                             f"({kind.__name__}); got {value!r} ({type(value).__name__}).")
        if not math.isfinite(value):
            raise ValueError(f"The report's {where}: {key!r} is {value!r}; figures must be "
                             f"finite. Measure the stage again.")
        if value < lowest or (value == lowest and not lowest_allowed):
            raise ValueError(f"The report's {where}: {key!r} is {value!r}; it must be "
                             f"{'at least' if lowest_allowed else 'above'} {lowest}.")
        if key in _SHARES and value > 1:
            raise ValueError(f"The report's {where}: {key!r} is {value!r}; it is a share "
                             "between 0 and 1, not a percentage.")


def _validate_layers(layers, where):
    if not isinstance(layers, list):
        raise ValueError(f"The report's {where}: 'layers' must be a list; got {layers!r}.")
    for index, layer in enumerate(layers):
        at = f"{where}, layers[{index}]"
        if not isinstance(layer, dict):
            raise ValueError(f"The report's {at} must be a dict; got {layer!r}.")
        for key in ("name", "type", "channels", "sparsity"):
            if key not in layer:
                raise ValueError(f"The report's {at} has no {key!r}. {_CONTRACT}")
        if not isinstance(layer["name"], str):
            raise ValueError(f"The report's {at}: 'name' must be a str; got {layer['name']!r}.")
        channels = layer["channels"]
        if channels is not None and (not _is(channels, int) or channels < 0):
            raise ValueError(f"The report's {at}: 'channels' must be a count or None; got "
                             f"{channels!r}.")
        sparsity = layer["sparsity"]
        if not _is(sparsity, float) or not 0 <= sparsity <= 1:
            raise ValueError(f"The report's {at}: 'sparsity' must be a share between 0 and 1; "
                             f"got {sparsity!r}.")


def _validate_finite(value, where):
    """report.json is strict JSON: no NaN or infinity anywhere, extra keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            _validate_finite(item, f"{where}[{key!r}]")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            _validate_finite(item, f"{where}[{index}]")
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value!r}; the report holds finite numbers only.")


def _is(value, kind):
    """isinstance, with bools refused as numbers and ints accepted where floats are."""
    if kind in (int, float) and isinstance(value, bool):
        return False
    if kind is float:
        return isinstance(value, (int, float))  # numpy's float32 is not JSON: refused
    return isinstance(value, kind)


def _label(stage, index):
    if isinstance(stage, dict) and isinstance(stage.get("stage"), str):
        return repr(stage["stage"])
    return f"#{index}"
