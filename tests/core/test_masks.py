import numpy as np
import pytest

from tfopt.core import masks as _masks


def test_unstructured_prunes_exact_count_of_lowest():
    scores = np.arange(20, dtype=float).reshape(4, 5)
    mask = _masks.unstructured_mask(scores, 0.3)
    assert mask.sum() == 14
    assert np.all(mask.reshape(-1)[:6] == 0) and np.all(mask.reshape(-1)[6:] == 1)


def test_unstructured_keeps_pruned_weights_pruned():
    rng = np.random.default_rng(0)
    first = _masks.unstructured_mask(rng.random((10, 10)), 0.5)
    second = _masks.unstructured_mask(rng.random((10, 10)), 0.7, current_mask=first)
    assert np.all(second[first == 0] == 0)
    assert second.sum() == 30


def test_channel_mask_ranks_units_by_summed_score():
    scores = np.ones((3, 3, 2, 4)) * np.array([4.0, 1.0, 3.0, 2.0])
    importance = _masks.unit_scores(scores, axis=-1)
    np.testing.assert_allclose(importance, [72.0, 18.0, 54.0, 36.0])
    np.testing.assert_array_equal(_masks.channel_mask(importance, 0.5), [1, 0, 1, 0])


def test_channel_mask_keeps_at_least_one_unit():
    assert _masks.channel_mask(np.array([1.0, 2.0]), 0.99).sum() == 1


def test_expand_unit_mask_broadcasts_along_axis():
    mask = _masks.expand_unit_mask(np.array([1.0, 0.0, 1.0]), (2, 3), axis=-1)
    np.testing.assert_array_equal(mask, [[1, 0, 1], [1, 0, 1]])


def test_n_of_m_keeps_n_largest_per_group_along_axis():
    rng = np.random.default_rng(1)
    scores = rng.random((8, 3))
    mask = _masks.n_of_m_mask(scores, 2, 4, axis=0)
    groups = mask.reshape(2, 4, 3)
    assert np.all(groups.sum(axis=1) == 2)
    for g in range(2):
        for col in range(3):
            kept = np.flatnonzero(groups[g, :, col])
            top = np.argsort(-scores[g * 4:(g + 1) * 4, col])[:2]
            assert set(kept) == set(top)


@pytest.mark.parametrize("structure,expected", [
    ("unstructured", "unstructured"), ("channels", "channels"), ((2, 4), (2, 4)),
    ([1, 4], (1, 4)), ("2:4", (2, 4)),
])
def test_parse_structure(structure, expected):
    assert _masks.parse_structure(structure) == expected


@pytest.mark.parametrize("structure,match", [
    ((4, 2), "0 < n < m; got n=4, m=2"), ((4, 4), "0 < n < m"), ("rows", "Unknown pruning structure"),
    ((2, 4, 8), "Unknown pruning structure"),
])
def test_bad_structures_are_explained(structure, match):
    with pytest.raises(ValueError, match=match):
        _masks.parse_structure(structure)


def test_ties_are_broken_by_position_with_the_exact_count():
    scores = np.array([3.0, 1.0, 1.0, 1.0, 2.0, 1.0])
    np.testing.assert_array_equal(_masks.unstructured_mask(scores, 0.5), [1, 0, 0, 0, 1, 1])


def test_selection_matches_a_full_sort():
    rng = np.random.default_rng(3)
    scores = rng.integers(0, 50, size=(40, 30)).astype(float)  # many ties
    for sparsity in (0.1, 0.5, 0.83):
        count = int(round(sparsity * scores.size))
        expected = np.ones(scores.size)
        expected[np.argsort(scores.reshape(-1), kind="stable")[:count]] = 0
        np.testing.assert_array_equal(_masks.unstructured_mask(scores, sparsity).reshape(-1),
                                      expected)
