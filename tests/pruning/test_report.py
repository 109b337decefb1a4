import numpy as np
import tf_keras as keras

from tfopt import pruning
from tests.conftest import small_cnn


def test_report_counts_parameters_and_zeros_per_layer():
    model = small_cnn()
    kernel = model.get_layer("hidden").kernel
    values = kernel.numpy()
    values[:10] = 0.0
    kernel.assign(values)
    report = pruning.sparsity_report(model)
    rows = {row.name: row for row in report.layers}
    assert set(rows) == {"conv_a", "bn", "conv_b", "hidden", "logits"}
    assert rows["hidden"].parameters == 128 * 16 + 16
    assert rows["hidden"].zeros == 10 * 16 + 16  # zeroed rows + zero-initialized bias
    assert report.parameters == model.count_params()
    assert report.zeros == sum(int(np.sum(w == 0)) for w in model.get_weights())
    data = report.as_dict()
    assert data["total"]["parameters"] == model.count_params()
    assert data["layers"][3]["name"] == "hidden" and data["layers"][3]["structure"] == "-"


def test_report_of_a_pruning_model_applies_masks_and_names_structure():
    pruned = pruning.prune(small_cnn(), pruning.OneShot(0.5), structure="channels")
    for wrapper in pruning._prune.wrappers(pruned):
        if wrapper.follow is None:
            wrapper.prune_to(0.5)
    report = pruning.sparsity_report(pruned)
    rows = {row.name: row for row in report.layers}
    assert rows["hidden"].structure == "channels"
    assert rows["bn"].structure == "channels (follows conv_a)"
    assert rows["hidden"].zeros >= (128 * 8 + 8)  # 8 of 16 units, kernel columns + bias
    assert report.parameters == pruning.strip(pruned).count_params()
    text = str(report)
    assert text.splitlines()[0].split() == ["layer", "type", "structure", "parameters", "zeros",
                                            "sparsity"]
    assert "total" in text and f"{report.sparsity:.1%}" in text


def test_report_enters_nested_models():
    inner = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, name="d")], name="inner")
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2, name="out")(inner(inputs)))
    names = [row.name for row in pruning.sparsity_report(model).layers]
    assert names == ["inner/d", "out"]
