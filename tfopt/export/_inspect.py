"""inspect_tflite(): what a .tflite file holds, read from its flatbuffer without running it."""

from tensorflow.lite.python import schema_py_generated as _schema

from tfopt.export import _verify

_OP_NAMES = {code: name for name, code in vars(_schema.BuiltinOperator).items()
             if not name.startswith("_")}
_TYPE_NAMES = {code: name.lower() for name, code in vars(_schema.TensorType).items()
               if not name.startswith("_")}
# What an integer-only int8 file may hold: int8 activations and weights, int32 biases
# and shape arithmetic.
_INT8_FILE_TYPES = {"int8", "int32"}


def inspect_tflite(path):
    """What a `.tflite` file holds: its inputs, outputs, ops and tensor types.

    Reads the file's flatbuffer (nothing runs), so it also answers for files
    LiteRT cannot load, e.g. ones that need Select TF ops. It checks the
    promise of an integer-only file: int8 inputs and outputs, only int8 and
    int32 tensors (weights, activations, biases, shape arithmetic) and only
    builtin ops, neither Select TF ("Flex") nor custom ones.

    Args:
      path: the `.tflite` file.

    Returns:
      A dict with `inputs` and `outputs` (lists of ``(name, dtype)`` of the
      main subgraph, dtype names such as "int8" or "float32"), `ops` (sorted
      operator names: builtin ones as TFLite names them, e.g. "CONV_2D";
      others by their custom code, e.g. "FlexAddV2"), `tensor_dtypes` (sorted
      dtype names of the tensors the ops read or write, in every subgraph),
      `builtin_only` (bool) and `fully_int8` (bool: int8 inputs and outputs,
      int8/int32 tensors only, builtin ops only).

    Raises:
      TypeError: `path` is not a path.
      ValueError: no file at `path`, or not a TFLite file.

    Example:
      >>> export.tflite(qat_model, "model.tflite", mode="int8")
      >>> export.inspect_tflite("model.tflite")["fully_int8"]
      True
    """
    _verify.validate_tflite_file(path, "inspect_tflite")
    with open(path, "rb") as stream:
        model = _schema.ModelT.InitFromObj(_schema.Model.GetRootAsModel(stream.read(), 0))
    # The operator codes the subgraphs' operators use (the file's table may list more).
    codes = {operator.opcodeIndex for subgraph in model.subgraphs
             for operator in subgraph.operators}
    ops, builtin_only = set(), True
    for index in codes:
        code = model.operatorCodes[index]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        if builtin == _schema.BuiltinOperator.CUSTOM:
            ops.add((code.customCode or b"").decode("utf-8", "replace") or "CUSTOM")
            builtin_only = False
        else:
            ops.add(_OP_NAMES.get(builtin, f"BUILTIN_{builtin}"))
    main = model.subgraphs[0]

    def ends(indices):
        return [(_name(main.tensors[i]), _TYPE_NAMES[main.tensors[i].type]) for i in indices]

    used = set()
    for subgraph in model.subgraphs:
        for operator in subgraph.operators:
            for index in [*(operator.inputs if operator.inputs is not None else []),
                          *(operator.outputs if operator.outputs is not None else [])]:
                if index >= 0:  # -1 marks an optional input left out
                    used.add(_TYPE_NAMES[subgraph.tensors[index].type])
    inputs, outputs = ends(main.inputs), ends(main.outputs)
    figures = {"inputs": inputs, "outputs": outputs, "ops": sorted(ops),
               "tensor_dtypes": sorted(used), "builtin_only": builtin_only}
    figures["fully_int8"] = (
        figures["builtin_only"] and used <= _INT8_FILE_TYPES
        and all(dtype == "int8" for _, dtype in inputs + outputs))
    return figures


def _name(tensor):
    return (tensor.name or b"").decode("utf-8", "replace")  # flatbuffer strings are bytes
