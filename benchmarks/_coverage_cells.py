"""The cells of benchmarks/coverage.py: one feature of one library on one architecture.

Each cell builds a fresh model with `architectures.build`, runs the feature the
way a user would (a couple of training steps where the feature trains), checks
the result and returns its figures as a dict. A cell that fails raises; the
runner records the exception. `Context.phase` names the step being run, so a
cell that hangs is reported with the step it hung in.
"""

import hashlib
import logging as std_logging
import os


import numpy as np
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from ai_edge_litert.interpreter import Interpreter
from ai_edge_litert.interpreter import OpResolverType
from ai_edge_litert.interpreter import OpResolverType

from benchmarks import _common
from benchmarks import architectures
from tfopt import distillation
from tfopt import export
from tfopt import pruning
from tfopt import quantization

FEATURES = {
    "prune": "unstructured pruning 50%",
    "channels": "channel pruning 50% + shrink",
    "qat": "int8 QAT -> int8 TFLite",
    "ptq": "post-training int8 TFLite",
    "distill": "make_student(0.5) + Distiller",
    "flops": "FLOPs counted",
}
LIBRARIES = ("tfopt", "tfmot")
# tfmot has no channel pruning, students or FLOPs counter; its "flops" column is
# the TF profiler's count of the model's forward graph, the reference.
NOT_AVAILABLE = {("channels", "tfmot"), ("distill", "tfmot")}


class Context:
    """What a cell needs from the runner: sizes, a directory, a progress hook."""

    def __init__(self, batch_size, steps, representative, run_eagerly, directory, phase):
        self.batch_size, self.steps, self.representative = batch_size, steps, representative
        self.run_eagerly, self.directory, self.phase = run_eagerly, directory, phase

    def data(self, name):
        return architectures.example_batch(name, self.batch_size * self.steps)

    def calibration(self, name):
        return architectures.example_batch(name, self.representative, seed=1)[0]

    def fit(self, model, name, callbacks=()):
        x, y = self.data(name)
        architectures.compile_model(model, run_eagerly=self.run_eagerly)
        self.phase("fit")
        history = model.fit(x, y, batch_size=self.batch_size, epochs=1, verbose=0,
                            callbacks=list(callbacks), shuffle=False)
        loss = history.history["loss"][-1]
        if not np.isfinite(loss):
            raise FloatingPointError(f"training loss is {loss}")
        return model

    def path(self, stem):
        return os.path.join(self.directory, stem + ".tflite")


def _predicts(model, name, ctx):
    x, _ = ctx.data(name)
    outputs = model(x[:ctx.batch_size], training=False).numpy()
    if outputs.shape != (ctx.batch_size, architectures.NUM_CLASSES) or not np.all(
            np.isfinite(outputs)):
        raise ValueError(f"stripped model predicts shape {outputs.shape}, finite: "
                         f"{np.all(np.isfinite(outputs))}")
    return outputs


def _pruned_kernels(model):
    """Kernels (2+ dims) of a stripped model that hold zeros: (their params, zeros, per kernel)."""
    params = zeros = 0
    shares = []
    for weight in model.weights:
        value = weight.numpy()
        if value.ndim < 2 or not np.any(value == 0):
            continue
        params += value.size
        zeros += int(np.count_nonzero(value == 0))
        shares.append(float(np.mean(value == 0)))
    return params, zeros, shares


def prune(name, library, ctx):
    model = architectures.build(name)
    ctx.phase("prune")
    # frequency=1: tfmot counts the first step as step 1, so with its default of 100
    # it would not prune within a few steps (tfopt prunes at step 0 either way).
    if library == "tfopt":
        pruned = pruning.prune(model, pruning.ConstantSparsity(0.5, 0, frequency=1))
        update, strip = pruning.UpdatePruningStep(), pruning.strip
    else:
        sparsity = tfmot.sparsity.keras
        pruned = sparsity.prune_low_magnitude(model, pruning_schedule=sparsity.ConstantSparsity(
            0.5, 0, frequency=1))
        update, strip = sparsity.UpdatePruningStep(), sparsity.strip_pruning
    ctx.fit(pruned, name, [update])
    ctx.phase("strip")
    stripped = strip(pruned)
    _predicts(stripped, name, ctx)
    params, zeros, shares = _pruned_kernels(stripped)
    if not shares:
        raise ValueError("no kernel of the stripped model holds a zero")
    if not 0.45 <= zeros / params <= 0.55:
        raise ValueError(f"pruned kernels are {zeros / params:.2f} sparse, not ~0.5")
    return {"params": stripped.count_params(), "pruned_kernels": len(shares),
            "share_of_weights_pruned": params / stripped.count_params(),
            "sparsity_of_pruned_kernels": zeros / params,
            "min_kernel_sparsity": min(shares), "max_kernel_sparsity": max(shares)}


def channels(name, library, ctx):
    model = architectures.build(name)
    ctx.phase("prune")
    pruned = pruning.prune(model, pruning.ConstantSparsity(0.5, 0, frequency=1),
                           structure="channels")
    ctx.fit(pruned, name, [pruning.UpdatePruningStep()])
    ctx.phase("strip")
    stripped = pruning.strip(pruned)
    ctx.phase("shrink")
    small = pruning.shrink(pruned)
    x, _ = ctx.data(name)
    difference = float(np.max(np.abs(small(x, training=False).numpy()
                                      - stripped(x, training=False).numpy())))
    if not difference <= 1e-4:
        raise ValueError(f"shrunk outputs differ from strip's by {difference:.3g}")
    before, after = model.count_params(), small.count_params()
    return {"params_before": before, "params_after": after, "params_ratio": after / before,
            "max_abs_diff_vs_strip": difference}


