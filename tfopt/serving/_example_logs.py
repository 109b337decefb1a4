"""Classify and regress request logs as rows: `tf.Example` features in, scores or values out.

Classify and Regress requests carry `tf.Example`s (an ``example_list``, or an
``example_list_with_context`` whose context features each example's own
override, as TF Serving merges them), not tensors. Each numeric feature
(``float_list`` or ``int64_list``) becomes an input named after the feature,
one row of its values per example; ``bytes_list`` features have no numeric
distribution and are left out. A classify response becomes the output
``scores`` (examples x classes, in the response's class order), a regress
response the output ``outputs`` (one value per example).
"""

import numpy as np

CLASSIFY_OUTPUT = "scores"
REGRESS_OUTPUT = "outputs"


def tensors(log, where):
    """``(inputs, outputs)`` of a classify_log or regress_log record, each ``{name: array}``.

    Args:
      log: a PredictionLog holding a classify_log or a regress_log.
      where: the record's place ("record 3 of 'file'"), for error messages.

    Raises:
      ValueError: a feature or the classes differ in length between examples.
    """
    kind = log.WhichOneof("log_type")
    entry = getattr(log, kind)
    inputs = _features(entry.request.input, where)
    if kind == "classify_log":
        rows = [[c.score for c in result.classes]
                for result in entry.response.result.classifications]
        return inputs, _output(CLASSIFY_OUTPUT, rows, where)
    values = [[regression.value] for regression in entry.response.result.regressions]
    outputs = _output(REGRESS_OUTPUT, values, where)
    return inputs, {key: value[:, 0] for key, value in outputs.items()}


def _features(input_proto, where):
    kind = input_proto.WhichOneof("kind")
    if kind is None:
        return {}
    examples = getattr(input_proto, kind).examples
    context = (dict(input_proto.example_list_with_context.context.features.feature)
               if kind == "example_list_with_context" else {})
    rows = {}
    for example in examples:
        for key, feature in {**context, **example.features.feature}.items():
            values = _numbers(feature)
            if values is not None:
                rows.setdefault(key, []).append(values)
    inputs = {}
    for key, values in rows.items():
        if len(values) != len(examples) or len({len(v) for v in values}) > 1:
            raise ValueError(f"Feature {key!r} has a different number of values in some "
                             f"examples of {where} (or is missing from some); the monitor "
                             "compares features with one length per model.")
        inputs[key] = np.stack(values)
    return inputs


def _numbers(feature):
    kind = feature.WhichOneof("kind")
    if kind == "float_list":
        return np.asarray(feature.float_list.value, np.float32)
    if kind == "int64_list":
        return np.asarray(feature.int64_list.value, np.int64)
    return None


def _output(name, rows, where):
    if not rows:
        return {}
    if len({len(row) for row in rows}) > 1:
        raise ValueError(f"The response of {where} lists a different number of classes per "
                         "example; the monitor compares one class list per model.")
    return {name: np.asarray(rows, np.float32)}
