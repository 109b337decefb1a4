"""`optimize`: the stages of a recipe run one after another, each saved before the next starts.

The output directory holds run.json (what the run was asked to do), one
directory per finished stage, ``stages/NN-name/`` (model.keras, model.tflite,
figures.json), each written whole or not at all (tfopt/pipeline/_sequence.py),
the accuracy-aware search's candidates (``candidates/``, _search.py), tfmot's
reference point (``reference/``, _tfmot_reference.py) and the report. A run
started again on the same directory continues after the last finished stage,
and inside the stage it was in from its last finished epoch
(tfopt/pipeline/_resume.py). A finished run does nothing; a run asked to do
something else there is refused unless ``overwrite=True``. Under a
distribution strategy (tfopt/pipeline/_strategy.py) the stages train on every
replica; under multi_worker every worker keeps its own copy of the run and the
chief's is the output directory itself.
"""

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import platform
import shutil

import numpy as np
from absl import logging

from tfopt import _files
from tfopt import _models
from tfopt.pipeline import _checks
from tfopt.pipeline import _recipe
from tfopt.pipeline import _report
from tfopt.pipeline import _search
from tfopt.pipeline import _sequence
from tfopt.pipeline import _strategy

RUN_FILE = "run.json"
REPORT_FILE = "report.md"
# The packages whose versions a report names, so that the run can be repeated.
_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
             "numpy")
STAGES_DIR = _sequence.STAGES_DIR
# tfmot's recipe for comparison (compare_tfmot) runs into <output_dir>/reference/tfmot/.
REFERENCE_DIR = "reference"
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
    """What a run left.

    Attributes:
      output_dir: the run's directory.
      stages: each stage's figures in order, the float stage first, measured
        on the test split.
      report: the path of report.md.
      candidates: the accuracy-aware search's candidates in the order tried,
        each the figures of its last stage on the validation split with
        "parameters_tried" and "missed" (empty without a search goal).
      missed: the search goals the result misses (empty when it meets them
        all, or without a search goal).
    """

    output_dir: str
    stages: list
    report: str
    candidates: list = dataclasses.field(default_factory=list)
    missed: list = dataclasses.field(default_factory=list)


