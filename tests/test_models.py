"""tfopt._models: transforms say what a quantization-aware or unstripped model needs."""

import pytest
import tensorflow_model_optimization as tfmot
import tf_keras as keras

from tfopt import distillation
from tfopt import pruning
from tfopt import quantization
from tests.conftest import small_cnn
from tests.export.conftest import digits_cnn

_SCHEDULE = pruning.ConstantSparsity(0.5, begin_step=0)

# Each model transform, and the advice it gives for a quantization-aware model.
TRANSFORMS = {
    "prune": (lambda m: pruning.prune(m, _SCHEDULE), r"Prune the float model first, strip it, "
              r"then quantize the stripped model with scheme='int8_prune_preserving'"),
    "strip": (pruning.strip, r"Only pruned models need strip: prune the float model first"),
    "shrink": (pruning.shrink, r"Prune the float model with structure='channels', shrink it"),
    "make_student": (distillation.make_student, r"Pass the float model it was quantized from"),
    "quantize": (quantization.quantize, r"It is quantized already: train it with fit and export "
                 r"it with tfopt.export.tflite\(model, path, mode='int8'\)"),
}

QUANTIZATION_AWARE = {
    "tfopt": lambda: quantization.quantize(small_cnn()),
    "tfmot": lambda: tfmot.quantization.keras.quantize_model(digits_cnn()),
    "nested": lambda: keras.Sequential([quantization.quantize(small_cnn())]),
}


@pytest.mark.parametrize("transform", TRANSFORMS)
@pytest.mark.parametrize("made_by", QUANTIZATION_AWARE)
def test_transforms_refuse_a_quantization_aware_model_with_advice(transform, made_by):
    call, advice = TRANSFORMS[transform]
    model = QUANTIZATION_AWARE[made_by]()
    with pytest.raises(ValueError, match=rf"{transform} works on float models; '\w+' is "
                       rf"quantization-aware \(tfmot quantization layers \['quantize_layer\w*', "
                       rf"'quant_\w+', 'quant_\w+'\] and more\)\. {advice}"):
        call(model)


@pytest.mark.parametrize("prune", [
    lambda m: pruning.prune(m, _SCHEDULE),
    lambda m: tfmot.sparsity.keras.prune_low_magnitude(m),
], ids=["tfopt", "tfmot"])
def test_quantize_asks_for_strip_before_a_pruned_model(prune):
    with pytest.raises(ValueError, match=r"quantize needs a stripped model; '\w+' still holds "
                       r"pruning wrappers \['prune_\w*conv_a', 'prune_\w+', 'prune_\w+'\] and "
                       r"more\. "
                       r"Strip first: tfopt.pruning.strip\(model\)"):
        quantization.quantize(prune(small_cnn()))


def test_a_stripped_pruned_model_quantizes():
    stripped = pruning.strip(pruning.prune(small_cnn(), _SCHEDULE))
    quantized = quantization.quantize(stripped, "int8_prune_preserving")
    assert quantized.get_layer("quant_conv_a")


@pytest.mark.parametrize("call, action, counterpart", [
    (lambda m: pruning.prune(m, _SCHEDULE), "prune", "tfopt.keras3.pruning.prune"),
    (pruning.strip, "strip", "tfopt.keras3.pruning.strip"),
    (pruning.shrink, "shrink", "tfopt.keras3.pruning.shrink"),
    (pruning.count_flops, "count_flops", "tfopt.keras3.pruning.count_flops"),
    (quantization.quantize, "quantize", "tfopt.keras3.quantization.quantize"),
    (distillation.make_student, "make_student", "tfopt.keras3.distillation.make_student"),
    (lambda m: distillation.Distiller(teacher=m, student=small_cnn()), "Distiller teacher",
     "tfopt.keras3.distillation.Distiller"),
])
def test_a_keras3_model_gets_the_name_of_the_keras3_function(call, action, counterpart):
    import keras as keras3
    model = keras3.Sequential([keras3.Input((8, 8, 1)), keras3.layers.Flatten(),
                               keras3.layers.Dense(10)])
    with pytest.raises(ValueError, match=rf"^{action} needs a tf_keras Model, got keras\.src\."
                       rf"models\.sequential\.Sequential\. It looks like a Keras 3 object: for "
                       rf"Keras 3 models use {counterpart}\. To stay on Keras 2, build the model "
                       rf"with `import tf_keras as keras`\.$"):
        call(model)
