"""The monitoring report on disk: report.json, report.md and PNG plots.

Each file is written atomically (`tfopt._files.atomic_path`), so a cron job
or a dashboard reading the directory sees the previous report or the new
one, never half of one. Plots (matplotlib, Agg backend, no display needed):

- ``<input>_drift.png``: PSI of the input's summary features and top elements,
  with the threshold drawn in;
- ``<input>_mean.png``: the per-example mean of the input, reference against logs;
- ``<output>_classes.png``: class shares, reference against logs.
"""

import json
import os
import re

import numpy as np

from tfopt import _files

REPORT_JSON = "report.json"
REPORT_MD = "report.md"


def write(report, samples, output_dir):
    """Writes the report and its plots into `output_dir`; returns the file names written.

    Args:
      report: the dict `_monitor.measure` returns.
      samples: ``{input: (reference means, logged means)}`` from `_monitor.measure`.
      output_dir: the directory to write to, created if missing.

    Returns:
      The names of the files written, relative to `output_dir`, sorted.
    """
    os.makedirs(output_dir, exist_ok=True)
    plots = _plots(report, samples, output_dir)
    _files.write_text(os.path.join(output_dir, REPORT_JSON),
                json.dumps({**report, "plots": plots}, indent=2, sort_keys=True) + "\n")
    _files.write_text(os.path.join(output_dir, REPORT_MD), markdown(report, plots))
    return sorted([REPORT_JSON, REPORT_MD] + plots)


def markdown(report, plots=()):
    """The report as Markdown: verdict, logs, input drift, prediction drift, warnings."""
    psi_t, ks_t = report["thresholds"]["psi"], report["thresholds"]["ks"]
    logs = report["logs"]
    lines = [f"# Drift report: model {report['model_name']!r}", "",
             f"**{'DRIFT' if report['drift'] else 'No drift'}** (thresholds: PSI > {psi_t}, "
             f"KS > {ks_t}; PSI below 0.1 is stable, 0.1-0.25 a moderate shift, above 0.25 a "
             "significant one).", "",
             "## Logs", "",
             f"- {len(logs['files'])} file(s), {logs['records']} predict records "
             f"({logs['responses']} with responses), rows per input: {logs['rows']}",
             f"- versions: {logs['versions'] or 'not logged'}; signatures: "
             f"{logs['signatures']}; other records skipped: {logs['skipped_records'] or 'none'}",
             f"- latency: {report['latency']['reason']}", "", "## Input drift", ""]
    for name, drift in report["inputs"].items():
        lines += [f"### `{name}`: {'drifted' if drift['drifted'] else 'stable'}", "",
                  f"{drift['rows']} logged rows against {drift['reference_rows']} reference "
                  f"rows; {drift['elements']} elements per example, the "
                  f"{len(drift['top_elements'])} with the highest PSI listed after the "
                  "per-example summaries.", "",
                  "| feature | PSI | KS | drifted |", "|---|---|---|---|"]
        for feature in drift["summary"] + drift["top_elements"]:
            lines.append(f"| {feature['name']} | {feature['psi']:.4f} | {feature['ks']:.4f} | "
                         f"{'yes' if feature['drifted'] else ''} |")
        lines.append("")
    lines += ["## Prediction drift", ""]
    if not report["predictions"]:
        lines += ["Not measured (see warnings).", ""]
    for name, drift in report["predictions"].items():
        lines += [f"### `{name}`: PSI {drift['psi']:.4f}, "
                  f"{'drifted' if drift['drifted'] else 'stable'}", "",
                  "| class | reference share | logged share |", "|---|---|---|"]
        lines += [f"| {i} | {r:.3f} | {c:.3f} |" for i, (r, c) in
                  enumerate(zip(drift["reference_shares"], drift["logged_shares"]))]
        lines.append("")
    if report["warnings"]:
        lines += ["## Warnings", ""] + [f"- {warning}" for warning in report["warnings"]] + [""]
    if plots:
        lines += ["## Plots", ""] + [f"![{plot}]({plot})" for plot in plots] + [""]
    return "\n".join(lines)


def _plots(report, samples, output_dir):
    import matplotlib  # pylint: disable=import-outside-toplevel  (only when plots are drawn)
    matplotlib.use("Agg")
    from matplotlib import pyplot  # pylint: disable=import-outside-toplevel

    written = []

    def save(figure, name):
        with _files.atomic_path(os.path.join(output_dir, name)) as temporary:
            figure.savefig(temporary, format="png", dpi=80)
        pyplot.close(figure)
        written.append(name)

    psi_threshold = report["thresholds"]["psi"]
    for name, drift in report["inputs"].items():
        features = drift["summary"] + drift["top_elements"]
        figure, axes = pyplot.subplots(figsize=(8, 3.5))
        axes.bar([f["name"] for f in features], [f["psi"] for f in features],
                 color=["tab:red" if f["drifted"] else "tab:blue" for f in features])
        axes.axhline(psi_threshold, color="black", linestyle="--", label="threshold")
        axes.set_ylabel("PSI")
        axes.set_title(f"{name}: summary features and top elements")
        axes.tick_params(axis="x", labelrotation=60)
        axes.legend()
        figure.tight_layout()
        save(figure, f"{_file_name(name)}_drift.png")
        reference, logged = samples[name]
        figure, axes = pyplot.subplots(figsize=(6, 3.5))
        bins = np.histogram_bin_edges(np.concatenate([reference, logged]), bins=30)
        axes.hist(reference, bins=bins, density=True, alpha=0.5, label="reference")
        axes.hist(logged, bins=bins, density=True, alpha=0.5, label="logs")
        axes.set_xlabel("mean per example")
        axes.set_title(name)
        axes.legend()
        figure.tight_layout()
        save(figure, f"{_file_name(name)}_mean.png")
    for name, drift in report["predictions"].items():
        figure, axes = pyplot.subplots(figsize=(6, 3.5))
        classes = np.arange(len(drift["reference_shares"]))
        axes.bar(classes - 0.2, drift["reference_shares"], width=0.4, label="reference")
        axes.bar(classes + 0.2, drift["logged_shares"], width=0.4, label="logs")
        axes.set_xlabel("class")
        axes.set_ylabel("share")
        axes.set_title(f"{name}: PSI {drift['psi']:.3f}")
        axes.legend()
        figure.tight_layout()
        save(figure, f"{_file_name(name)}_classes.png")
    return written


def _file_name(tensor_name):
    """A tensor name made safe as a file name (TF names may hold '/' and ':')."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", tensor_name) or "tensor"
