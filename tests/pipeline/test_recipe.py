"""Recipes and options of a pipeline run (tfopt/pipeline/_recipe.py)."""

import pytest

from tfopt.pipeline import _recipe


@pytest.mark.parametrize("recipe, stages", [
    ("auto", ["distill", "channels", "unstructured", "qat"]),
    (" auto ", ["distill", "channels", "unstructured", "qat"]),
    ("channels,qat", ["channels", "qat"]),
    ("distill, unstructured", ["distill", "unstructured"]),
    (["unstructured"], ["unstructured"]),
])
def test_recipes_name_stages_in_order(recipe, stages):
    assert _recipe.parse_recipe(recipe) == stages


@pytest.mark.parametrize("recipe, message", [
    ("distill,prune", r"unknown stage\(s\) \['prune'\]; use 'auto', or stages from"),
    ("qat,distill", r"is out of order; .* e\.g\. 'distill,qat'"),
    ("channels,channels", "repeats a stage"),
    ("", "names no stage"),
    (" , ", "names no stage"),
])
def test_bad_recipes_say_what_is_allowed(recipe, message):
    with pytest.raises(ValueError, match=message):
        _recipe.parse_recipe(recipe)


@pytest.mark.parametrize("recipe", [None, 3, ["distill", 2]])
def test_a_recipe_of_the_wrong_type_is_a_type_error(recipe):
    with pytest.raises(TypeError, match="recipe must be 'auto'"):
        _recipe.parse_recipe(recipe)


@pytest.mark.parametrize("options, message", [
    (dict(width=0), r"width must be a number in \(0, 1\]; got 0"),
    (dict(width=1.5), r"width must be a number in \(0, 1\]"),
    (dict(channel_fraction=1.0), r"channel_fraction must be a number in \(0, 1\)"),
    (dict(sparsity=float("nan")), r"sparsity must be a number in \(0, 1\)"),
    (dict(sparsity=True), r"sparsity must be a number"),
    (dict(temperature=0), r"temperature must be a number in \(0, inf\)"),
    (dict(criterion="largest"), r"criterion='largest' is not one of \['magnitude'"),
    (dict(qat_scheme="int4"), r"qat_scheme='int4' is not one of"),
    (dict(epochs_per_stage=0), "epochs_per_stage must be an int >= 1; got 0"),
    (dict(batch_size=2.0), "batch_size must be an int >= 1; got 2.0"),
    (dict(seed=-1), "seed must be an int >= 0"),
    (dict(min_steps_per_stage=-5), "min_steps_per_stage must be an int >= 0; got -5"),
    (dict(qat_scheme="binary"), "qat_scheme='binary' does not keep the zeros of the "
                                "unstructured stage"),
])
def test_bad_options_are_refused_naming_them(options, message):
    with pytest.raises(ValueError, match=message):
        _recipe.Options(**options)


def test_low_bit_qat_is_fine_without_the_unstructured_stage():
    options = _recipe.Options(recipe="distill,qat", qat_scheme="fixed4")
    assert options.as_dict()["recipe"] == ["distill", "qat"]


def test_options_record_every_field():
    assert set(_recipe.Options().as_dict()) == {
        "recipe", "width", "channel_fraction", "sparsity", "criterion", "qat_scheme",
        "epochs_per_stage", "min_steps_per_stage", "batch_size", "temperature", "seed"}


@pytest.mark.parametrize("epochs, min_steps, examples, expected", [
    (1, 300, 1437, 14),     # digits: 23 steps an epoch; 13 epochs are 299 steps
    (1, 300, 60000, 1),     # Fashion-MNIST: 938 steps an epoch
    (3, 300, 60000, 3),
    (2, 0, 100, 2),
    (1, 64, 64 * 64, 1),    # exactly the minimum
    (1, 65, 64 * 64, 2),
])
def test_a_stage_trains_enough_whole_epochs_for_its_minimum_steps(epochs, min_steps, examples,
                                                                  expected):
    options = _recipe.Options(epochs_per_stage=epochs, min_steps_per_stage=min_steps)
    assert options.stage_epochs(examples) == expected
