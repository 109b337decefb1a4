"""`optimize`: the stages of a recipe run one after another, each saved before the next starts.

The output directory holds run.json (what the run was asked to do) and one
directory per finished stage, ``stages/NN-name/`` (model.keras, model.tflite,
figures.json), each written whole or not at all. A run started again on the
same directory continues after the last finished stage, and inside the stage
it was in from its last finished epoch: a stage backs its training up into
``stages/.backup-NN-name/`` each epoch and removes the backup once its
directory is written (tfopt/pipeline/_resume.py). A finished run does
nothing; a run asked to do something else there is refused unless
``overwrite=True``. Under a distribution strategy (tfopt/pipeline/_strategy.py)
the stages train on every replica; under multi_worker every worker keeps its
own copy of the run and the chief's is the output directory itself.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil
import time

import numpy as np
import tf_keras as keras
from absl import logging

from tfopt import _files
from tfopt import _models
from tfopt import quantization
from tfopt.pipeline import _figures
from tfopt.pipeline import _recipe
from tfopt.pipeline import _report
from tfopt.pipeline import _resume
from tfopt.pipeline import _stages
from tfopt.pipeline import _strategy

RUN_FILE = "run.json"
REPORT_FILE = "report.md"
# The packages whose versions a report names, so that the run can be repeated.
_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
             "numpy")
STAGES_DIR = "stages"
FLOAT_STAGE = "00-float"
# What run.json says of where the run trains without making it another run.
_PLACEMENT = ("strategy", "workers")


class RunConflict(ValueError):
    """`output_dir` holds another run: other options, model or data.

    Attributes:
      output_dir: the directory.
      changed: what differs: some of "options", "model", "data".
    """

    def __init__(self, output_dir, changed):
        super().__init__(f"{output_dir!r} holds another run (it differs in {changed}); give "
                         "another output_dir, or overwrite=True to start over there.")
        self.output_dir = output_dir
        self.changed = changed


@dataclasses.dataclass
class Result:
    """What a run left: its directory, each stage's figures in order (float first), the report."""

    output_dir: str
    stages: list
    report: str


