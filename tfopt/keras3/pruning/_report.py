"""sparsity_report() for Keras 3 models: parameters and zeros per layer."""

import numpy as np
from keras import ops

from tfopt.core import masks as core_masks
from tfopt.core.sparsity_report import LayerSparsity
from tfopt.core.sparsity_report import SparsityReport
from tfopt.keras3 import _models
from tfopt.keras3.pruning._layers import PruningMixin
from tfopt.keras3.pruning._layers import base_class


def sparsity_report(model):
    """Counts parameters and exact zeros per layer (pruned or not, nested included).

    For layers being pruned the masks are applied, so the report shows what
    `strip` would produce. Pruning bookkeeping (masks, statistics, step
    counters) is not counted.

    Args:
      model: a Sequential or Functional Keras 3 model.

    Returns:
      A `SparsityReport` (``str(report)`` is a table).

    Example:
      >>> print(sparsity_report(tfopt.keras3.pruning.strip(pruned)))
    """
    _models.validate_graph_model(model, "sparsity_report")
    rows = []
    for layer, path in _walk(model, ""):
        if isinstance(layer, PruningMixin):
            values = layer.stripped_weights()
            structure = core_masks.structure_name(layer.structure)
            if layer.follow:
                structure += f" (follows {layer.follow})"
            kind = base_class(type(layer)).__name__
        else:
            values = [ops.convert_to_numpy(w) for w in layer.weights]
            structure, kind = "-", type(layer).__name__
        if not values:
            continue
        rows.append(LayerSparsity(
            name=path + layer.name, type=kind, structure=structure,
            parameters=int(sum(np.size(v) for v in values)),
            zeros=int(sum(np.count_nonzero(np.asarray(v) == 0) for v in values))))
    return SparsityReport(tuple(rows))


def _walk(model, prefix):
    for layer in model.layers:
        if _models.is_graph_model(layer):
            yield from _walk(layer, f"{prefix}{layer.name}/")
        else:
            yield layer, prefix
