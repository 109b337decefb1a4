"""Classify and regress requests in TF Serving's JSON: tf.Example features in, results out.

A body is ``{"signature_name"?, "context"?: {feature: value | [values]},
"examples": [{feature: value | [values]}, ...]}``. Each JSON value picks the
feature's list by its own type, as ``FillClassifyRegressRequestFromJson``
(``tensorflow_serving/util/json_tensor.cc``) does: a JSON float goes to
float_list (cast to float32), an integer to int64_list (so ``80`` is not a
float feature: send ``80.0``), a bool to int64 0/1, a string or ``{"b64": ...}``
to bytes_list. tf.Example protos need TensorFlow, imported on first use.
"""

import base64
import dataclasses
import json

import numpy as np

from tfopt.serving import _json_client
from tfopt.serving import _json_tensor as jt
from tfopt.serving._json_writer import debug_string, format_decimal

_LIST_NAMES = {"bytes_list": "bytes", "float_list": "float", "int64_list": "int64", None: "UNKNOWN"}


@dataclasses.dataclass
class ExamplesRequest:
    """A parsed classify or regress body.

    Attributes:
      examples: the ``tf.train.Example`` protos, one per entry of ``examples``.
      context: the ``context`` Example, or None.
      signature_name: the body's ``signature_name``, None when it has none.
    """

    examples: list
    context: object
    signature_name: object

    def serialized(self):
        """Each example serialized as TF Serving feeds it: context bytes, then example bytes.

        Protobuf merges concatenated messages, so an example's feature overrides
        the context's feature of the same name.
        """
        head = self.context.SerializeToString() if self.context is not None else b""
        return [head + example.SerializeToString() for example in self.examples]


def _add_value(value, name, feature):
    """Appends one JSON value to `feature`, choosing its list by the JSON type (AddValueToFeature)."""
    if value is None or isinstance(value, list) or (isinstance(value, dict)
                                                    and not jt.is_b64(value)):
        raise jt.JsonTensorError(f"Feature: {name} has element with unexpected JSON type: "
                                 f"{jt.json_type(value)}")
    if value is True or value is False:
        kind, item = "int64_list", int(value)
    elif isinstance(value, dict):
        kind, item = "bytes_list", None
    elif isinstance(value, str):
        kind, item = "bytes_list", value.encode("utf-8", "surrogateescape")
    elif isinstance(value, float) or value < -(2**63) or value > 2**64 - 1:
        kind, item = "float_list", jt.as_double(value)  # rapidjson reads these as doubles
    elif value > 2**63 - 1:
        kind, item = "int64_list", None
    else:
        kind, item = "int64_list", value
    current = feature.WhichOneof("kind")
    if current not in (None, kind):
        raise jt.JsonTensorError(f"Unexpected element type in feature: {name} expecting type: "
                                 f"{_LIST_NAMES[current]}")
    if kind == "int64_list" and item is None:
        raise jt.JsonTensorError(f"Feature: {name} has uint64_t element. Only int64_t is "
                                 "supported.")
    if isinstance(value, dict):
        item = jt.decode_b64(value)
    if kind == "float_list":
        with np.errstate(over="ignore"):
            item = float(np.float32(item))
    getattr(feature, kind).value.append(item)


def _example(value, example_pb2, feature_pb2):
    """The tf.Example of one JSON object (MakeExampleFromJsonObject)."""
    if not isinstance(value, dict):
        raise jt.JsonTensorError(f"Example must be JSON object but got JSON {jt.json_type(value)}")
    example = example_pb2.Example()
    for name, content in value.items():
        feature = feature_pb2.Feature()
        for item in content if isinstance(content, list) else [content]:
            _add_value(item, name, feature)
        example.features.feature[name].CopyFrom(feature)
    return example


