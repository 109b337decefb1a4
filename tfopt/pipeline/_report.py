"""The pipeline's report on disk: report.json, report.md and PNG plots.

`write` takes the report input that `pipeline.optimize` builds (the run's command,
data, seed, versions and each stage's figures) and writes, each file
atomically (`tfopt._files.atomic_path`, as tfopt-monitor's report does):

- ``report.json``: the input as given;
- ``report.md``: how to repeat the run, one table row per stage with its size
  and latency against the float stage, the accuracy-aware candidates, the
  reference points and the plots;
- ``accuracy_vs_size.png`` and ``accuracy_vs_latency.png``: every stage,
  candidate and reference point, with the Pareto front drawn;
- ``sparsity.png``: per-layer sparsity of the last stage;
- ``channels.png``: per-layer channels of the float stage against the last.

A plot without data (a stage without weighted layers) is skipped, and a copy
left by an earlier report in the same directory is removed with it, so the
directory never shows a plot of another run.
"""

import json
import os

from tfopt import _files
from tfopt.pipeline import _report_checks
from tfopt.pipeline import _report_plots
from tfopt.pipeline._report_plots import pareto_front  # the front the plots draw

REPORT_JSON = "report.json"
REPORT_MD = "report.md"

# (header, figure key, format) of the stage table, in the order.
_STAGE_COLUMNS = (
    ("parameters", "parameters", "{:,}"),
    ("MFLOPs", "mflops", "{:.2f}"),
    (".keras bytes", "keras_bytes", "{:,}"),
    (".keras gzip", "keras_gzip_bytes", "{:,}"),
    ("TFLite bytes", "tflite_bytes", "{:,}"),
    ("TFLite gzip", "tflite_gzip_bytes", "{:,}"),
    ("Keras acc", "keras_accuracy", "{:.2%}"),
    ("TFLite acc", "tflite_accuracy", "{:.2%}"),
    ("agreement", "agreement", "{:.2%}"),
    ("latency ms", "latency_ms", "{:.3f}"),
    ("wall s", "wall_seconds", "{:.1f}"),
)


def write(report, output_dir):
    """Writes the pipeline's report and plots into `output_dir`.

    Args:
      report: the report input `pipeline.optimize` builds: ``command``, ``data``,
        ``seed``, ``versions``, ``recipe``, ``stages`` (figures, ``00-float``
        first), ``candidates`` and ``reference_points``.
      output_dir: the run directory, created if missing.

    Returns:
      The names of the files written, relative to `output_dir`, sorted.

    Raises:
      ValueError: if a key is missing, a stage lacks a figure or a number is
        not finite; nothing is written then.

    Example:
      >>> write(report, "runs/digits")
      ['accuracy_vs_latency.png', 'accuracy_vs_size.png', 'channels.png', ...]
    """
    _report_checks.validate_report(report)
    os.makedirs(output_dir, exist_ok=True)
    plots = _report_plots.draw(report, output_dir)
    for name in set(_report_plots.PLOTS) - set(plots):
        _remove_stale(os.path.join(output_dir, name))
    _files.write_text(os.path.join(output_dir, REPORT_JSON),
                json.dumps(report, indent=2, sort_keys=True, allow_nan=False) + "\n")
    _files.write_text(os.path.join(output_dir, REPORT_MD), markdown(report, plots))
    return sorted([REPORT_JSON, REPORT_MD] + plots)


