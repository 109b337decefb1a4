"""The table tfopt-export prints: one row per file or directory it wrote."""

import gzip
import os

from tfopt import measure

_COLUMNS = (("format", "<"), ("bytes", ">"), ("gzip bytes", ">"), ("accuracy", ">"),
            ("agreement", ">"), ("max abs diff", ">"), ("path", "<"))


def size(path):
    """(bytes, gzip bytes) of a file, or the sums over the files of a directory.

    A directory's gzip figure compresses each file on its own (level 9), the
    way a registry or a container layer stores them, not one archive.
    """
    if not os.path.isdir(path):
        return measure.file_size(path)
    raw = compressed = 0
    for directory, _, names in os.walk(path):
        for name in names:
            with open(os.path.join(directory, name), "rb") as f:
                content = f.read()
            raw += len(content)
            compressed += len(gzip.compress(content, 9))
    return raw, compressed


def row(name, path, figures, shown_path=None):
    """One row: `figures` may hold accuracy, agreement and max_abs_diff (missing ones show '-')."""
    raw, compressed = size(path)
    return {"format": name, "bytes": f"{raw:,}", "gzip bytes": f"{compressed:,}",
            "accuracy": _share(figures.get("accuracy")),
            "agreement": _share(figures.get("agreement")),
            "max abs diff": ("-" if figures.get("max_abs_diff") is None
                             else f"{figures['max_abs_diff']:.3g}"),
            "path": shown_path or path}


def render(rows):
    """The rows as aligned text, a header line first."""
    widths = {name: max([len(name)] + [len(r[name]) for r in rows]) for name, _ in _COLUMNS}
    lines = ["  ".join(f"{name:{align}{widths[name]}}" for name, align in _COLUMNS)]
    for r in rows:
        lines.append("  ".join(f"{r[name]:{align}{widths[name]}}" for name, align in _COLUMNS))
    return "\n".join(line.rstrip() for line in lines)


def _share(value):
    return "-" if value is None else f"{value:.2%}"
