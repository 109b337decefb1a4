"""The tables of benchmarks/coverage.py: one overview, figures per feature, failure reasons."""

import contextlib
import io

from benchmarks import _common

_SHORT = {"ok": "ok", "failed": "FAIL", "timeout": "timeout", "crashed": "crash", "n/a": "n/a"}
_OTHER = {"prune": "tfmot", "channels": "tfmot", "qat": "tfmot",
          "ptq": "plain converter", "distill": "tfmot", "flops": "TF profiler"}


def _status(cell):
    return _SHORT.get(cell.get("status"), "-") if cell else "-"


def _figure(cell, key, style="{:,}"):
    value = (cell or {}).get("figures") or {}
    return style.format(value[key]) if key in value else "-"


def _overview(r):
    features = list(r["features"])
    lines = ["| architecture | " + " | ".join(r["features"][f] for f in features) + " |",
             "|---" * (len(features) + 1) + "|"]
    for name, row in r["cells"].items():
        lines.append(f"| {name} | " + " | ".join(
            f"{_status(row[f].get('tfopt'))} / {_status(row[f].get('tfmot'))}"
            for f in features) + " |")
    totals = []
    for f in features:
        counts, size = [], len(r["cells"])
        for library in ("tfopt", "tfmot"):
            statuses = [row[f].get(library, {}).get("status") for row in r["cells"].values()]
            counts.append("n/a" if all(s == "n/a" for s in statuses) else
                          "-" if all(s is None for s in statuses) else str(statuses.count("ok")))
        totals.append(f"{' / '.join(counts)} of {size}")
    lines.append("| **works on** | " + " | ".join(totals) + " |")
    return lines


def _identical(row):
    ours, theirs = (row.get(library, {}).get("figures") or {} for library in ("tfopt", "tfmot"))
    if "sha256" not in ours or "sha256" not in theirs:
        return "-"
    if ours["sha256"] == theirs["sha256"]:
        return "yes"
    return "same ops" if ours["ops_sha256"] == theirs["ops_sha256"] else "no"


_PERCENT, _RATIO, _INT = "{:.1%}", "{:.3f}", "{:,}"
# feature -> columns: (header, library, figure, format), or (header, function of the row).
_COLUMNS = {
    "prune": [("tfopt share of weights pruned", "tfopt", "share_of_weights_pruned", _PERCENT),
              ("tfopt sparsity", "tfopt", "sparsity_of_pruned_kernels", _PERCENT),
              ("tfmot share", "tfmot", "share_of_weights_pruned", _PERCENT),
              ("tfmot sparsity", "tfmot", "sparsity_of_pruned_kernels", _PERCENT)],
    "channels": [("params before", "tfopt", "params_before", _INT),
                 ("params after shrink", "tfopt", "params_after", _INT),
                 ("after/before", "tfopt", "params_ratio", _RATIO),
                 ("max abs diff vs strip", "tfopt", "max_abs_diff_vs_strip", "{:.2g}")],
    "qat": [("tfopt bytes", "tfopt", "bytes", _INT), ("tfmot bytes", "tfmot", "bytes", _INT),
            ("files identical", _identical)],
    "ptq": [("tfopt bytes", "tfopt", "bytes", _INT), ("plain bytes", "tfmot", "bytes", _INT),
            ("files identical", _identical)],
    "distill": [("teacher params", "tfopt", "teacher_params", _INT),
                ("student params", "tfopt", "student_params", _INT),
                ("student/teacher", "tfopt", "params_ratio", _RATIO)],
    "flops": [("tfopt count_flops", "tfopt", "flops", _INT),
              ("TF profiler", "tfmot", "flops", _INT),
              ("tfopt/profiler", lambda row: _flops_ratio(row)),
              ("layers with weights counted 0", lambda row: _zero_layers(row))],
}


def _column(row, column):
    if len(column) == 2:
        return column[1](row)
    _, library, key, style = column
    return _figure(row.get(library), key, style)


def _figures(r):
    lines = []
    for feature in r["features"]:
        columns = _COLUMNS[feature]
        lines += ["", f"### {r['features'][feature]}", "",
                  "| architecture | " + " | ".join(c[0] for c in columns) + " |",
                  "|---" * (len(columns) + 1) + "|"]
        lines += [f"| {name} | " + " | ".join(_column(row[feature], c) for c in columns) + " |"
                  for name, row in r["cells"].items()]
    return lines