def optimize(model, data, output_dir, recipe="auto", width=0.5, channel_fraction=0.5,
             sparsity=0.7, criterion="taylor", qat_scheme="int8_prune_preserving",
             epochs_per_stage=1, batch_size=64, temperature=4.0, seed=0, overwrite=False,
             command=None, data_name=None, strategy="default"):
    """Makes a trained classifier small and fast in stages, each saved and measured.

    Args:
      model: the trained float tf_keras classifier (logits or probabilities over
        classes in its last axis). It teaches every stage and is not changed.
      data: ``((x_train, y_train), (x_test, y_test))``, integer class labels.
        Stages train on the first; every figure is measured on the second.
      output_dir: the run's directory (created; see the module docstring).
      recipe: "auto" (every stage) or stages from ``distill``, ``channels``,
        ``unstructured``, ``qat`` in that order, comma-separated or a list.
      width: the distilled student's width relative to `model`, in (0, 1].
      channel_fraction: the share of channels the channels stage removes.
      sparsity: the share of weights the unstructured stage zeroes.
      criterion: the channels stage's ranking: "taylor", "magnitude", "l2", "random".
      qat_scheme: "int8_prune_preserving", "int8", "binary" or "fixed4".
      epochs_per_stage: training epochs of each stage.
      batch_size: training batch size.
      temperature: the distillation temperature.
      seed: seed of weights and data order; the same seed repeats a run.
      overwrite: start over in an `output_dir` that holds a different run.
      command: the command that started the run, for the report; defaults to
        this call.
      data_name: what the data is, for the report; defaults to the arrays'
        sizes.
      strategy: where the stages train: "default" (this process), "mirrored"
        (every local device), "multi_worker" (every worker of ``TF_CONFIG``'s
        cluster; make it with `make_strategy` before loading `model`), or a
        `tf.distribute.MirroredStrategy` or `MultiWorkerMirroredStrategy` of
        the caller's (the strategies Keras' BackupAndRestore supports). Each
        training step takes `batch_size` examples in all, split among the
        replicas. A run is the same run under any strategy with as many
        replicas (run.json records the strategy and the workers); under
        multi_worker the chief writes `output_dir` and each other worker its
        own copy in ``output_dir/.workers/TYPE-INDEX``.

    Returns:
      A `Result`: the directory (this worker's copy under multi_worker) and
      every stage's figures.

    Raises:
      ValueError: bad options, data or strategy (named); `RunConflict`, a
        ValueError, when `output_dir` holds another run and `overwrite` is
        False.

    Example:
      >>> result = pipeline.optimize(model, ((x_train, y_train), (x_test, y_test)), "run")
      >>> result.stages[-1]["tflite_gzip_bytes"], result.stages[-1]["tflite_accuracy"]
    """
    options = _recipe.Options(recipe=recipe, width=width, channel_fraction=channel_fraction,
                              sparsity=sparsity, criterion=criterion, qat_scheme=qat_scheme,
                              epochs_per_stage=epochs_per_stage, batch_size=batch_size,
                              temperature=temperature, seed=seed)
    _models.validate_tf_keras_model(model, "pipeline.optimize")
    train, test = _validate_data(data, model)
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(f"output_dir must be a path; got {output_dir!r}.")
    distribution = _strategy.make(strategy)
    task = _strategy.task_of(distribution)
    # Backups stay in the chief's directory: Keras restores every worker from there.
    backups, output_dir = os.fspath(output_dir), _strategy.run_dir(os.fspath(output_dir), task)
    _claim(output_dir, {**_run_record(options, model, train, test),
                        "replicas": _strategy.replicas(distribution),
                        "strategy": _strategy.name_of(distribution), "workers": task.workers},
           overwrite)

    names = [FLOAT_STAGE] + [f"{index:02d}-{name}"
                             for index, name in enumerate(options.recipe, start=1)]
    report = os.path.join(output_dir, REPORT_FILE)
    finished = _strategy.all_workers(distribution, os.path.exists(report) and all(
        os.path.isdir(os.path.join(output_dir, STAGES_DIR, stage)) for stage in names))

    def stage_of(stage, name, train_stage):
        # The chief removes a stage's backup once its stage is written; the others
        # leave the chief's files alone.
        return _stage(output_dir, stage, name, train_stage, model, test, distribution,
                      _backup_dir(backups, stage) if task.chief else None)

    stages = [stage_of(FLOAT_STAGE, "float", lambda: (model, model, 0))]
    for index, name in enumerate(options.recipe, start=1):
        stage, previous_stage = names[index], names[index - 1]

        def train_stage(name=name, stage=stage, previous_stage=previous_stage, index=index):
            # Every stage starts from the previous one as saved, on a first run as on a
            # continued one; a stage that is done loads nothing.
            previous = model if previous_stage == FLOAT_STAGE else _load(output_dir,
                                                                          previous_stage)
            keras.utils.set_random_seed(options.seed + index)
            logging.info("tfopt.pipeline: stage %s: %d epoch(s)", name, options.epochs_per_stage)
            trained = _stages.run_stage(name, previous, model, train, options, index,
                                        _backup_dir(backups, stage),
                                        callbacks=[_resume.Progress(stage)],
                                        strategy=distribution)
            return trained, previous if name == "qat" else trained, options.epochs_per_stage

        stages.append(stage_of(stage, name, train_stage))
    if finished:
        logging.info("tfopt.pipeline: %s holds this run, finished: nothing to do", output_dir)
        return Result(output_dir, stages, report)
    _report.write({
        "command": command or _call_text(options),
        "data": data_name or (f"arrays: {len(train[0])} training and {len(test[0])} test "
                              "examples"),
        "seed": options.seed, "versions": _versions(), "recipe": list(options.recipe),
        "stages": stages, "candidates": [], "reference_points": {}}, output_dir)
    logging.info("tfopt.pipeline: report in %s", report)
    return Result(output_dir, stages, report)


def _call_text(options):
    arguments = ", ".join(f"{key}={value!r}" for key, value in options.as_dict().items())
    return f"tfopt.pipeline.optimize(model, data, output_dir, {arguments})"


def _versions():
    from tfopt import __version__  # pylint: disable=import-outside-toplevel
    versions = {"tfopt": __version__, "python": platform.python_version()}
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return versions


