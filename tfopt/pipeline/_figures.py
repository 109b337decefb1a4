"""A stage's files and figures: model.keras, model.tflite and figures.json in its directory.

The figures are those of the report (tfopt/pipeline/_report.py): size of the
.keras and TFLite files, raw and gzipped; Keras and TFLite accuracy on the
test split; how often the TFLite file picks the float model's class; single-
thread LiteRT latency at batch 1; parameters, MFLOPs and per-layer channels
and sparsity. Float stages are measured as float32 TFLite files; the qat
stage as its int8 file, converted from the trained QAT model without data.
"""

import json
import os
import shutil
import time

import numpy as np

from tfopt import export
from tfopt import measure
from tfopt import pruning
from tfopt import quantization

MODEL_FILE = "model.keras"
TFLITE_FILE = "model.tflite"
FIGURES_FILE = "figures.json"
_LATENCY_RUNS = 100


def write_stage(directory, stage, name, model, plain, teacher, test, epochs, seconds):
    """Writes the stage's files into `directory` (a staging path) and returns its figures.

    Args:
      directory: where the files go; created here.
      stage: the stage's directory name, "NN-name".
      name: the stage's name ("float", "distill", ...).
      model: the stage's model as trained (QAT for the qat stage).
      plain: the same model without quantization wrappers (for parameters,
        FLOPs and layers; `model` itself for float stages).
      teacher: the float model, whose classes `agreement` compares with.
      test: ``(x, y)`` the held-out test split.
      epochs: training epochs the stage ran.
      seconds: the stage's training wall time; measuring adds to it.
    """
    began = time.perf_counter()
    os.makedirs(directory)
    model_path = os.path.join(directory, MODEL_FILE)
    model.save(model_path)
    keras_bytes, keras_gzip = measure.file_size(model_path)
    tflite_path = os.path.join(directory, TFLITE_FILE)
    export.tflite(model, tflite_path, mode="int8" if name == "qat" else "float32")
    figures = {
        "stage": stage, "name": name, "epochs": epochs,
        "parameters": int(plain.count_params()),
        "mflops": pruning.count_flops(plain) / 1e6,
        "keras_bytes": keras_bytes, "keras_gzip_bytes": keras_gzip,
        **_measured(model, tflite_path, teacher, test),
        "layers": layers(plain),
    }
    figures["wall_seconds"] = round(seconds + time.perf_counter() - began, 2)
    _write_figures(directory, figures)
    return figures


def remeasure(source, directory, teacher, test):
    """Copies stage directory `source` into `directory` (a staging path), measured on `test`.

    What the files are (parameters, FLOPs, layers) and how they were trained
    (epochs, wall time) stay the source's; what `write_stage` measures on the
    test split is measured again. Returns the new figures.
    """
    figures = read_figures(source)
    os.makedirs(directory)
    for name in (MODEL_FILE, TFLITE_FILE):
        shutil.copyfile(os.path.join(source, name), os.path.join(directory, name))
    model = quantization.load_model(os.path.join(directory, MODEL_FILE), compile=False)
    figures.update(_measured(model, os.path.join(directory, TFLITE_FILE), teacher, test))
    _write_figures(directory, figures)
    return figures


def _measured(model, tflite_path, teacher, test):
    """What is measured on `test`: TFLite sizes, Keras and TFLite accuracy, agreement, latency."""
    x, y = test
    tflite = export.verify_tflite(tflite_path, x, y, reference=teacher,
                                  latency_runs=_LATENCY_RUNS)
    keras_predictions = np.argmax(model.predict(x, batch_size=256, verbose=0), axis=-1)
    return {"tflite_bytes": tflite["bytes"], "tflite_gzip_bytes": tflite["gzip_bytes"],
            "keras_accuracy": float(np.mean(keras_predictions == np.asarray(y))),
            "tflite_accuracy": float(tflite["accuracy"]),
            "agreement": float(tflite["agreement"]),
            "latency_ms": float(tflite["latency_ms"])}


def _write_figures(directory, figures):
    with open(os.path.join(directory, FIGURES_FILE), "w", encoding="utf-8") as stream:
        json.dump(figures, stream, indent=2, sort_keys=True)


def read_figures(directory):
    with open(os.path.join(directory, FIGURES_FILE), encoding="utf-8") as stream:
        return json.load(stream)


def layers(model):
    """Per weighted layer: name, type, output channels (or None), share of zero kernel weights."""
    found = []
    for layer in model.layers:
        kernel = getattr(layer, "kernel", None)
        if kernel is None:
            kernel = getattr(layer, "depthwise_kernel", None)
        if kernel is None:
            continue
        values = np.asarray(kernel.numpy())
        channels = getattr(layer, "filters", None) or getattr(layer, "units", None)
        found.append({"name": layer.name, "type": type(layer).__name__,
                      "channels": int(channels) if channels else None,
                      "sparsity": float(np.mean(values == 0)) if values.size else 0.0})
    return found
