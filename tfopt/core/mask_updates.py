"""One pruning step of one layer, on numpy arrays: weights and masks in, new masks out.

A pruned layer (tf-keras' `PruneWrapper`, the Keras 3 pruning layers) holds
one mask per pruned weight, and for gradient criteria a moving statistic. At a
pruning step it reads them as arrays, calls `prune_to`, and assigns the masks
it returns (zeroing the stored weights with them). The layer owns its
variables; this module owns the arithmetic, so both Keras versions prune alike.
"""

import dataclasses

import numpy as np

from tfopt.core import masks


@dataclasses.dataclass
class MaskedWeight:
    """One masked weight of a layer, as numpy arrays.

    Attributes:
      path: the weight's attribute path ("kernel", "cell.kernel"); seeded
        criteria score it under "<layer key>/<path>".
      weight: the current weight values.
      mask: the current mask (0 or 1, the weight's shape).
      statistic: the moving average of the criterion's `observe`, or None.
      scored: whether the criterion ranks this weight (a bias cut with whole
        units, or a follower's weight, is masked but not scored).
      unit_axis: axis of output units, or None.
      input_axis: axis of N:M groups, or None.
    """

    path: str
    weight: np.ndarray
    mask: np.ndarray
    statistic: np.ndarray | None = None
    scored: bool = True
    unit_axis: int | None = None
    input_axis: int | None = None


def prune_to(weights, criterion, structure, sparsity, key):
    """New masks of one layer at `sparsity`.

    Masks only grow sparser: weights already pruned stay pruned.

    Args:
      weights: the layer's `MaskedWeight`s.
      criterion: a `tfopt.core.criteria.Criterion`.
      structure: "unstructured", "channels" or an (n, m) tuple (parsed).
      sparsity: the schedule's target sparsity now.
      key: the layer's stable name for seeded criteria.

    Returns:
      (new masks, unit mask): {index in `weights`: new mask} for the weights
      whose mask changes, and the new 1-D unit mask under "channels" (else None).
    """
    scored = [i for i, w in enumerate(weights) if w.scored]
    scores = {i: criterion.scores(weights[i].weight, weights[i].statistic,
                                  f"{key}/{weights[i].path}")
              for i in scored}
    if structure == masks.UNSTRUCTURED:
        return {i: masks.unstructured_mask(scores[i], sparsity, weights[i].mask)
                for i in scored}, None
    if structure == masks.CHANNELS:
        importance = sum(masks.unit_scores(scores[i], weights[i].unit_axis) for i in scored)
        unit = masks.channel_mask(importance, sparsity, unit_mask(weights))
        return follower_masks(weights, unit), unit
    n, m = structure
    if sparsity <= 0.0:
        return {}, None
    new = {}
    for i in scored:
        ranked = np.where(weights[i].mask > 0, scores[i], -np.inf)
        new[i] = masks.n_of_m_mask(ranked, n, m, weights[i].input_axis)
    return new, None


def n_of_m_mismatch(structure, sparsity):
    """Why an N:M layer ignores the schedule's `sparsity` (a warning), or None."""
    if not isinstance(structure, tuple) or sparsity <= 0.0:
        return None
    n, m = structure
    if abs(sparsity - (1 - n / m)) <= 0.01:
        return None
    return (f"N:M structure {n}:{m} always prunes to sparsity {1 - n / m:.2f}; the "
            f"schedule (now {sparsity:.2f}) only decides when masks update.")


def follower_masks(weights, unit):
    """{index: mask} broadcasting a 1-D unit mask over every weight along its unit axis."""
    return {i: masks.expand_unit_mask(unit, np.shape(w.weight), w.unit_axis)
            for i, w in enumerate(weights)}


def unit_mask(weights):
    """1-D mask over output units read from the first weight with a unit axis, or None."""
    for w in weights:
        if w.unit_axis is not None:
            mask = np.asarray(w.mask)
            axis = w.unit_axis % mask.ndim
            other = tuple(i for i in range(mask.ndim) if i != axis)
            return (mask.max(axis=other) > 0).astype(np.float32)
    return None


def sparsity(weights):
    """Fraction of zeros across the scored weights' masks (all masks if none is scored)."""
    counted = [w for w in weights if w.scored] or list(weights)
    total = sum(int(np.size(w.mask)) for w in counted)
    zeros = sum(int(np.sum(np.asarray(w.mask) == 0)) for w in counted)
    return zeros / total if total else 0.0
