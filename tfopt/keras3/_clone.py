"""Model transforms for Keras 3 models: the same model with some layers replaced.

The Keras 3 counterpart of tfopt/_clone.py. `rebuild` clones the model structure
with ``keras.models.clone_model`` (nested Sequential and Functional models
rebuilt the same way), asks `replace` for each layer's substitute, and copies
weights into the new layers once they are built, so the input model is never
modified.
"""

import keras

from tfopt.core import layer_selection
from tfopt.keras3 import _models


def copy_layer(layer):
    """A fresh, unbuilt layer with the same config."""
    return layer.__class__.from_config(layer.get_config())


def rebuild(model, replace):
    """Clones `model`, substituting layers through `replace`.

    Args:
      model: a built Sequential or Functional Keras 3 model.
      replace: ``replace(layer) -> (new_layer, weight_owner, weights) | None``,
        asked for every layer (raw ops such as ``keras.ops.add`` are kept).
        `weight_owner` is the layer (possibly inside `new_layer`) that receives
        `weights` once built, or a function ``weights -> None`` that sets them. None keeps a copy with the same weights, and for
        a nested model rebuilds it with the same `replace`.

    Returns:
      The new model, built, with weights set.
    """
    pending = []

    def clone(layer):
        if not isinstance(layer, keras.layers.Layer):
            return layer  # a raw op such as keras.ops.add: no state to copy
        replacement = replace(layer)
        if replacement is None and _models.is_graph_model(layer):
            return rebuild(layer, replace)
        if replacement is None:
            new = copy_layer(layer)
            pending.append((new, layer.get_weights()))
            return new
        new, owner, weights = replacement
        if owner is not None:
            pending.append((owner, weights))
        return new

    new_model = keras.models.clone_model(model, clone_function=clone)
    for owner, weights in pending:
        if isinstance(owner, keras.layers.Layer):
            owner.set_weights(weights)
        else:
            owner(weights)
    return new_model


def all_layers(model):
    """Every layer of the model, nested models entered, in order."""
    for layer in model.layers:
        yield layer
        if _models.is_graph_model(layer):
            yield from all_layers(layer)


def select_layers(model, layers):
    """(predicate, explicitly named layers) for a `layers=` argument (see core)."""
    return layer_selection.select(layers, model.name,
                                  (layer.name for layer in all_layers(model)))
