"""Rebuilding a Sequential or Functional model layer by layer, weights included.

`prune`, `strip` and `shrink` are all "the same model with some layers
replaced". `rebuild` clones the model structure (nested models included),
asks `replace` for each layer's substitute, and copies weights into the new
layers once they are built, so the input model is never modified.
"""

import tf_keras as keras


def is_graph_model(layer):
    """True for Sequential and Functional models, False for subclassed ones."""
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False))


def validate_model(model, action):
    if not isinstance(model, keras.Model):
        kind = type(model).__module__ + "." + type(model).__name__
        hint = (" It looks like a Keras 3 object: tfopt uses Keras 2; build models with "
                "`import tf_keras as keras`." if type(model).__module__.startswith("keras.")
                else "")
        raise ValueError(f"{action} needs a tf_keras Model, got {kind}.{hint}")
    if not is_graph_model(model):
        raise ValueError(
            f"{action} supports Sequential and Functional models; {model.name!r} is a "
            f"subclassed model ({type(model).__name__}), whose layers and connections "
            "Keras cannot clone. Rebuild it with the Functional API, or wrap its layers "
            "with tfopt.pruning.PruneWrapper inside your own class."
        )
    if not model.built:
        raise ValueError(f"{action} needs a built model; {model.name!r} has no input shape yet. "
                         "Call the model on data or give its first layer an input_shape.")


def copy_layer(layer):
    """A fresh, unbuilt layer with the same config."""
    return layer.__class__.from_config(layer.get_config())


def rebuild(model, replace):
    """Clones `model`, substituting layers through `replace`.

    Args:
      model: a Sequential or Functional model.
      replace: ``replace(layer) -> (new_layer, weight_owner, weights) | None``.
        `weight_owner` is the layer (possibly inside `new_layer`) that receives
        `weights` once built. None keeps a copy with the same weights, and for
        a nested model rebuilds it with the same `replace`.

    Returns:
      The new model, built, with weights set.
    """
    pending = []

    def clone(layer):
        replacement = replace(layer)
        if replacement is None and is_graph_model(layer):
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
        owner.set_weights(weights)
    return new_model


def all_layers(model):
    """Every layer of the model, nested models entered, in order."""
    for layer in model.layers:
        yield layer
        if is_graph_model(layer):
            yield from all_layers(layer)
