"""The report's PNG plots, drawn with matplotlib's Agg canvas.

Figures are built as `matplotlib.figure.Figure` objects on an Agg canvas, not
through pyplot: nothing touches pyplot's global figure list or backend, so the
report draws the same inside a notebook, a server or a thread, and no figure
has to be closed. matplotlib is imported only when plots are drawn.
"""

import os

from tfopt import _files

ACCURACY_VS_SIZE = "accuracy_vs_size.png"
ACCURACY_VS_LATENCY = "accuracy_vs_latency.png"
SPARSITY = "sparsity.png"
CHANNELS = "channels.png"
PLOTS = (ACCURACY_VS_SIZE, ACCURACY_VS_LATENCY, SPARSITY, CHANNELS)

# kind -> (marker, colour, legend entry)
_STYLES = {
    "float": ("*", "black", "float model"),
    "stage": ("o", "tab:blue", "stages"),
    "candidate": ("x", "tab:gray", "candidates"),
    "reference": ("D", "tab:red", "reference points"),
}


def points(report):
    """Every point of the trade-off plots: ``(gzip bytes, latency ms, accuracy, label, kind)``."""
    result = [(stage["tflite_gzip_bytes"], stage["latency_ms"], stage["tflite_accuracy"],
               stage["stage"], "float" if index == 0 else "stage")
              for index, stage in enumerate(report["stages"])]
    result += [(candidate["tflite_gzip_bytes"], candidate["latency_ms"],
                candidate["tflite_accuracy"], label, "candidate")
               for label, candidate in zip(candidate_labels(report), report["candidates"])]
    result += [(point["tflite_gzip_bytes"], point["latency_ms"], point["tflite_accuracy"],
                label, "reference")
               for label, point in sorted(report["reference_points"].items())]
    return result


def candidate_labels(report):
    """The candidates' short labels, in the plots and the Markdown table alike."""
    return [f"c{index + 1}" for index in range(len(report["candidates"]))]


def draw(report, output_dir):
    """Draws the plots that have data into `output_dir`; returns their file names."""
    # Imported here: `import tfopt.pipeline` must not load matplotlib.
    # pylint: disable=import-outside-toplevel
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    def new_axes(size):
        figure = Figure(figsize=size)
        FigureCanvasAgg(figure)
        return figure, figure.add_subplot()

    def save(figure, name):
        figure.tight_layout()
        with _files.atomic_path(os.path.join(output_dir, name)) as temporary:
            figure.savefig(temporary, format="png", dpi=80)
        written.append(name)

    written = []
    everything = points(report)
    for name, column, axis_label in ((ACCURACY_VS_SIZE, 0, "TFLite file, gzipped (KB, log)"),
                                     (ACCURACY_VS_LATENCY, 1,
                                      "single-thread LiteRT latency (ms, log)")):
        figure, axes = new_axes((7, 4.5))
        scale = 1024 if column == 0 else 1
        _trade_off(axes, [(point[column] / scale, point[2] * 100, point[3], point[4])
                          for point in everything])
        axes.set_xlabel(axis_label)
        axes.set_ylabel("TFLite accuracy (%)")
        axes.set_title(f"{report['data']}: accuracy against "
                       f"{'size' if column == 0 else 'latency'}")
        save(figure, name)
    last = report["stages"][-1]
    if last["layers"]:
        layers = last["layers"]
        figure, axes = new_axes((7, max(3.5, 1.2 + 0.3 * len(layers))))
        bars = axes.barh([layer["name"] for layer in layers],
                         [layer["sparsity"] * 100 for layer in layers], color="tab:blue")
        axes.bar_label(bars, fmt="%.0f%%", padding=3, fontsize=8)
        axes.invert_yaxis()  # first layer on top, as in model.summary()
        axes.set_xlim(0, 100)
        axes.set_xlabel("zero kernel weights (%)")
        axes.set_title(f"Per-layer sparsity of {last['stage']}")
        save(figure, SPARSITY)
    rows = _channel_rows(report["stages"][0], last)
    if rows:
        figure, axes = new_axes((max(6, 0.5 * len(rows)), 4.5))
        positions = range(len(rows))
        for offset, column, label in ((-0.2, 1, report["stages"][0]["stage"]),
                                      (0.2, 2, last["stage"])):
            bars = axes.bar([position + offset for position in positions],
                            [row[column] or 0 for row in rows], width=0.4, label=label)
            axes.bar_label(bars, padding=2, fontsize=8)
        axes.set_xticks(list(positions), [row[0] for row in rows], rotation=45, ha="right")
        axes.set_ylabel("output channels")
        axes.set_title("Per-layer channels before and after")
        axes.legend()
        save(figure, CHANNELS)
    return written


