"""Keras 3 models in export: the answers that depend on the model's Keras.

`tflite`, `verify_tflite` and `saved_model` take tf_keras and Keras 3 models
through one code path. Where the two Keras differ (how a model's inputs are
found, what makes it quantization-aware, how the converter reads it, which
layers run as loops), the code path asks this module for a Keras 3 model and
the tf_keras modules otherwise.

Facts measured with TF 2.21 and Keras 3.15 that shaped it:
  - A model is quantization-aware when its traced graph holds TensorFlow
    FakeQuant ops, which `keras.quantizers.fake_quant_with_min_max_vars`
    emits on the TensorFlow backend: the converter reads their ranges, so
    mode="int8" needs no representative data. Detecting the ops, not layer
    classes, accepts any fake-quant model.
  - Keras' own `model.quantize("int8")` layers do not convert ("'tfl.
    fully_connected' op operand #0 must be ... QI8 ... but got
    'tensor<?x16xi8>'"), so such models are refused before converting.
  - The converter reads a Keras 3 model from a SavedModel with one ``serve``
    endpoint (what `TFLiteConverter.from_keras_model` does internally).
    `from_concrete_functions` is no way round it: it cannot legalise Keras 3's
    FakeQuant ops and leaves the variables of a recurrent model unfrozen.
  - A Keras 3 LSTM, GRU or SimpleRNN is a loop (TFLite WHILE), not the fused
    LSTM op a tf_keras LSTM becomes. With a free batch size the converter
    fails on it (TensorListReserve), so it is converted with the batch fixed
    at 1; float modes then work, and quantizing the loop to int8 crashes the
    converter (a segmentation fault), so integer modes are refused unless the
    layer has ``unroll=True`` (no loop; that converts to an all-int8 file).
  - Other models keep a free batch dimension, as tf_keras ones do. In an int8
    file that can leave integer shape arithmetic (an int64 GATHER index in a
    squeeze-excite block), which the integer-only check allows: it refuses
    float tensors, not integer ones of other widths.
"""

import inspect
import re
import sys

import tensorflow as tf

# What `keras.quantizers.fake_quant_with_min_max_vars` and tf.quantization emit.
_FAKE_QUANT_OPS = frozenset({"FakeQuantWithMinMaxVars", "FakeQuantWithMinMaxVarsPerChannel",
                             "FakeQuantWithMinMaxArgs"})


def _keras():
    import keras
    return keras


def is_model(obj):
    """Whether `obj` is a Keras 3 Model (a tf_keras one is not)."""
    keras = sys.modules.get("keras")  # no Keras 3 object exists before keras is imported
    return keras is not None and isinstance(obj, keras.Model)


def validate_model(model, action):
    """Raises ValueError unless `model`, a Keras 3 Model, is built with known inputs."""
    if not model.built:
        raise ValueError(f"{action} needs a built model; {model.name!r} has no input shape yet. "
                         "Give it a keras.Input, or call it once on a batch of data.")
    input_specs(model, action)


def validate_backend(model, action):
    """Raises ValueError unless Keras runs on TensorFlow: a SavedModel is a traced TF graph."""
    import keras
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise ValueError(
            f"{action} traces {model.name!r} into a TensorFlow graph, but Keras runs on the "
            f"{backend!r} backend. Save the model (model.save('model.keras')) and export it "
            "where Keras runs on TensorFlow: KERAS_BACKEND=tensorflow, e.g. "
            "`KERAS_BACKEND=tensorflow tfopt-export --model=model.keras ...`.")


def validate_convertible(model):
    """Raises ValueError for a model Keras quantized itself (model.quantize), before converting."""
    quantized = [layer.name for layer in _all_layers(model)
                 if getattr(layer, "quantization_mode", None)]
    if quantized:
        raise ValueError(
            f"export.tflite cannot convert {model.name!r}: Keras quantized its layers "
            f"{quantized[:3]}{' and more' if len(quantized) > 3 else ''} (model.quantize), and "
            "the TFLite converter fails on Keras' int8 layers ('tfl.fully_connected' operand "
            "must be QI8). Export the float model instead (mode='int8' with "
            "representative_data quantizes it for TFLite), or train it quantization-aware "
            "with tfopt.keras3.quantization. export.saved_model takes the quantized model.")


def input_specs(model, action="export"):
    """The model's inputs as TensorSpecs with a free batch dimension.

    Named like the Input layers (a subclassed model's like its call argument).
    One TensorSpec for a single-input model, else the list or dict of them in
    the structure the model is called with, as `tfopt._data.input_specs`
    gives them for tf_keras models.
    """
    keras = _keras()
    if isinstance(model, keras.Sequential):
        structure = model.inputs[0] if model.inputs else None
    elif hasattr(model, "inputs"):  # Functional
        structure = model.input
    else:
        return _subclassed_spec(model, action)
    if structure is None:
        raise ValueError(f"{action} needs a model with a known input shape; {model.name!r} has "
                         "none yet. Give it a keras.Input.")
    return tf.nest.map_structure(lambda x: tf.TensorSpec(
        [None, *x.shape[1:]], x.dtype, name=x._keras_history.operation.name), structure)


