"""Model transforms shared by pruning, quantization and distillation.

`prune`, `strip`, `shrink` and `quantize` are all "the same model with some
layers replaced". `rebuild` clones the model structure (nested models
included), asks `replace` for each layer's substitute, and copies weights into
the new layers once they are built, so the input model is never modified.
`flatten` inlines nested models for transforms that cannot enter them, and
`select_layers` reads every `layers=` argument the same way.
"""

import tensorflow as tf
import tf_keras as keras

from tfopt import _models
from tfopt.core import layer_selection


def is_graph_model(layer):
    """True for Sequential and Functional models, False for subclassed ones."""
    return isinstance(layer, keras.Sequential) or (
        isinstance(layer, keras.Model) and getattr(layer, "_is_graph_network", False))


def validate_model(model, action):
    """Raises ValueError unless `action` can transform `model`.

    `model` must be a built Sequential or Functional tf_keras model; the model
    transforms (prune, strip, shrink, quantize, make_student) also refuse a
    quantization-aware model, and quantize an unstripped pruned one, each with
    what to do instead.
    """
    _models.validate_tf_keras_model(model, action)
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
    _models.validate_float_model(model, action)


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


def select_layers(model, layers):
    """(predicate, explicitly named layers) for a `layers=` argument (see core)."""
    return layer_selection.select(layers, model.name,
                                  (layer.name for layer in all_layers(model)))


def has_nested_models(model):
    """True when a Sequential or Functional model sits inside `model`."""
    return any(is_graph_model(layer) for layer in model.layers)


class _Reused(list):
    """A one-tensor list whose `pop` keeps it: `Node.map_arguments` pops, reuse is fine."""

    def pop(self, *unused):
        return self[0]


def flatten(model, replace=None):
    """A Functional copy of `model` with nested Sequential/Functional models inlined.

    Every layer is copied with its weights and keeps its name; a nested layer
    whose name is already taken becomes ``<nested model name>_<layer name>``. A
    layer used twice stays shared in the copy. Transforms that cannot look
    inside nested models (tfmot's quantize_apply) work on the result.

    The graph is rebuilt node by node, so a layer can also be replaced by
    several layers called one after the other, without the nested model that
    ``rebuild`` would need for that (a nested model with its own Input throws
    off tf_keras' node indices when a Functional model is cloned, and the
    clone never ends).

    Args:
      model: a built Sequential or Functional model.
      replace: ``replace(layer) -> [layers] | None``: fresh layers to call in
        `layer`'s place, in order, on its inputs (their state must be in their
        config: no weights are copied into them), or None to copy `layer`.
        Defaults to None (copy every layer).

    Returns:
      A new Functional model with the same inputs, outputs and weights.
    """
    copies = {}
    taken = {layer.name for layer in model.layers}

    def copy_of(layer, owner):
        if id(layer) not in copies:
            parts = replace(layer) if replace is not None else None
            if parts is None:
                config = layer.get_config()
                if owner is not model and layer.name in taken:
                    config["name"] = f"{owner.name}_{layer.name}"
                taken.add(config["name"])
                copies[id(layer)] = (layer, [layer.__class__.from_config(config)])
            else:
                copies[id(layer)] = (None, list(parts))
        return copies[id(layer)][1]

    def call(parts, args, kwargs):
        outputs = parts[0](*args, **kwargs)
        for part in parts[1:]:
            outputs = part(outputs)
        return outputs

    def run(graph, inputs):
        tensors = {str(id(ref)): _Reused([x]) for ref, x in zip(graph.inputs, inputs)}
        for depth in sorted(graph._nodes_by_depth, reverse=True):
            for node in graph._nodes_by_depth[depth]:
                if node.is_input:
                    continue
                args, kwargs = node.map_arguments(tensors)
                if is_graph_model(node.layer):
                    inner = node.layer._flatten_to_reference_inputs(args[0])
                    outputs = run(node.layer, tf.nest.flatten(inner))
                else:
                    outputs = call(copy_of(node.layer, graph), args, kwargs)
                for x_id, y in zip(node.flat_output_ids, tf.nest.flatten(outputs)):
                    tensors[x_id] = _Reused([y])
        flat = [tensors[str(id(ref))].pop() for ref in graph.outputs]
        return tf.nest.pack_sequence_as(graph._nested_outputs, flat)

    inputs = [keras.Input(batch_shape=ref.shape, dtype=ref.dtype,
                          name=ref._keras_history.layer.name) for ref in model.inputs]
    outputs = run(model, inputs)
    for layer, parts in copies.values():
        if layer is not None:  # a copy; replacements carry no weights
            parts[0].set_weights(layer.get_weights())
    return keras.Model(tf.nest.pack_sequence_as(model._nested_inputs, inputs), outputs,
                       name=model.name)
