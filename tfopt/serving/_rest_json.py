"""Status and metadata answers written as TF Serving's REST handler writes them.

Both are protobuf JSON (``MessageToJsonString`` with ``add_whitespace`` and
``always_print_primitive_fields``): int64 as strings, enums by name, unset
fields printed. Metadata keeps proto field names and is pieced together from
the model spec and the SignatureDefMap (``http_rest_api_util.cc`` ToJsonString).
"""

from google.protobuf import json_format

# protobuf's C++ printer indents by one space with add_whitespace.
_INDENT = 1


def _json(message, preserve_names):
    return json_format.MessageToJson(message, preserving_proto_field_name=preserve_names,
                                     indent=_INDENT, always_print_fields_with_no_presence=True)


def status_json(response):
    """A `GetModelStatusResponse` as the status endpoint's body."""
    return _json(response, preserve_names=False) + "\n"


def metadata_json(model_name, version, signature_def_map):
    """The metadata endpoint's body: the served version's model spec and its signatures.

    Args:
      model_name: the model's name.
      version: the served version (an int).
      signature_def_map: a `tensorflow.serving.SignatureDefMap`.
    """
    # pylint: disable=import-outside-toplevel
    from tensorflow_serving.apis import model_pb2

    spec = model_pb2.ModelSpec(name=model_name)
    spec.version.value = version
    return ("{\n" + '"model_spec":' + _json(spec, True) + ",\n" + '"metadata": {'
            + '"signature_def": ' + _json(signature_def_map, True) + "}\n" + "}\n")