def _subclassed_spec(model, action):
    # Keras records the shapes a subclassed model was first called with (its
    # own export reads them the same way); the dtype is the model's input dtype.
    shapes = getattr(model, "_build_shapes_dict", None) or {}
    shape = next(iter(shapes.values())) if len(shapes) == 1 else None
    if not isinstance(shape, (tuple, list)) or not all(
            d is None or isinstance(d, int) for d in shape):
        raise ValueError(
            f"{action} supports subclassed Keras 3 models called once on a single tensor; "
            f"{model.name!r} was {'never called' if not shapes else f'called with {shapes}'}. "
            "Call it on a batch of data first, or build it with the Functional API.")
    # Keras keys the shape "input_shape" whatever the argument is called: name it
    # like the argument of `call`, as a user reads it.
    arguments = list(inspect.signature(model.call).parameters)
    return tf.TensorSpec([None, *shape[1:]], model.input_dtype,
                         name=arguments[0] if arguments else "input")


def output_names(model):
    """The names of the layers giving the outputs (a Sequential's last layer), or None."""
    if isinstance(model, _keras().Sequential):
        return [model.layers[-1].name] if model.layers else None
    return getattr(model, "output_names", None)


def quantization_aware(model):
    """Whether the model's inference graph holds FakeQuant ops (it was trained for int8)."""
    specs = input_specs(model)
    function = tf.function(lambda inputs: model(inputs, training=False))
    graph = function.get_concrete_function(specs).graph
    types = {op.type for op in graph.get_operations()}
    types.update(node.op for f in graph.as_graph_def().library.function for node in f.node_def)
    return bool(types & _FAKE_QUANT_OPS)


def looped_recurrent_layers(model):
    """The RNN layers that run as a loop (all but ``unroll=True``), wrappers entered."""
    rnn = _keras().layers.RNN
    return [layer for layer in _all_layers(model)
            if isinstance(layer, rnn) and not getattr(layer, "unroll", False)]


def validate_mode(model, mode, integer_modes):
    """Raises ValueError, before converting, for an integer mode of a model with RNN loops."""
    looped = looped_recurrent_layers(model) if mode in integer_modes else []
    if looped:
        names = ", ".join(f"{layer.name!r} ({type(layer).__name__})" for layer in looped)
        raise ValueError(
            f"mode={mode!r} cannot convert the recurrent layers {names}: Keras 3 runs them as "
            "a loop (not as TFLite's fused LSTM op, as tf_keras did), and the TFLite converter "
            "crashes quantizing that loop (a segmentation fault in TF 2.21). Build them with "
            "unroll=True (short, fixed-length sequences), which converts to int8, or use "
            "mode='float32', 'dynamic' or 'float16'.")


def converter(model, directory):
    """``(converter, batch)`` for `model`, read from a SavedModel written to `directory`.

    `batch` is None (free) unless the model holds RNN loops, which convert
    only with the batch fixed, to 1.
    """
    keras = _keras()
    batch = 1 if looped_recurrent_layers(model) else None
    specs = tf.nest.map_structure(
        lambda spec: tf.TensorSpec([batch, *spec.shape[1:]], spec.dtype, name=spec.name),
        input_specs(model))
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint("serve", lambda inputs: model(inputs, training=False),
                         input_signature=[specs])
    archive.write_out(directory, verbose=False)
    return tf.lite.TFLiteConverter.from_saved_model(directory, signature_keys=["serve"]), batch


def tracked_variables(model):
    """The tf.Variables behind the model's Keras variables, for a SavedModel to track.

    Tracking the Keras variables themselves writes a SavedModel that
    TensorFlow's TF1 loader (TF Serving's) cannot restore ("Could not find
    variable"); the tf.Variables they hold restore fine.
    """
    return [variable.value for variable in model.variables]


def student(model):
    """A `keras.distillation.Distiller`'s student, the model it trained; None for other models."""
    distillation = getattr(_keras(), "distillation", None)
    if distillation is not None and isinstance(model, distillation.Distiller):
        return model.student
    return None


def final_activation(model):
    """The activation name of the layer giving the model's single output, or None if unknown.

    "softmax", "linear", "sigmoid", ... as in the layer's config; nested
    models and wrappers (TimeDistributed) are entered. None for a subclassed
    model, several outputs, or a final layer whose activation is not named.
    """
    keras = _keras()
    layer = _output_layer(model)
    while isinstance(layer, keras.Model):
        layer = _output_layer(layer)
    while isinstance(getattr(layer, "layer", None), keras.layers.Layer):
        layer = layer.layer
    if layer is None:
        return None
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    activation = layer.get_config().get("activation")
    return activation if isinstance(activation, str) else None


def _output_layer(model):
    keras = _keras()
    if isinstance(model, keras.Sequential):
        return model.layers[-1] if model.layers else None
    outputs = getattr(model, "outputs", None)
    if not outputs or len(outputs) != 1:
        return None
    operation = outputs[0]._keras_history.operation
    return operation if isinstance(operation, keras.layers.Layer) else None


def layer_name(model, scope):
    """The name of the model's layer that `scope`, a name scope in a traced graph, stands for.

    Keras 3 makes scopes unique within a graph, so the layer "dense" may
    appear as "dense_1"; a scope that names no layer is tried without its
    numeric suffix. Unknown scopes come back as they are.
    """
    names = {layer.name for layer in _all_layers(model)}
    if scope is None or scope in names:
        return scope
    base = re.sub(r"_\d+$", "", scope)
    return base if base in names else scope


def _all_layers(model):
    # Keras 3's own walk over tracked sublayers: nested models, wrappers
    # (Bidirectional's two RNNs) and the layers inside layers (attention's
    # projections), which `model.layers` does not list.
    return model._flatten_layers(include_self=False, recursive=True)
