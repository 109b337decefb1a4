"""The shrink plan over channel groups, and `slices.shrunk`, without any Keras."""

import numpy as np

from tfopt.core import layer_specs
from tfopt.core import shrink_plan
from tfopt.core import slices
from tfopt.core.channel_plan import ChannelGroup


class _View(shrink_plan.ShrinkView):
    """Dense and Conv2D layers by name, with given unit masks; "bn" is per-channel."""

    def __init__(self, unit_masks, unmasked=()):
        self.unit_masks, self.unmasked = unit_masks, set(unmasked)

    def masked(self, name):
        return name not in self.unmasked

    def unit_mask(self, name):
        return np.array(self.unit_masks[name], dtype=np.float32)

    def outputs(self, name, channels):
        return slices.outputs(layer_specs.spec_for("Conv2D", use_bias=True), channels)

    def per_channel(self, name, channels):
        spec = layer_specs.per_channel_spec("BatchNormalization", axis=-1, ndim=4)
        return slices.per_channel("BatchNormalization", spec, channels)

    def inputs(self, name, channels):
        return slices.inputs("Dense" if name == "dense" else "Conv2D", channels)

    def input_shape(self, name):
        return (None, 2, 1, 4)


def test_members_keep_a_unit_any_of_them_uses_and_consumers_lose_it_at_each_offset():
    group = ChannelGroup("a", members=["b"], per_channel=["bn"], consumers=["mix", "dense"],
                         flatten={"dense": "flatten"}, offsets={"mix": (0, 4)})
    plan = shrink_plan.plan({"a": group}, _View({"a": [1, 0, 0, 1], "b": [1, 1, 0, 1]}))
    assert plan.widths == {"a": 1, "b": 1}
    np.testing.assert_array_equal(plan.cuts.of("a")[("kernel", -1)], [2])
    np.testing.assert_array_equal(plan.cuts.of("bn")[("moving_mean", 0)], [2])
    np.testing.assert_array_equal(plan.cuts.of("mix")[("kernel", -2)], [2, 6])
    # Flatten of (2, 1, 4): channel 2 sits at positions 2 and 6.
    np.testing.assert_array_equal(plan.cuts.of("dense")[("kernel", 0)], [2, 6])


def test_a_group_whose_follower_was_not_masked_stays_whole():
    logged = []
    group = ChannelGroup("a", per_channel=["bn"], consumers=["mix"])
    plan = shrink_plan.plan({"a": group}, _View({"a": [1, 0]}, unmasked=["bn"]),
                            log=lambda name, reason: logged.append((name, reason)))
    assert "a" not in plan.cuts and not plan.widths
    assert logged == [("a", "bn kept its channels while training")]


def test_constant_channels_become_a_bias_without_the_consumers_own_removed_units():
    group = ChannelGroup("a", consumers=["mix"], constants={"mix": "bn"})
    plan = shrink_plan.plan({"a": group}, _View({"a": [1, 0, 1]}))
    ((consumer, source, channels),) = plan.absorbed
    assert (consumer, source, list(channels)) == ("mix", "bn", [1])
    kernel = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)  # 3 inputs, 3 filters
    biases = shrink_plan.bias_increments(plan.absorbed, {"bn": np.array([0.0, 2.0, 0.0])},
                                         lambda name: kernel)
    np.testing.assert_allclose(biases["mix"], 2.0 * kernel[0, 0, 1])
    positions = {"kernel": 0}
    config = {"filters": 3, "use_bias": False}
    removed = {("kernel", -2): np.array([1]), ("kernel", -1): np.array([0])}  # also loses unit 0
    (new_kernel, bias) = slices.shrunk("Conv2D", config, [kernel], positions.get, removed,
                                       width=1, increment=biases["mix"])
    assert config == {"filters": 2, "use_bias": True}
    np.testing.assert_array_equal(new_kernel, kernel[:, :, [0, 2]][..., [1, 2]])
    np.testing.assert_allclose(bias, 2.0 * kernel[0, 0, 1, 1:])
