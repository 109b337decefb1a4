import pytest

from tfopt.core import layer_specs
from tfopt.core.layer_specs import Target


@pytest.mark.parametrize("name,use_bias,pruned,units", [
    ("Dense", True, (Target("kernel", -1, 0),), (Target("bias", 0),)),
    ("Conv2D", False, (Target("kernel", -1, -2),), ()),
    ("SeparableConv1D", True, (Target("depthwise_kernel"), Target("pointwise_kernel", -1, -2)),
     (Target("bias", 0),)),
    ("DepthwiseConv2D", True, (Target("depthwise_kernel"),), ()),
    ("Embedding", False, (Target("embeddings", -1),), ()),
    ("EinsumDense", True, (Target("kernel"),), ()),
    ("GRU", True, (Target("cell.kernel", None, 0), Target("cell.recurrent_kernel", None, 0)), ()),
])
def test_specs_by_class_name(name, use_bias, pruned, units):
    spec = layer_specs.spec_for(name, use_bias)
    assert spec.pruned == pruned and spec.unit_weights == units


@pytest.mark.parametrize("name,wrapped", [
    ("Conv2DTranspose", None), ("LayerNormalization", None), ("Bidirectional", ("Dense", "Dense")),
    ("Bidirectional", None)])
def test_unpruned_classes_have_no_spec(name, wrapped):
    assert layer_specs.spec_for(name, True, wrapped) is None


def test_bidirectional_rnn_prunes_both_directions():
    spec = layer_specs.spec_for("Bidirectional", wrapped=("LSTM", "LSTM"))
    assert [t.path for t in spec.pruned] == [
        "forward_layer.cell.kernel", "forward_layer.cell.recurrent_kernel",
        "backward_layer.cell.kernel", "backward_layer.cell.recurrent_kernel"]


@pytest.mark.parametrize("kwargs,paths", [
    (dict(axis=[3], ndim=4), ["gamma", "beta"]),
    (dict(axis=-1, ndim=2, scale=False), ["beta"]),
    (dict(axis=[1], ndim=4), None),  # channels_first
    (dict(axis=-1, ndim=None), None),  # never built
])
def test_batch_normalization_masks_gamma_and_beta_on_the_last_axis(kwargs, paths):
    spec = layer_specs.per_channel_spec("BatchNormalization", **kwargs)
    assert (None if spec is None else [t.path for t in spec.unit_weights]) == paths


def test_depthwise_follows_only_with_depth_multiplier_one():
    spec = layer_specs.per_channel_spec("DepthwiseConv2D", use_bias=True)
    assert spec.unit_weights == (Target("depthwise_kernel", -2), Target("bias", 0))
    assert layer_specs.per_channel_spec("DepthwiseConv2D", depth_multiplier=2) is None


def test_member_spec_masks_units_and_scores_nothing():
    spec = layer_specs.member_spec(layer_specs.spec_for("Dense", True))
    assert spec.pruned == () and [t.path for t in spec.unit_weights] == ["kernel", "bias"]


def test_keras3_paths_rename_the_depthwise_kernel():
    paths = layer_specs.KERAS3_PATHS["DepthwiseConv2D"]
    spec = layer_specs.renamed(layer_specs.per_channel_spec("DepthwiseConv2D", use_bias=True), paths)
    assert [t.path for t in spec.unit_weights] == ["kernel", "bias"]
    assert layer_specs.renamed(layer_specs.spec_for("Dense"), None) == layer_specs.spec_for("Dense")
