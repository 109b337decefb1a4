"""Where a Keras 3 layer keeps a weight variable.

Keras 3's Dense, EinsumDense, convolutions and Embedding keep their weight in
``_kernel`` / ``_embeddings`` behind a read-only ``kernel`` / ``embeddings``
property (the hook Keras' LoRA uses); other layers hold the variable under its
own name. tfopt's Keras 3 layers replace the variable's attribute for the
length of a call, so they need the attribute that holds it.
"""


def private_name(owner, attr):
    """The attribute of `owner` that holds the variable named `attr`."""
    return f"_{attr}" if isinstance(getattr(type(owner), attr, None), property) else attr


def resolve(layer, path):
    """(owner, attribute) holding the variable at a dotted path ("cell.kernel")."""
    owner = layer
    *parents, attr = path.split(".")
    for name in parents:
        owner = getattr(owner, name)
    return owner, private_name(owner, attr)
