"""The tf.Examples of a classify or regress call, as dicts or protos, for either protocol.

Users give examples as dicts (feature name -> value or list of values) or as
``tf.train.Example`` protos. REST sends dicts (`_json_examples` writes them);
gRPC sends protos. The typing rules are TF Serving's JSON ones, so both
protocols build the same Example: float -> float_list, int and bool ->
int64_list, str and bytes -> bytes_list.
"""

import numpy as np
from tensorflow.core.example import example_pb2


def _values(value, where):
    if isinstance(value, np.ndarray):
        value = value.tolist()
    values = list(value) if isinstance(value, (list, tuple)) else [value]
    for item in values:
        if not isinstance(item, (bool, int, float, str, bytes, np.generic)):
            raise TypeError(f"{where} must be a float, int, bool, str or bytes (or a list of "
                            f"them); got {item!r} of type {type(item).__name__}.")
    return values


def to_example(features, where="examples[0]"):
    """A dict of feature name -> value(s), or an Example, as a ``tf.train.Example``."""
    if isinstance(features, example_pb2.Example):
        return features
    if not isinstance(features, dict) or not all(isinstance(name, str) for name in features):
        raise TypeError(f"{where} must be a tf.train.Example or a dict of feature name (str) "
                        f"-> value or list of values; got {features!r}.")
    example = example_pb2.Example()
    for name, value in features.items():
        values = _values(value, f"{where}[{name!r}]")
        feature = example.features.feature[name]
        kinds = {type(item) for item in values}
        if all(isinstance(item, (str, bytes, np.bytes_, np.str_)) for item in values):
            feature.bytes_list.value.extend(
                item.encode("utf-8") if isinstance(item, str) else bytes(item) for item in values)
        elif all(isinstance(item, (bool, int, np.integer, np.bool_)) for item in values):
            feature.int64_list.value.extend(int(item) for item in values)
        elif all(isinstance(item, (float, np.floating)) for item in values):
            feature.float_list.value.extend(float(item) for item in values)
        else:
            kinds = sorted(kind.__name__ for kind in kinds)
            raise TypeError(f"{where}[{name!r}] mixes value types {kinds}; a feature holds "
                            "floats, ints/bools or strings/bytes only.")
    return example


def to_features(example, where="examples[0]"):
    """An Example (or a dict, returned as is) as a dict for the JSON request."""
    if isinstance(example, dict):
        return example
    if not isinstance(example, example_pb2.Example):
        raise TypeError(f"{where} must be a tf.train.Example or a dict of feature name (str) "
                        f"-> value or list of values; got {example!r}.")
    features = {}
    for name, feature in example.features.feature.items():
        kind = feature.WhichOneof("kind")
        # Floats as numpy float32 so the JSON writer marks them as floats (1.0, not 1).
        features[name] = ([np.float32(value) for value in feature.float_list.value]
                          if kind == "float_list" else
                          list(getattr(feature, kind).value) if kind else [])
    return features


def validate_examples(examples, context):
    """Checks a classify/regress call's examples and context before anything is sent."""
    if isinstance(examples, (dict, example_pb2.Example)) or not isinstance(
            examples, (list, tuple)) or not examples:
        raise ValueError(f"examples must be a non-empty list of feature dicts or "
                         f"tf.train.Example protos; got {examples!r}. Wrap a single example "
                         "in a list.")
    protos = [to_example(item, f"examples[{index}]") for index, item in enumerate(examples)]
    context = None if context is None else to_example(context, "context")
    return protos, context
