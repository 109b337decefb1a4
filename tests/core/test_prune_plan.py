"""`prune`'s and `shrink`'s decisions on layer names, without Keras."""

from types import SimpleNamespace

import numpy as np
import pytest

from tfopt.core import masks
from tfopt.core import prune_plan


def _plan(groups, reasons):
    """A channel plan that answers `groups` ({leader: followers}) and `reasons`, and records calls."""
    calls = []

    def plan(candidates):
        calls.append(candidates)
        return ({leader: SimpleNamespace(followers=followers)
                 for leader, followers in groups.items()}, reasons)

    return plan, calls


@pytest.mark.parametrize("structure", ["unstructured", (2, 4)])
def test_without_channels_every_chosen_layer_leads_and_no_plan_is_made(structure):
    plan, calls = _plan({}, {"c": "never asked"})
    leaders, leader_of, skipped = prune_plan.leaders_and_followers(
        ["a", "b"], masks.parse_structure(structure), plan, explicit=())
    assert (leaders, leader_of, skipped, calls) == ({"a", "b"}, {}, [], [])


def test_channels_take_the_plan_leaders_followers_and_reasons():
    plan, calls = _plan({"conv": ["bn", "depthwise"]}, {"logits": "its channels reach an output"})
    leaders, leader_of, skipped = prune_plan.leaders_and_followers(
        ["conv", "logits"], masks.CHANNELS, plan, explicit=())
    assert calls == [{"conv", "logits"}]
    assert leaders == {"conv"}
    assert leader_of == {"bn": "conv", "depthwise": "conv"}
    assert skipped == [("logits", "its channels reach an output")]


def test_a_layer_asked_for_by_name_that_must_stay_whole_is_an_error():
    plan, _ = _plan({}, {"logits": "its channels reach an output"})
    with pytest.raises(ValueError, match="'logits' cannot be channel-pruned: its channels reach"):
        prune_plan.leaders_and_followers(["logits"], masks.CHANNELS, plan, explicit=["logits"])


def test_output_layers_left_whole_under_channels_are_by_design():
    skipped = [("logits", "output"), ("lstm", "no channels")]
    assert prune_plan.split_skipped(skipped, {"logits"}, masks.CHANNELS) == (
        [("logits", "output")], [("lstm", "no channels")])
    assert prune_plan.split_skipped(skipped, {"logits"}, masks.UNSTRUCTURED) == ([], skipped)


def test_messages_name_the_model_structure_and_api():
    assert "prune found nothing to prune in 'net' with structure '2:4' and layers=['x']" in (
        prune_plan.nothing_to_prune("net", (2, 4), ["x"], "Dense, Conv2D"))
    message = prune_plan.not_channel_pruned(
        "net", prune_plan.structures_given("Pruned*", [(2, 4), masks.UNSTRUCTURED, (2, 4)]),
        "tfopt.keras3.pruning")
    assert "'net' has Pruned* layers with structure '2:4', 'unstructured', so" in message
    assert "tfopt.keras3.pruning.prune(model, schedule, structure='channels')" in message
    assert "tfopt.keras3.pruning.strip(model)" in message
    assert "(pruning step 7)" in prune_plan.nothing_pruned_warning("net", [3, 7])
    assert "(pruning step 0)" in prune_plan.nothing_pruned_warning("net", [])


def test_nothing_pruned_until_a_unit_mask_drops_a_unit():
    assert prune_plan.nothing_pruned([None, np.ones(4, bool)])
    assert prune_plan.nothing_pruned([])
    assert not prune_plan.nothing_pruned([np.ones(4, bool), np.array([1, 0, 1, 1], bool)])
