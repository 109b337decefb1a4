import numpy as np
import pytest

from tfopt.core import criteria
from tfopt.core import mask_updates
from tfopt.core.mask_updates import MaskedWeight


def _dense(kernel, bias=None, mask=None):
    weights = [MaskedWeight("kernel", kernel, np.ones_like(kernel) if mask is None else mask,
                            unit_axis=-1, input_axis=0)]
    if bias is not None:
        weights.append(MaskedWeight("bias", bias, np.ones_like(bias), scored=False, unit_axis=0))
    return weights


def test_unstructured_masks_only_scored_weights_and_keep_pruned_ones():
    kernel = np.arange(1.0, 13.0).reshape(3, 4)
    mask = np.ones_like(kernel)
    mask[2, 3] = 0.0  # the largest weight, already pruned
    new, unit = mask_updates.prune_to(_dense(kernel, np.ones(4), mask), criteria.Magnitude(),
                                      "unstructured", 0.5, "dense")
    assert unit is None and set(new) == {0}
    assert new[0][2, 3] == 0 and new[0].sum() == 6
    np.testing.assert_array_equal(new[0].reshape(-1)[:5], 0)


def test_channels_cut_whole_units_of_kernel_and_bias():
    kernel = np.ones((3, 4)) * np.array([4.0, 1.0, 3.0, 2.0])
    weights = _dense(kernel, np.full(4, 9.0))
    new, unit = mask_updates.prune_to(weights, criteria.L2(), "channels", 0.5, "dense")
    np.testing.assert_array_equal(unit, [1, 0, 1, 0])
    np.testing.assert_array_equal(new[0], np.broadcast_to(unit, (3, 4)))
    np.testing.assert_array_equal(new[1], unit)
    weights[0].mask, weights[1].mask = new[0], new[1]
    assert mask_updates.sparsity(weights) == 0.5
    np.testing.assert_array_equal(mask_updates.unit_mask(weights), unit)


def test_n_of_m_keeps_n_per_group_and_skips_zero_sparsity():
    kernel = np.random.default_rng(0).random((8, 2))
    weights = _dense(kernel)
    assert mask_updates.prune_to(weights, criteria.Magnitude(), (2, 4), 0.0, "d") == ({}, None)
    new, _ = mask_updates.prune_to(weights, criteria.Magnitude(), (2, 4), 0.5, "d")
    assert np.all(new[0].reshape(2, 4, 2).sum(axis=1) == 2)


@pytest.mark.parametrize("sparsity,warns", [(0.5, False), (0.8, True), (0.0, False)])
def test_n_of_m_mismatch(sparsity, warns):
    assert (mask_updates.n_of_m_mismatch((2, 4), sparsity) is not None) == warns


def test_seeded_scores_use_layer_key_and_path():
    kernel = np.zeros((4, 4))
    a, _ = mask_updates.prune_to(_dense(kernel), criteria.Random(1), "unstructured", 0.5, "0")
    b, _ = mask_updates.prune_to(_dense(kernel), criteria.Random(1), "unstructured", 0.5, "0")
    c, _ = mask_updates.prune_to(_dense(kernel), criteria.Random(1), "unstructured", 0.5, "1")
    np.testing.assert_array_equal(a[0], b[0])
    assert not np.array_equal(a[0], c[0])
