"""The channel plan over a hand-built `LayerGraph`: no Keras, only class names and shapes."""

from types import SimpleNamespace

import numpy as np
import pytest

from tfopt.core import channel_plan
from tfopt.core import channels

_UNITS = ("Conv2D", "Dense")


class FakeGraph(channels.LayerGraph):
    """Nodes given as (name, class name, producers, output shape, attributes)."""

    def __init__(self, nodes, outputs):
        super().__init__()
        self._shapes = {}
        for name, class_name, producers, shape, attributes in nodes:
            self.add(name, SimpleNamespace(class_name=class_name, **attributes))
            self.order.append(name)
            self.calls[name] = 0 if class_name == "InputLayer" else 1
            for producer in producers:
                self.link(producer, name)
            self._shapes[name] = shape
        self.outputs = set(outputs)

    def class_of(self, layer):
        return layer.class_name

    def shapes(self, name):
        return [self._shapes[p] for p in self.producers[name]], self._shapes[name]

    def channel_capable(self, name):
        return self.class_name(name) in _UNITS

    def per_channel(self, name):
        return self.class_name(name) == "BatchNormalization"


def _relu(x):
    return np.maximum(x, 0)


def _residual(activation=_relu):
    return FakeGraph([
        ("input", "InputLayer", [], (None, 8, 8, 4), {}),
        ("stem", "Conv2D", ["input"], (None, 8, 8, 4), dict(activation=None, kernel_size=(3, 3))),
        ("bn", "BatchNormalization", ["stem"], (None, 8, 8, 4), {}),
        ("branch", "Conv2D", ["bn"], (None, 8, 8, 4), dict(activation=None, kernel_size=(3, 3))),
        ("add", "Add", ["bn", "branch"], (None, 8, 8, 4), {}),
        ("act", "Activation", ["add"], (None, 8, 8, 4), dict(activation=activation)),
        ("pool", "GlobalAveragePooling2D", ["act"], (None, 4), {}),
        ("logits", "Dense", ["pool"], (None, 3), dict(activation=None)),
    ], outputs=["logits"])


def test_residual_members_share_the_leaders_mask():
    groups, reasons = channel_plan.channel_plan(_residual())
    group = groups["stem"]
    assert group.members == ["branch"] and group.per_channel == ["bn"]
    assert group.pass_through == ["add", "act", "pool"]
    assert group.consumers == ["branch", "logits"]  # the member reads the group's channels too
    assert group.offsets == {"branch": (0,), "logits": (0,)} and not group.constants
    assert list(reasons) == ["logits"]


def test_a_constant_reaching_a_dense_is_folded_into_its_bias():
    group = channel_plan.channel_plan(_residual(lambda x: 1.0 / (1.0 + np.exp(-x))))[0]["stem"]
    assert group.constants == {"logits": "pool"}


def test_candidates_outside_a_residual_group_keep_it_whole():
    groups, reasons = channel_plan.channel_plan(_residual(), candidates={"stem"})
    assert "stem" not in groups
    assert "is not being pruned" in reasons["stem"]


def test_channels_reaching_the_output_cannot_be_cut():
    groups, reasons = channel_plan.channel_plan(_residual(), candidates={"logits"})
    assert groups == {} and "reach the model output" in reasons["logits"]


@pytest.mark.parametrize("function,expected", [
    (_relu, channels.ZERO), (lambda x: x + 1.0, channels.CONSTANT),
    (lambda x: x - x.mean(axis=-1, keepdims=True), None),  # mixes the channels of a row
])
def test_value_at_zero(function, expected):
    assert channels.value_at_zero(function) == expected


def test_flatten_indices_of_channels_last():
    np.testing.assert_array_equal(channel_plan.flatten_indices((None, 2, 3), [0, 2]),
                                  [0, 2, 3, 5])
