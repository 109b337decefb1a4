"""Drift between a reference sample (training inputs) and the inputs a model is served.

Two measures per feature:

- Population stability index, ``PSI = sum((c - r) * ln(c / r))`` over bins,
  where ``r`` and ``c`` are the shares of the reference and the current values
  in each bin. The bins come from the reference's quantiles (10 by default),
  so each holds about a tenth of it; values beyond the reference's range fall
  into the outer bins. An empty bin's share is raised to `EPSILON`, so the
  logarithm stays finite. The usual reading: below 0.1 no change worth a
  look, 0.1 to 0.25 a moderate shift, above 0.25 a significant one
  (`PSI_MODERATE`, `PSI_SIGNIFICANT`).
- Kolmogorov-Smirnov distance, the largest gap between the two empirical
  distribution functions (0 equal, 1 disjoint), from `scipy.stats.ks_2samp`.

An input is flattened to one feature per element. Per-element features stay
readable for tabular inputs, but an image has hundreds of them, most of which
move together, and a shift in brightness or contrast is spread thinly over
all of them. So each input also gets four summary features computed per
example: its mean, standard deviation, minimum and maximum over all elements.
The report lists the summary features and the `top_k` elements with the
highest PSI; an input drifts when any of them passes a threshold.

Prediction drift compares the share of each predicted class (the argmax of a
``(batch, classes)`` output) with the reference's class shares (its labels or
stored predictions), by the same PSI over classes.
"""

import dataclasses

import numpy as np
from scipy import stats

PSI_MODERATE = 0.1
PSI_SIGNIFICANT = 0.25
# KS distance at which the tool reports drift by default: well above the
# sampling noise of a few hundred logged rows (about 0.1 at 300 rows).
KS_DEFAULT = 0.2
EPSILON = 1e-4
BINS = 10
TOP_K = 10
SUMMARIES = {"mean": np.mean, "std": np.std, "min": np.min, "max": np.max}


@dataclasses.dataclass
class FeatureDrift:
    """The drift of one feature: its name, PSI, KS distance and whether it passes a threshold."""
    name: str
    psi: float
    ks: float
    drifted: bool


def psi(reference, current, bins=BINS, epsilon=EPSILON):
    """Population stability index of `current` against `reference` (1-D arrays).

    Args:
      reference: the reference values.
      current: the values to compare.
      bins: the number of reference quantile bins. Defaults to 10.
      epsilon: the share an empty bin counts as. Defaults to 1e-4.

    Returns:
      The PSI, a float >= 0.

    Example:
      >>> round(psi(np.arange(100.0), np.arange(100.0) + 50), 2)  # half moved past the top
      4.35
    """
    reference, current = _validate_samples(reference, current)
    # Duplicate edges (a feature that is mostly one value) would make empty bins.
    edges = np.unique(np.quantile(reference, np.linspace(0, 1, bins + 1)[1:-1]))
    # side="left": a bin holds the values up to and including its upper edge, so a
    # constant reference still separates values above it.
    return _psi_of_shares(_shares(np.searchsorted(edges, reference, side="left"), len(edges) + 1),
                          _shares(np.searchsorted(edges, current, side="left"), len(edges) + 1),
                          epsilon)


def class_psi(reference_classes, current_classes, classes, epsilon=EPSILON):
    """PSI between the class shares of two arrays of integer classes in ``0..classes-1``."""
    return _psi_of_shares(_shares(reference_classes, classes), _shares(current_classes, classes),
                          epsilon)


def ks(reference, current):
    """Kolmogorov-Smirnov distance between the two samples (1-D arrays), in [0, 1]."""
    reference, current = _validate_samples(reference, current)
    return float(stats.ks_2samp(reference, current).statistic)


def input_drift(reference, current, psi_threshold=PSI_SIGNIFICANT, ks_threshold=KS_DEFAULT,
                top_k=TOP_K):
    """Summary and top per-element drift of one input.

    Args:
      reference: the reference examples, batch first.
      current: the logged examples, shaped like `reference` after the batch.
      psi_threshold: PSI above which a feature drifts. Defaults to 0.25.
      ks_threshold: KS distance above which a feature drifts. Defaults to 0.2.
      top_k: how many elements to report, highest PSI first. Defaults to 10.

    Returns:
      ``(summary, top, elements)``: `FeatureDrift` lists of the summary
      features and of the `top_k` elements, and the number of elements.
    """
    shape = np.shape(reference)[1:]
    reference = np.asarray(reference, np.float64).reshape(len(reference), -1)
    current = np.asarray(current, np.float64).reshape(len(current), -1)
    if reference.shape[1] != current.shape[1]:
        raise ValueError(f"The reference has {reference.shape[1]} values per example, the logs "
                         f"{current.shape[1]}; give reference data shaped like the requests.")

    def drift(name, ref, cur):
        p, k = psi(ref, cur), ks(ref, cur)
        return FeatureDrift(name, p, k, p > psi_threshold or k > ks_threshold)

    summary = [drift(name, f(reference, axis=1), f(current, axis=1))
               for name, f in SUMMARIES.items()]
    elements = [drift(_element_name(i, shape), reference[:, i], current[:, i])
                for i in range(reference.shape[1])]
    top = sorted(elements, key=lambda d: (-d.psi, -d.ks))[:top_k]
    return summary, top, len(elements)


def predicted_classes(output):
    """The argmax class per row of a ``(batch, classes)`` output, or None for other shapes."""
    output = np.asarray(output)
    if output.ndim != 2 or output.shape[1] < 2:
        return None
    return np.argmax(output, axis=1)


def _element_name(index, shape):
    """The element's index within one example, e.g. "[3,4,0]" for a pixel; "value" for scalars."""
    if not shape:
        return "value"
    return "[" + ",".join(str(int(i)) for i in np.unravel_index(index, shape)) + "]"


def _shares(bin_indices, bins):
    return np.bincount(np.asarray(bin_indices), minlength=bins)[:bins] / len(bin_indices)


def _psi_of_shares(reference, current, epsilon):
    reference = np.maximum(reference, epsilon)
    current = np.maximum(current, epsilon)
    return float(np.sum((current - reference) * np.log(current / reference)))


def _validate_samples(reference, current):
    checked = []
    for name, values in (("reference", reference), ("current", current)):
        values = np.asarray(values, np.float64).ravel()
        if values.size == 0:
            raise ValueError(f"The {name} sample is empty; drift needs at least one value on "
                             "each side.")
        if not np.all(np.isfinite(values)):
            raise ValueError(f"The {name} sample holds NaN or infinite values; drift is "
                             "measured on finite numbers only.")
        checked.append(values)
    return checked
