"""Reading a transform's `layers=` argument, for either Keras."""


def select(layers, model_name, known):
    """(predicate, explicitly named layers) for a `layers=` argument.

    Args:
      layers: None (every layer), a layer name or list of names (checked
        against `known`), or a predicate ``layer -> bool``.
      model_name: the model's name, for messages.
      known: the names of the model's layers, nested models included.
    """
    if layers is None:
        return (lambda layer: True), set()
    if callable(layers):
        return layers, set()
    if not isinstance(layers, (str, list, tuple, set, frozenset)):
        raise TypeError(f"layers must be None, a layer name, a list of layer names or a "
                        f"predicate layer -> bool, got {layers!r} ({type(layers).__name__}).")
    names = [layers] if isinstance(layers, str) else list(layers)
    if not all(isinstance(n, str) for n in names):
        raise ValueError(f"layers must be None, layer names or a predicate, got {layers!r}.")
    known = set(known)
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"No layer named {unknown} in {model_name!r}. Its layers: "
                         f"{sorted(known)}.")
    return (lambda layer: layer.name in names), set(names)