def _stage(output_dir, stage, name, train_stage, teacher, test, strategy, backup):
    """The figures of `stage`: read back when it is done, else trained, written and read.

    Under multi_worker a stage is done when every worker wrote its copy: a
    worker killed before writing trains it again, and the others with it.
    """
    directory = os.path.join(output_dir, STAGES_DIR, stage)
    if _strategy.all_workers(strategy, os.path.isdir(directory)):
        logging.info("tfopt.pipeline: stage %s is done (%s)", stage, directory)
        # A run killed between writing the stage and removing its backup left it.
        _remove(backup)
        return _figures.read_figures(directory)
    shutil.rmtree(directory, ignore_errors=True)  # a worker's copy the others lack
    began = time.perf_counter()
    trained, plain, epochs = train_stage()
    with _files.atomic_path(directory, replace=False) as staging:
        figures = _figures.write_stage(staging, stage, name, trained, plain, teacher, test,
                                       epochs, time.perf_counter() - began)
    # The stage's files are whole: its training backup (if it trained) is not needed.
    _remove(backup)
    logging.info("tfopt.pipeline: stage %s: TFLite %d bytes gzipped, accuracy %.4f", stage,
                 figures["tflite_gzip_bytes"], figures["tflite_accuracy"])
    return figures


def _remove(backup):
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)


def _backup_dir(output_dir, stage):
    """Where stage `stage` backs its training up; hidden beside the stage directories."""
    return os.path.join(output_dir, STAGES_DIR, f".backup-{stage}")


def _load(output_dir, stage):
    path = os.path.join(output_dir, STAGES_DIR, stage, _figures.MODEL_FILE)
    return quantization.load_model(path, compile=False)


def _claim(output_dir, record, overwrite):
    """Writes run.json for a new run; checks it for a continued one.

    The strategy and the number of workers are recorded but do not make
    another run: the replicas do (each trains on its share of a batch, and
    BatchNormalization normalizes each share by itself), and a run of one
    replica is the same under "default" and "mirrored".
    """
    path = os.path.join(output_dir, RUN_FILE)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as stream:
            existing = json.load(stream)
        existing.setdefault("replicas", 1)  # run.json of runs before strategies
        if existing == record:
            return
        changed = sorted(key for key in set(existing) | set(record)
                         if key not in _PLACEMENT and existing.get(key) != record.get(key))
        if changed and not overwrite:
            raise RunConflict(output_dir, changed)
        if changed:
            shutil.rmtree(os.path.join(output_dir, STAGES_DIR), ignore_errors=True)
    _files.write_text(path, json.dumps(record, indent=2, sort_keys=True))


def _run_record(options, model, train, test):
    """What a restart must match: the options and fingerprints of the model and the data."""
    return {"options": options.as_dict(), "model": _fingerprint(
        [model.to_json().encode()] + [np.asarray(w).tobytes() for w in model.get_weights()]),
            "data": _fingerprint([np.ascontiguousarray(a).tobytes() for a in train + test])}


def _fingerprint(parts):
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


def _validate_data(data, model):
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise ValueError("data must be ((x_train, y_train), (x_test, y_test)); got "
                         f"{type(data).__name__}.") from None
    classes = model.output_shape[-1]
    split = {}
    for where, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
        x, y = np.asarray(x), np.asarray(y)
        if x.shape[1:] != tuple(model.input_shape[1:]):
            raise ValueError(f"data: x_{where} has examples of shape {x.shape[1:]}; the model "
                             f"takes {tuple(model.input_shape[1:])}.")
        if y.shape != (len(x),) or not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"data: y_{where} must be {len(x)} integer class ids (shape "
                             f"({len(x)},)); got shape {y.shape}, dtype {y.dtype}.")
        if len(y) and (y.min() < 0 or y.max() >= classes):
            raise ValueError(f"data: y_{where} holds classes {y.min()}..{y.max()}; the model "
                             f"has {classes} outputs (0..{classes - 1}).")
        if not len(x):
            raise ValueError(f"data: x_{where} holds no examples.")
        split[where] = (x.astype(np.float32), y)
    return split["train"], split["test"]
