"""Which tfopt function takes a model of the other Keras, for errors that name it.

tfopt has one API per Keras version under the same names: ``tfopt.pruning.prune``
takes tf_keras (Keras 2) models, ``tfopt.keras3.pruning.prune`` Keras 3 models.
A model of the wrong Keras gets an error naming the function that takes it.
"""

_PACKAGES = {
    "prune": "pruning", "strip": "pruning", "shrink": "pruning",
    "sparsity_report": "pruning", "count_flops": "pruning",
    "quantize": "quantization",
    "make_student": "distillation", "Distiller": "distillation",
}


def _function(action):
    name = action.split()[0]  # "Distiller teacher" -> "Distiller"
    return name if name in _PACKAGES else None


def for_keras3(action):
    """The sentence telling a Keras 3 user what to call instead of the tf-keras `action`."""
    name = _function(action)
    if name is not None:
        return f"for Keras 3 models use tfopt.keras3.{_PACKAGES[name]}.{name}."
    if action.startswith(("pipeline.optimize", "tfmot_recipe")):
        return ("the pipeline runs on tf_keras models only; optimize a Keras 3 model step by "
                "step with tfopt.keras3.pruning, .quantization and .distillation.")
    return "tfopt.keras3 has the functions that take Keras 3 models."


def for_tf_keras(action):
    """The sentence telling a tf_keras user what to call instead of the Keras 3 `action`."""
    name = _function(action)
    if name is not None:
        return f"for tf_keras models use tfopt.{_PACKAGES[name]}.{name}."
    return "tfopt.pruning, .quantization and .distillation take tf_keras models."