def parse_examples_request(body, method="classify"):
    """Reads a classify or regress request body as TF Serving does.

    Args:
      body: the request body, bytes or str.
      method: ``"classify"`` or ``"regress"``. Only used in messages, and TF
        Serving says "classify" for both, so messages match either way.
        Defaults to ``"classify"``.

    Returns:
      An ExamplesRequest.

    Raises:
      JsonTensorError: with TF Serving's message, for anything TF Serving rejects.
    """
    if method not in ("classify", "regress"):
        raise ValueError(f"method must be 'classify' or 'regress'; got {method!r}.")
    document = jt.parse_json(body)
    signature_name = document.get("signature_name")
    if "signature_name" in document and not isinstance(signature_name, str):
        raise jt.JsonTensorError(f"JSON Value: {debug_string(document)} not formatted "
                                 "correctly. 'signature_name' key must be a string value.")
    # pylint: disable=import-outside-toplevel
    from tensorflow.core.example import example_pb2, feature_pb2

    protos = (example_pb2, feature_pb2)
    context = _example(document["context"], *protos) if "context" in document else None
    if "examples" not in document:
        # TF Serving's text says "classify" for regress requests too.
        raise jt.JsonTensorError(f"JSON Value: {debug_string(document)} When method is "
                                 "classify, key 'examples' is expected and was not found")
    examples = document["examples"]
    if not isinstance(examples, list):
        raise jt.JsonTensorError(f"JSON Value: {debug_string(document)} Expecting 'examples' "
                                 "value to be an list/array")
    if not examples:
        raise jt.JsonTensorError(
            f"JSON Value: {debug_string(document)} 'examples' value is an empty array")
    return ExamplesRequest([_example(item, *protos) for item in examples], context,
                           signature_name)


def _feature_text(value):
    if isinstance(value, (list, tuple, np.ndarray)):
        return "[" + ", ".join(_feature_text(item) for item in value) + "]"
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_decimal(value)  # always has '.', 'e' or a word: read as a float feature
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (bytes, np.bytes_)):
        return '{"b64": "%s"}' % base64.b64encode(bytes(value)).decode("ascii")
    raise TypeError(f"feature values must be floats, ints, bools, str or bytes (or lists of "
                    f"them); got {value!r} of type {type(value).__name__}.")


def _object_text(features, argument):
    if not isinstance(features, dict) or not all(isinstance(name, str) for name in features):
        raise TypeError(f"{argument} must be a dict of feature name (str) -> value or list; "
                        f"got {features!r}.")
    return "{" + ", ".join(f"{json.dumps(name)}: {_feature_text(value)}"
                           for name, value in features.items()) + "}"


def encode_examples_request(examples, context=None, signature_name=None):
    """The JSON body of a classify or regress request.

    Args:
      examples: a non-empty list of dicts, feature name -> value or list of
        values (float -> float feature, int/bool -> int64, str/bytes -> bytes).
      context: features shared by every example, or None. Defaults to None.
      signature_name: the signature to call, or None for the default. Defaults to None.
    """
    if not isinstance(examples, (list, tuple)) or not examples:
        raise ValueError(f"examples must be a non-empty list of feature dicts; got {examples!r}.")
    if signature_name is not None and not isinstance(signature_name, str):
        raise TypeError(f"signature_name must be a str or None; got {signature_name!r}.")
    members = [] if signature_name is None else [f'"signature_name": {json.dumps(signature_name)}']
    if context is not None:
        members.append(f'"context": {_object_text(context, "context")}')
    rows = ", ".join(_object_text(example, f"examples[{index}]")
                     for index, example in enumerate(examples))
    members.append(f'"examples": [{rows}]')
    return "{" + ", ".join(members) + "}"


def decode_classify_response(body):
    """The (labels, scores) of a classify answer: [batch, n] bytes and float32 arrays."""
    results = _results(body)
    for index, row in enumerate(results):
        if not isinstance(row, list) or not all(
                isinstance(pair, list) and len(pair) == 2 for pair in row):
            raise jt.JsonTensorError(f"classification result {index} is not a list of "
                                     "[label, score] pairs")
    labels = [[pair[0] for pair in row] for row in results]
    scores = [[pair[1] for pair in row] for row in results]
    return _json_client.decode_tensor(labels, jt.STRING), _json_client.decode_tensor(
        scores, jt.FLOAT)


def decode_regress_response(body):
    """The values of a regress answer, a float32 array [batch]."""
    return _json_client.decode_tensor(_results(body), jt.FLOAT)


def _results(body):
    document = _json_client.json_document(body)
    if not isinstance(document.get("results"), list):
        raise jt.JsonTensorError(f"the response has no 'results' list: keys {sorted(document)}")
    return document["results"]