def markdown(report, plots=()):
    """The report as Markdown: the run, the stage table, candidates, references, plots."""
    stages = report["stages"]
    reference = stages[0]
    last = stages[-1]
    lines = [f"# tfopt-optimize report: {report['data']}, recipe "
             f"{' -> '.join(report['recipe']) or '(none)'}", "",
             f"The last stage, `{last['stage']}`, is {_size_ratio(last, reference)} (gzipped "
             f"TFLite) and {_latency_ratio(last, reference)} than the float stage, at "
             f"{last['tflite_accuracy']:.2%} TFLite accuracy against "
             f"{reference['tflite_accuracy']:.2%}.", "",
             "## Repeat this run", "", "```", report["command"], "```", "",
             f"- data: {report['data']}", f"- seed: {report['seed']}",
             "- versions: " + (", ".join(f"{package} {version}" for package, version
                                         in sorted(report["versions"].items())) or "not given"),
             "", "## Stages", "",
             "Sizes in bytes; accuracy and agreement (the share of test examples where the "
             "stage's TFLite file predicts the float model's Keras class) on the test split; "
             "latency single-thread LiteRT, batch 1, median. Ratios against the float stage.",
             ""]
    lines += stage_table(report).splitlines()
    points = _report_plots.points(report)
    lines += ["", "- On the Pareto front (no other point both smaller and more accurate): " +
              ", ".join(f"`{label}`" for _, _, label in
                        pareto_front([(size, acc, label) for size, _, acc, label, _ in points]))
              + ".",
              "- On the latency front (no other point both faster and more accurate): " +
              ", ".join(f"`{label}`" for _, _, label in
                        pareto_front([(latency, acc, label)
                                      for _, latency, acc, label, _ in points])) + ".", ""]
    if report.get("search"):
        lines += _search_lines(report["search"])
    if report["candidates"]:
        lines += ["## Accuracy-aware candidates", "",
                  "Each candidate the search tried, in order: its last stage, measured like the "
                  "stages but on the held-out validation split"
                  + (" (which is all the search sees)." if report.get("search") else "."), ""]
        lines += _table(["candidate", "parameters tried", "TFLite gzip", "TFLite acc",
                         "latency ms"],
                        [[f"`{label}`", _parameters_tried(candidate["parameters_tried"]),
                          _size_cell(candidate, reference), f"{candidate['tflite_accuracy']:.2%}",
                          _latency_cell(candidate, reference)]
                         for label, candidate in zip(_report_plots.candidate_labels(report),
                                                     report["candidates"])])
        lines.append("")
    if report["reference_points"]:
        lines += ["## Reference points", ""]
        lines += _table(["reference", "TFLite gzip", "TFLite acc", "latency ms"],
                        [[f"`{label}`", _size_cell(point, reference),
                          f"{point['tflite_accuracy']:.2%}", _latency_cell(point, reference)]
                         for label, point in sorted(report["reference_points"].items())])
        lines.append("")
    if plots:
        lines += ["## Plots", ""] + [f"![{plot}]({plot})" for plot in plots] + [""]
    return "\n".join(lines)


def _search_lines(search):
    goals = ", ".join(f"{name}={value:g}" for name, value in sorted(search["goals"].items())
                      if value is not None)
    chosen = _parameters_tried(search["chosen"])
    outcome = (f"It met every goal with {chosen}; the stages above are that candidate, measured "
               "on the test split." if not search["missed"] else
               f"**No candidate met {', '.join(search['missed'])}.** The stages above are the "
               f"best candidate found ({chosen}), measured on the test split.")
    return ["## Accuracy-aware search", "",
            f"Goals: {goals}. The search tried {search['candidates_tried']} of "
            f"{len(search['ladder'])} settings, judging each on "
            f"{search['validation_examples']} validation examples ({search['validation']}; the "
            f"float model's TFLite accuracy there: {search['float_validation_accuracy']:.2%}), "
            f"never on the test split. {outcome}", ""]


def stage_table(report):
    """The stage table of report.md, one row per stage, e.g. for a command to print.

    Args:
      report: the report input, as `write` takes it (checked there, not here).

    Returns:
      The Markdown table as one string, without a final newline.
    """
    reference = report["stages"][0]
    return "\n".join(_table(["stage"] + [header for header, _, _ in _STAGE_COLUMNS],
                            [[f"`{stage['stage']}`"] + _stage_cells(stage, reference)
                             for stage in report["stages"]]))


def _stage_cells(stage, reference):
    cells = [template.format(stage[key]) for _, key, template in _STAGE_COLUMNS]
    if stage is not reference:
        names = [key for _, key, _ in _STAGE_COLUMNS]
        cells[names.index("tflite_gzip_bytes")] = _size_cell(stage, reference)
        cells[names.index("latency_ms")] = _latency_cell(stage, reference)
    return cells


def _size_cell(figures, reference):
    return f"{figures['tflite_gzip_bytes']:,} ({_size_ratio(figures, reference)})"


def _latency_cell(figures, reference):
    return f"{figures['latency_ms']:.3f} ({_latency_ratio(figures, reference)})"


def _size_ratio(figures, reference):
    return _ratio(reference["tflite_gzip_bytes"], figures["tflite_gzip_bytes"],
                  "smaller", "larger")


def _latency_ratio(figures, reference):
    return _ratio(reference["latency_ms"], figures["latency_ms"], "faster", "slower")


def _ratio(reference, value, better, worse):
    """'x31.2 smaller' when `value` is below `reference`, 'x1.3 larger' above it."""
    if value <= reference:
        return f"x{reference / value:.1f} {better}"
    return f"x{value / reference:.1f} {worse}"


def _parameters_tried(parameters):
    return ", ".join(f"{name}={value}" for name, value in sorted(parameters.items())) or "-"


def _table(headers, rows):
    return (["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
            + ["| " + " | ".join(row) + " |" for row in rows])


def _remove_stale(path):
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
