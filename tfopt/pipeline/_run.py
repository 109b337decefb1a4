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
from tfopt.pipeline import _search
from tfopt.pipeline import _stages
from tfopt.pipeline import _strategy

RUN_FILE = "run.json"
REPORT_FILE = "report.md"
# The packages whose versions a report names, so that the run can be repeated.
_PACKAGES = ("tensorflow", "tf-keras", "tensorflow-model-optimization", "ai-edge-litert",
             "numpy")
STAGES_DIR = "stages"
REFERENCE_DIR = "reference"
# tfmot's recipe prunes this share of weights (its documented example's final sparsity).
_TFMOT_SPARSITY = 0.8
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
        _validate_searched_defaults(options)
    _models.validate_tf_keras_model(model, "pipeline.optimize")
    teacher = model if teacher is None else teacher
    if teacher is not model:
        _models.validate_tf_keras_model(teacher, "pipeline.optimize(teacher=...)")
    train, test = _validate_data(data, model)
    validate_teacher(teacher, model, test)
    if validation_data is not None:
        if not goals.active:
            raise ValueError("validation_data is for the accuracy-aware search; give "
                             "max_accuracy_drop, target_size_kb or target_latency_us with it, "
                             "or leave it out.")
        if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
            raise ValueError(f"validation_data must be (x_val, y_val); got "
                             f"{type(validation_data).__name__}.")
        validation_data, _ = _validate_data((validation_data, validation_data), model,
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
    names = stage_names(options)
    finished = _strategy.all_workers(place.strategy, os.path.exists(report) and all(
        os.path.isdir(os.path.join(output_dir, STAGES_DIR, stage)) for stage in names))
    search = None
    if goals.active:
        stages, candidates, search = _search_stages(output_dir, options, goals, model, teacher,
                                                    train, test, validation_data, place)
    else:
        stages = _run_stages(output_dir, options, model, teacher, train, test, place)
        candidates = []
    missed = search["missed"] if search else []
    reference_points = {}
    if compare_tfmot:
        reference_points = _tfmot_point(output_dir, model, train, test, options,
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


def _tfmot_point(output_dir, model, train, test, options, epochs):
    """{label: figures} of tfmot's recipe at `epochs`, run once into reference/tfmot/."""
    label = f"tfmot prune {_TFMOT_SPARSITY:.0%} + PQAT"
    directory = os.path.join(output_dir, REFERENCE_DIR, "tfmot")
    if os.path.isdir(directory):
        return {label: _figures.read_figures(directory)}
    from tfopt.pipeline import _tfmot_reference  # pylint: disable=import-outside-toplevel
    logging.info("tfopt.pipeline: tfmot's recipe for comparison: %d epoch(s)", max(2, epochs))
    try:
        with _files.atomic_path(directory, replace=False) as staging:
            figures = _tfmot_reference.tfmot_recipe(
                model, train, test, max(2, epochs), staging, batch_size=options.batch_size,
                sparsity=_TFMOT_SPARSITY, seed=options.seed)
            figures.pop("tflite_path")
            with open(os.path.join(staging, _figures.FIGURES_FILE), "w",
                      encoding="utf-8") as stream:
                json.dump(figures, stream, indent=2, sort_keys=True)
    except ValueError as error:  # a model tfmot cannot quantize: no reference point
        logging.warning("tfopt.pipeline: no tfmot reference point: %s", error)
        return {}
    return {label: figures}


def stage_names(options):
    """The stage directories of a run of `options`, "00-float" first."""
    return [FLOAT_STAGE] + [f"{index:02d}-{name}"
                            for index, name in enumerate(options.recipe, start=1)]


def _run_stages(output_dir, options, model, teacher, train, test, place,
                measured_float=None):
    """Runs (or reads back) every stage of `options.recipe` in `output_dir`; their figures.

    `place`: the run's `_strategy.Placement`.

    `measured_float`: the float stage's figures when they are measured
    elsewhere (a search's candidates share one float stage).
    """
    names = stage_names(options)
    stages = [measured_float or _stage(output_dir, FLOAT_STAGE, "float",
                                       lambda: (model, model, 0), model, test, place)]
    for index, name in enumerate(options.recipe, start=1):
        stage, previous_stage = names[index], names[index - 1]

        def train_stage(name=name, stage=stage, previous_stage=previous_stage, index=index):
            # Every stage starts from the previous one as saved, on a first run as on a
            # continued one; a stage that is done loads nothing.
            previous = model if previous_stage == FLOAT_STAGE else _load(output_dir,
                                                                          previous_stage)
            keras.utils.set_random_seed(options.seed + index)
            epochs = options.stage_epochs(len(train[0]))
            logging.info("tfopt.pipeline: stage %s: %d epoch(s)", stage, epochs)
            trained = _stages.run_stage(name, previous, teacher, train, options, index,
                                        place.shared(_backup_dir(output_dir, stage)),
                                        callbacks=[_resume.Progress(stage)],
                                        strategy=place.strategy)
            return trained, previous if name == "qat" else trained, epochs

        stages.append(_stage(output_dir, stage, name, train_stage, model, test, place))
    return stages


def _search_stages(output_dir, options, goals, model, teacher, train, test, validation,
                   place):
    """The accuracy-aware search (`_search`): its chosen candidate's stages, measured on test.

    Returns ``(stages, candidates, search)``: the chosen candidate's stages
    re-measured on the test split, every candidate tried (its last stage on
    the validation split, with "parameters_tried"), and what the report says
    of the search.
    """
    held_out = validation is None
    if held_out:
        train, validation = _search.validation_split(train, options.seed)
        logging.warning("tfopt.pipeline: the search judges candidates on %d training examples "
                        "held out of the stages' training; if the float model trained on "
                        "them, it scores too well there and the search errs toward milder "
                        "settings (give validation data the model did not train on)",
                        len(validation[0]))
    settings = _search.rungs(options.recipe)
    root = os.path.join(output_dir, _search.CANDIDATES_DIR)
    float_validation = _stage(root, FLOAT_STAGE, "float", lambda: (model, model, 0), model,
                              validation, place)
    runs = {}

    def evaluate(index):
        directory = os.path.join(root, _candidate_name(index, settings[index]))
        logging.info("tfopt.pipeline: candidate %d of at most %d: %s", index + 1,
                     len(settings), _search_text(settings[index]))
        runs[index] = _run_stages(directory, dataclasses.replace(options, **settings[index]),
                                  model, teacher, train, validation, place, float_validation)
        return runs[index][-1]

    chosen, missed, tried = _search.search(evaluate, settings, goals,
                                           float_validation["tflite_accuracy"])
    chosen_dir = os.path.join(root, _candidate_name(chosen, settings[chosen]))
    stages = [_stage(output_dir, FLOAT_STAGE, "float", lambda: (model, model, 0), model, test,
                     place)]
    for figures in runs[chosen][1:]:
        stage = figures["stage"]
        stages.append(_remeasured(output_dir, stage, os.path.join(chosen_dir, STAGES_DIR, stage),
                                  model, test))
    candidates = [{**runs[index][-1], "parameters_tried": settings[index],
                   "missed": goals.missed(runs[index][-1], float_validation["tflite_accuracy"])}
                  for index in tried]
    if missed:
        logging.warning("tfopt.pipeline: no candidate met %s; the best found (%s) is the run's "
                        "result", ", ".join(_goal_text(goals, name) for name in missed),
                        _search_text(settings[chosen]))
    search = {"goals": goals.as_dict(), "chosen": settings[chosen], "missed": missed,
              "validation_examples": len(validation[0]),
              "validation": ("held out of the training data" if held_out
                             else "validation data given to the run"),
              "float_validation_accuracy": float_validation["tflite_accuracy"],
              "candidates_tried": len(tried), "ladder": settings}
    return stages, candidates, search


def _candidate_name(index, setting):
    return f"{index:02d}-" + "-".join(f"{name}{value:g}" for name, value in setting.items())


def _search_text(setting):
    return ", ".join(f"{name}={value:g}" for name, value in setting.items()) or "the recipe"


def _goal_text(goals, name):
    return f"{name}={getattr(goals, name):g}"


def _remeasured(output_dir, stage, source, teacher, test):
    """The candidate's stage `source` copied into the run and measured on the test split."""
    directory = os.path.join(output_dir, STAGES_DIR, stage)
    if os.path.isdir(directory):
        return _figures.read_figures(directory)
    with _files.atomic_path(directory, replace=False) as staging:
        return _figures.remeasure(source, staging, teacher, test)


def _validate_searched_defaults(options):
    defaults = _recipe.Options()
    given = [f"{name}={getattr(options, name)!r}" for name in _search.PARAMETERS
             if getattr(options, name) != getattr(defaults, name)]
    if given:
        raise ValueError(f"{', '.join(given)}: the accuracy-aware search (max_accuracy_drop, "
                         f"target_size_kb, target_latency_us) chooses "
                         f"{', '.join(_search.PARAMETERS)} itself; leave them at their "
                         "defaults, or give no search goal to run with your values.")


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


def _stage(output_dir, stage, name, train_stage, teacher, test, place):
    """The figures of `stage`: read back when it is done, else trained, written and read.

    Under multi_worker a stage is done when every worker wrote its copy: a
    worker killed before writing trains it again, and the others with it.
    Only the chief removes a stage's backup (the backups are the chief's).
    """
    directory = os.path.join(output_dir, STAGES_DIR, stage)
    backup = _backup_dir(output_dir, stage) if place.task.chief else None
    if _strategy.all_workers(place.strategy, os.path.isdir(directory)):
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


def validate_teacher(teacher, model, test):
    """Raises ValueError unless `teacher` takes `model`'s inputs and gives its classes.

    A teacher the pipeline cannot see into (a wrapped SavedModel) must give
    logits: its rows may not look like probabilities.
    """
    if teacher is model:
        return
    if tuple(teacher.input_shape[1:]) != tuple(model.input_shape[1:]) or \
            tuple(teacher.output_shape[1:]) != tuple(model.output_shape[1:]):
        raise ValueError(f"teacher {teacher.name!r} maps {tuple(teacher.input_shape[1:])} to "
                         f"{tuple(teacher.output_shape[1:])}; the model maps "
                         f"{tuple(model.input_shape[1:])} to {tuple(model.output_shape[1:])}. "
                         "Give a teacher of the same task.")
    if _stages.outputs_kind(teacher) == "probabilities":
        return
    outputs = np.asarray(teacher.predict(test[0][:32], verbose=0))
    if outputs.min() >= 0 and np.allclose(outputs.sum(axis=-1), 1, atol=1e-3):
        raise ValueError(f"teacher {teacher.name!r} outputs what look like probabilities (its "
                         "rows are non-negative and sum to 1), but does not end in a softmax "
                         "layer the stages could see; give a teacher that outputs logits.")


def _validate_data(data, model, names=("train", "test")):
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError):
        raise ValueError("data must be ((x_train, y_train), (x_test, y_test)); got "
                         f"{type(data).__name__}.") from None
    classes = model.output_shape[-1]
    split = {}
    for where, x, y in ((names[0], x_train, y_train), (names[1], x_test, y_test)):
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
    return split[names[0]], split[names[1]]
