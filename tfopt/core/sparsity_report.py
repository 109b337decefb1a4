"""Sparsity reports: parameters and zeros per layer, with totals and a table.

Each Keras path walks its model and fills a `SparsityReport` with one
`LayerSparsity` row per layer that has weights.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class LayerSparsity:
    name: str
    type: str
    structure: str
    parameters: int
    zeros: int

    @property
    def sparsity(self):
        return self.zeros / self.parameters if self.parameters else 0.0


@dataclasses.dataclass(frozen=True)
class SparsityReport:
    """Per-layer parameters, zeros and sparsity, with totals.

    ``str(report)`` is a table; ``report.as_dict()`` the same as plain data.
    """

    layers: tuple

    @property
    def parameters(self):
        return sum(row.parameters for row in self.layers)

    @property
    def zeros(self):
        return sum(row.zeros for row in self.layers)

    @property
    def sparsity(self):
        return self.zeros / self.parameters if self.parameters else 0.0

    def as_dict(self):
        rows = [{**dataclasses.asdict(row), "sparsity": row.sparsity} for row in self.layers]
        return {"layers": rows, "total": {"parameters": self.parameters, "zeros": self.zeros,
                                          "sparsity": self.sparsity}}

    def __str__(self):
        header = ("layer", "type", "structure", "parameters", "zeros", "sparsity")
        rows = [(r.name, r.type, r.structure, f"{r.parameters:,}", f"{r.zeros:,}",
                 f"{r.sparsity:.1%}") for r in self.layers]
        rows.append(("total", "", "", f"{self.parameters:,}", f"{self.zeros:,}",
                     f"{self.sparsity:.1%}"))
        widths = [max(len(str(row[i])) for row in [header] + rows) for i in range(len(header))]
        lines = []
        for index, row in enumerate([header] + rows):
            cells = [str(c).ljust(w) if i < 3 else str(c).rjust(w)
                     for i, (c, w) in enumerate(zip(row, widths))]
            lines.append("  ".join(cells).rstrip())
            if index == 0 or index == len(rows) - 1:
                lines.append("  ".join("-" * w for w in widths))
        return "\n".join(lines)
