"""sparsity_report(): how many weights each layer has, and how many are zero."""

import numpy as np

from tfopt import _clone
from tfopt.core import masks as _masks
from tfopt.core.sparsity_report import LayerSparsity
from tfopt.core.sparsity_report import SparsityReport
from tfopt.pruning._wrapper import PruneWrapper


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