def pareto_front(points):
    """The points no other point dominates, smallest first.

    A point dominates another when it is no larger and no less accurate, and
    strictly better in one of the two. Equal points do not dominate each other,
    so both stay on the front.

    Args:
      points: ``(size, accuracy, label)`` tuples; size is anything to minimise
        (bytes, latency).

    Returns:
      The non-dominated points, sorted by size, then accuracy (highest first),
      then label.

    Example:
      >>> pareto_front([(10, 0.9, "a"), (20, 0.8, "b"), (5, 0.7, "c")])
      [(5, 0.7, 'c'), (10, 0.9, 'a')]
    """
    points = list(points)
    front = [point for point in points
             if not any(other[0] <= point[0] and other[1] >= point[1]
                        and (other[0] < point[0] or other[1] > point[1]) for other in points)]
    return sorted(front, key=lambda point: (point[0], -point[1], str(point[2])))


def _trade_off(axes, plotted):
    """Draws (x, accuracy %, label, kind) points, their labels and the Pareto front."""
    from matplotlib import ticker  # pylint: disable=import-outside-toplevel
    for kind, (marker, colour, legend) in _STYLES.items():
        chosen = [point for point in plotted if point[3] == kind]
        if chosen:
            axes.scatter([point[0] for point in chosen], [point[1] for point in chosen],
                         marker=marker, color=colour, s=90 if kind == "float" else 40,
                         label=legend, zorder=3)
    for x, accuracy, label, _ in plotted:
        axes.annotate(label, (x, accuracy), textcoords="offset points", xytext=(5, 4),
                      fontsize=8)
    front = pareto_front([(x, accuracy, label) for x, accuracy, label, _ in plotted])
    # Smaller and more accurate is better: from each front point, the front runs
    # flat to the next larger size, then up to its accuracy.
    axes.step([point[0] for point in front], [point[1] for point in front], where="post",
              color="tab:green", linestyle="--", label="Pareto front", zorder=2)
    axes.set_xscale("log")
    # Ticks at 1, 2, 5 x 10^n written as plain numbers: the default labels every
    # minor tick as "3x10^0" and they overlap when the axis spans one decade.
    axes.margins(x=0.12, y=0.08)  # room for the labels of the outermost points
    low, high = axes.get_xlim()
    # Points within a factor of 4 may fall between two of those ticks: linear
    # ticks then, as good as logarithmic ones over so short a span.
    axes.xaxis.set_major_locator(ticker.MaxNLocator(5) if high < 4 * low
                                 else ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axes.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    axes.xaxis.set_minor_formatter(ticker.NullFormatter())
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize=8, loc="lower right")


def _channel_rows(first, last):
    """(layer name, channels in `first`, channels in `last`), layers matched by name.

    Layers without channels in both stages are left out; a layer only one
    stage has keeps None for the other.
    """
    before = {layer["name"]: layer["channels"] for layer in first["layers"]}
    after = {layer["name"]: layer["channels"] for layer in last["layers"]}
    names = list(before) + [name for name in after if name not in before]
    return [(name, before.get(name), after.get(name)) for name in names
            if before.get(name) is not None or after.get(name) is not None]