def tflite_facts(content):
    """Bytes, end dtypes and float tensors of a TFLite file that loads and runs once.

    Float tensors count when an op reads or writes them. A quantized LSTM also
    holds float "intermediate" tensors that only carry scales; they are listed
    apart. The ops are read without LiteRT's default delegate, whose one
    delegate op would hide the tensors inside the part it takes over.
    """
    interpreter = Interpreter(model_content=content, experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interpreter.allocate_tensors()
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], np.zeros(detail["shape"], detail["dtype"]))
    interpreter.invoke()
    inputs = [np.dtype(d["dtype"]).name for d in interpreter.get_input_details()]
    outputs = [np.dtype(d["dtype"]).name for d in interpreter.get_output_details()]
    ops = interpreter._get_ops_details()  # LiteRT has no public list of ops
    used = {i for op in ops for i in (*op["inputs"], *op["outputs"])}
    floats = [d for d in interpreter.get_tensor_details() if np.dtype(d["dtype"]).kind == "f"]
    computed = [d["name"] for d in floats if d["index"] in used]
    return {"bytes": len(content), "input_dtypes": inputs, "output_dtypes": outputs,
            "float_tensors": len(computed), "first_float_tensors": computed[:3],
            "float_tensors_no_op_uses": len(floats) - len(computed),
            "fully_int8": not computed and outputs == ["int8"],
            "sha256": hashlib.sha256(content).hexdigest(),
            "ops_sha256": hashlib.sha256(" ".join(op["op_name"] for op in ops).encode()
                                         ).hexdigest(),
            "ops": len(ops)}


class NotInt8Error(ValueError):
    """A TFLite file that converted but kept float tensors; `figures` describes it."""

    def __init__(self, facts):
        super().__init__(f"not fully int8: outputs {facts['output_dtypes']}, "
                         f"{facts['float_tensors']} float tensors, e.g. "
                         f"{facts['first_float_tensors']}")
        self.figures = facts


def _int8_file(content):
    facts = tflite_facts(content)
    if not facts["fully_int8"]:
        raise NotInt8Error(facts)
    return facts


def _plain_int8(model, representative):
    """The int8 recipe of the TensorFlow Lite guide, one calibration example at a time."""
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: (
        [representative[i:i + 1]] for i in range(len(representative)))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    with _common.quiet():
        return converter.convert()


def _tfopt_int8(model, representative, path):
    with _common.quiet():
        export.tflite(model, path, mode="int8", representative_data=representative)
    with open(path, "rb") as f:
        return f.read()


def qat(name, library, ctx):
    model = architectures.build(name)
    representative = ctx.calibration(name)
    ctx.phase("quantize")
    if library == "tfopt":
        quantized = quantization.quantize(model, "int8", representative_data=representative)
    else:
        quantized = tfmot.quantization.keras.quantize_model(model)
    ctx.fit(quantized, name)
    ctx.phase("convert")
    if library == "tfopt":
        content = _tfopt_int8(quantized, representative, ctx.path(f"{name}-qat"))
    else:
        content = _plain_int8(quantized, representative)
    return _int8_file(content)


def ptq(name, library, ctx):
    model = architectures.build(name)
    representative = ctx.calibration(name)
    ctx.phase("convert")
    if library == "tfopt":
        content = _tfopt_int8(model, representative, ctx.path(f"{name}-ptq"))
    else:
        content = _plain_int8(model, representative)
    return _int8_file(content)


def distill(name, library, ctx):
    teacher = architectures.build(name)
    ctx.phase("make_student")
    student = distillation.make_student(teacher, width=0.5)
    if student.output_shape != teacher.output_shape:
        raise ValueError(f"student outputs {student.output_shape}, teacher "
                         f"{teacher.output_shape}")
    ctx.phase("Distiller")
    distiller = distillation.Distiller(teacher, student,
                                       teacher_outputs=architectures.OUTPUTS,
                                       student_outputs=architectures.OUTPUTS)
    x, y = ctx.data(name)
    distiller.compile(keras.optimizers.Adam(1e-3), run_eagerly=ctx.run_eagerly)
    ctx.phase("fit")
    loss = distiller.fit(x, y, batch_size=ctx.batch_size, verbose=0).history["loss"][-1]
    if not np.isfinite(loss):
        raise FloatingPointError(f"distillation loss is {loss}")
    return {"teacher_params": teacher.count_params(), "student_params": student.count_params(),
            "params_ratio": student.count_params() / teacher.count_params()}


def flops(name, library, ctx):
    model = architectures.build(name)
    ctx.phase("count")
    if library == "tfmot":
        return {"flops": profiler_flops(model)}
    collect = _Collect()
    std_logging.getLogger("absl").addHandler(collect)
    try:
        count = pruning.count_flops(model)
    finally:
        std_logging.getLogger("absl").removeHandler(collect)
    # count_flops logs each layer with weights whose cost it does not know.
    zero = [m.split("count_flops counts ")[1].split(" as 0 FLOPs")[0]
            for m in collect.messages if "as 0 FLOPs" in m]
    return {"flops": count, "layers_counted_0": zero}


class _Collect(std_logging.Handler):
    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def profiler_flops(model):
    """FLOPs of one example by the TF profiler, over the model's inference graph."""
    spec = tf.TensorSpec((1,) + tuple(model.input_shape[1:]), model.inputs[0].dtype)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return int(tf.compat.v1.profiler.profile(graph, options=options).total_float_ops)


CELLS = {"prune": prune, "channels": channels, "qat": qat, "ptq": ptq, "distill": distill,
         "flops": flops}