def optimize(model, data, output_dir, recipe="auto", width=0.75, channel_fraction=0.4,
             sparsity=0.7, criterion="taylor", qat_scheme="int8_prune_preserving",
             epochs_per_stage=1, min_steps_per_stage=300, batch_size=64, temperature=2.0,
             seed=0, teacher=None, max_accuracy_drop=None, target_size_kb=None,
             target_latency_us=None, validation_data=None, compare_tfmot=False,
             overwrite=False, command=None, data_name=None, strategy="default"):
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
      min_steps_per_stage: training steps each stage gets at least: a stage
        whose epochs fall short trains more whole epochs (a few dozen steps, one
        epoch of a small data set, leave a stage far below the float model). 0
        trains exactly `epochs_per_stage`.
      batch_size: training batch size.
      temperature: the distillation temperature.
      seed: seed of weights and data order; the same seed repeats a run.
      teacher: the model every stage distills from, when not `model` (e.g. a
        larger model): a tf_keras model with `model`'s input and output shapes
        that outputs logits. Defaults to `model`. Agreement is still measured
        against `model`.
      max_accuracy_drop: the accuracy-aware search (`_search`): the largest
        drop of TFLite accuracy below the float model's allowed, in points.
        The search picks width, channel_fraction and sparsity (leave them at
        their defaults) for the smallest model within the drop, judged on a
        held-out part of the training data.
      target_size_kb: the accuracy-aware search's target gzipped TFLite size,
        in KB; alone, the search picks the most accurate model that meets it.
      target_latency_us: the same for the single-thread LiteRT latency, in
        microseconds.
      validation_data: ``(x_val, y_val)`` the search judges candidates on:
        examples `model` did not train on. Defaults to None: 10% of the
        training split held out, on which a float model that trained on all of
        it scores too well, so the search measures drops larger than they are
        and errs toward milder settings.
      compare_tfmot: also run tfmot's best recipe (80% magnitude pruning,
        then prune-preserving int8 QAT, then the TFLite converter) from `model`
        with the epochs the stages ran, and show its file as a reference point
        in the report (kept in ``reference/tfmot/``). Left out, with a
        warning, for a model tfmot's QAT cannot wrap.
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
      A search whose goals no candidate meets is not an error: the best
      candidate found is the result, and `Result.missed` names the goals.

    Example:
      >>> result = pipeline.optimize(model, ((x_train, y_train), (x_test, y_test)), "run")
      >>> result.stages[-1]["tflite_gzip_bytes"], result.stages[-1]["tflite_accuracy"]
    """
    options = _recipe.Options(recipe=recipe, width=width, channel_fraction=channel_fraction,
                              sparsity=sparsity, criterion=criterion, qat_scheme=qat_scheme,
                              epochs_per_stage=epochs_per_stage,
                              min_steps_per_stage=min_steps_per_stage, batch_size=batch_size,
                              temperature=temperature, seed=seed)
    goals = _search.Goals(max_accuracy_drop, target_size_kb, target_latency_us)
    if goals.active:
        _search.validate_searched_defaults(options)
    _models.validate_tf_keras_model(model, "pipeline.optimize")
    teacher = model if teacher is None else teacher
    if teacher is not model:
        _models.validate_tf_keras_model(teacher, "pipeline.optimize(teacher=...)")
    train, test = _checks.validate_data(data, model)
    _checks.validate_teacher(teacher, model, test)
    if validation_data is not None:
        if not goals.active:
            raise ValueError("validation_data is for the accuracy-aware search; give "
                             "max_accuracy_drop, target_size_kb or target_latency_us with it, "
                             "or leave it out.")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"validation_data must be (x_val, y_val); got "
                             f"{type(validation_data).__name__}.")
        validation_data, _ = _checks.validate_data((validation_data, validation_data), model,
                                                   names=("val", "val"))
    if not isinstance(output_dir, (str, os.PathLike)):
        raise TypeError(f"output_dir must be a path; got {output_dir!r}.")
    place = _strategy.Placement(_strategy.make(strategy), os.fspath(output_dir))
    if goals.target_latency_us is not None and place.task.workers > 1:
        # Each worker times its own files: their searches could part ways and wait forever.
        raise ValueError("target_latency_us cannot steer a multi-worker search (each worker "
                         "measures latency on its own machine); give max_accuracy_drop or "
                         "target_size_kb, or search with strategy='default' or 'mirrored'.")
    output_dir = place.run_dir
    record = {**_run_record(options, model, train, test),
              "replicas": _strategy.replicas(place.strategy),
              "strategy": _strategy.name_of(place.strategy), "workers": place.task.workers}
    if goals.active:
        record["goals"] = goals.as_dict()
    if validation_data is not None:
        record["validation_data"] = _fingerprint([np.ascontiguousarray(a).tobytes()
                                                  for a in validation_data])
    if teacher is not model:
        record["teacher"] = _model_fingerprint(teacher)
    if compare_tfmot:
        record["compare_tfmot"] = True
    _claim(output_dir, record, overwrite)

    report = os.path.join(output_dir, REPORT_FILE)
    names = _sequence.stage_names(options)
    finished = _strategy.all_workers(place.strategy, os.path.exists(report) and all(
        os.path.isdir(os.path.join(output_dir, STAGES_DIR, stage)) for stage in names))
    search = None
    if goals.active:
        stages, candidates, search = _search.run_search(output_dir, options, goals, model,
                                                        teacher, train, test, validation_data,
                                                        place)
    else:
        stages = _sequence.run_stages(output_dir, options, model, teacher, train, test, place)
        candidates = []
    missed = search["missed"] if search else []
    reference_points = {}
    if compare_tfmot:
        from tfopt.pipeline import _tfmot_reference  # pylint: disable=import-outside-toplevel
        reference_points = _tfmot_reference.reference_point(
            os.path.join(output_dir, REFERENCE_DIR, "tfmot"), model, train, test, options,
            sum(stage["epochs"] for stage in stages[1:]))
    if finished:
        logging.info("tfopt.pipeline: %s holds this run, finished: nothing to do", output_dir)
        return Result(output_dir, stages, report, candidates, missed)
    contents = {
        "command": command or _call_text(options, goals),
        "data": data_name or (f"arrays: {len(train[0])} training and {len(test[0])} test "
                              "examples"),
        "seed": options.seed, "versions": _versions(), "recipe": list(options.recipe),
        "stages": stages, "candidates": candidates, "reference_points": reference_points}
    if search:
        contents["search"] = search
    _report.write(contents, output_dir)
    logging.info("tfopt.pipeline: report in %s", report)
    return Result(output_dir, stages, report, candidates, missed)


def _call_text(options, goals):
    values = {**options.as_dict(), **{key: value for key, value in goals.as_dict().items()
                                      if value is not None}}
    arguments = ", ".join(f"{key}={value!r}" for key, value in values.items())
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
        for produced in (STAGES_DIR, _search.CANDIDATES_DIR, REFERENCE_DIR) if changed else ():
            # Another run's files: read back as done, they would stand in for this run's.
            shutil.rmtree(os.path.join(output_dir, produced), ignore_errors=True)
    _files.write_text(path, json.dumps(record, indent=2, sort_keys=True))


def _run_record(options, model, train, test):
    """What a restart must match: the options and fingerprints of the model and the data."""
    return {"options": options.as_dict(), "model": _model_fingerprint(model),
            "data": _fingerprint([np.ascontiguousarray(a).tobytes() for a in train + test])}


def _model_fingerprint(model):
    return _fingerprint([model.to_json().encode()]
                        + [np.asarray(w).tobytes() for w in model.get_weights()])


def _fingerprint(parts):
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.hexdigest()


