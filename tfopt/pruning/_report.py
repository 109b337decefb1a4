"""sparsity_report(): how many weights each layer has, and how many are zero."""

import dataclasses

import numpy as np

from tfopt import _clone
from tfopt.core import masks as _masks
from tfopt.pruning._wrapper import PruneWrapper


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


def sparsity_report(model):
    """Counts parameters and exact zeros per layer (pruned or not, nested included).

    For layers being pruned the masks are applied, so the report shows what
    `strip` would produce. Pruning bookkeeping (masks, step counters) is not
    counted.

    Args:
      model: any Sequential or Functional tf_keras model.

    Returns:
      A `SparsityReport`.

    Example:
      >>> print(sparsity_report(tfopt.pruning.strip(pruned)))
    """
    _clone.validate_model(model, "sparsity_report")
    rows = []
    for layer, path in _walk(model, ""):
        if isinstance(layer, PruneWrapper):
            values = layer.stripped_weights()
            structure = _masks.structure_name(layer.structure)
            if layer.follow:
                structure += f" (follows {layer.follow})"
            kind = type(layer.layer).__name__
        else:
            values = [w.numpy() for w in layer.weights]
            structure, kind = "-", type(layer).__name__
        if not values:
            continue
        rows.append(LayerSparsity(
            name=path + (layer.layer.name if isinstance(layer, PruneWrapper) else layer.name),
            type=kind, structure=structure,
            parameters=int(sum(np.size(v) for v in values)),
            zeros=int(sum(np.count_nonzero(np.asarray(v) == 0) for v in values))))
    return SparsityReport(tuple(rows))


def _walk(model, prefix):
    for layer in model.layers:
        if _clone.is_graph_model(layer):
            yield from _walk(layer, f"{prefix}{layer.name}/")
        else:
            yield layer, prefix