def _flops_ratio(row):
    ours, theirs = ((row.get(library, {}).get("figures") or {}) for library in ("tfopt", "tfmot"))
    return (f"{ours['flops'] / theirs['flops']:.3f}" if ours.get("flops") and theirs.get("flops")
            else "-")


def _zero_layers(row):
    zero = (row.get("tfopt", {}).get("figures") or {}).get("layers_counted_0")
    return "-" if zero is None else (", ".join(zero) if zero else "none")


def _failures(r):
    lines = []
    for library in ("tfopt", "tfmot"):
        entries = []
        for name, row in r["cells"].items():
            for feature, cell in row.items():
                outcome = cell.get(library) or {}
                if outcome.get("status") in ("failed", "timeout", "crashed"):
                    where = f" ({outcome['where']})" if outcome.get("where") else ""
                    entries.append(f"- {name}, {r['features'][feature]}: "
                                   f"`{outcome['reason']}`{where}")
        label = "tfopt" if library == "tfopt" else "tfmot / plain converter / TF profiler"
        lines += ["", f"### {label}", ""] + (entries or ["none"])
    return lines


def markdown(r):
    env, flags = r["environment"], r["flags"]
    v = env["versions"]
    lines = [
        "# Coverage: real architectures, tfopt and tfmot side by side", "",
        f"{env['date']}; TF {v['tensorflow']}, tf_keras {v['tf_keras']}, tfmot {v['tfmot']}, "
        f"tfopt {v['tfopt']} (commit {r.get('tfopt_commit', 'unknown')}), "
        f"ai-edge-litert {v['ai_edge_litert']}; {env['platform']}, "
        f"{env['cpus_usable']} CPUs. Untrained models from benchmarks/architectures.py; "
        f"{flags['steps']} training steps of {flags['batch_size']} synthetic examples "
        f"({'eager' if flags['run_eagerly'] else 'graph'}), {flags['representative_examples']} "
        f"calibration examples, at most {flags['timeout']} s per cell. "
        f"Wall time {env['wall_seconds'] / 60:.0f} min.", "",
        "Each cell reads tfopt / other. The other side is tfmot for pruning and QAT, the plain "
        "TFLiteConverter int8 recipe (Optimize.DEFAULT, TFLITE_BUILTINS_INT8, int8 input and "
        "output, representative dataset) for post-training int8, and the TF profiler's count "
        "of the inference graph for FLOPs. n/a: tfmot has no such feature. "
        "\"ok\" means: pruning reached ~50% sparsity in the pruned kernels and the stripped "
        "model predicts; shrink's outputs equal strip's (max abs diff <= 1e-4); the TFLite file "
        "loads, runs, has int8 output and no op reads or writes a float tensor (integer token "
        "inputs stay integer; a quantized LSTM's float intermediates only carry scales); "
        "the Distiller trained with a "
        "finite loss on a student with the teacher's output shape; FLOPs were counted.", ""]
    lines += _overview(r)
    lines += ["", "## Figures"] + _figures(r)
    lines += ["", "Files identical: \"yes\" for byte-identical files, \"same ops\" for files "
              "with the same operators in the same order but other bytes. QAT files differ "
              "because tfopt's `quantize` sets the activation ranges from the representative "
              "data before training and tfmot starts from its defaults; post-training files "
              "differ slightly because tfopt calibrates in batches of up to 32 examples and the "
              "plain recipe one example at a time (the recipe fed the same 8 examples as one "
              "batch gives a byte-identical file)."]
    lines += ["", "The TF profiler counts only the ops it has FLOPs statistics for and does not "
              "look inside loops: it misses the einsums of MultiHeadAttention and the LSTM's "
              "time steps, so it is no reference for those two models."]
    lines += ["", "## Failure reasons",
              "", "Exception and the first line or two of its message (the messages of its causes "
              "are in coverage.json, `detail`); in parentheses the innermost "
              "frame in tfopt (else tfmot, tf_keras or TensorFlow)."] + _failures(r)
    lines += ["", "Reproduce: `make benchmark-coverage` or `python -m benchmarks.coverage` "
              "(a subset: `--architectures=ResNet50,TextLSTM --features=qat,ptq`, which writes "
              "coverage_partial.*)."]
    return "\n".join(lines) + "\n"


def write(output_dir, stem, results, quiet=False):
    """Writes <stem>.{json,md}; prints the table unless `quiet` (progress updates)."""
    with contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        _common.write_results(output_dir, stem, results, markdown(results))
