"""A recipe's stages run in a directory, one after another, each written whole before the next.

A stage's directory, ``stages/NN-name/``, holds model.keras, model.tflite and
figures.json (`_figures`), written into a staging path and renamed, so it
exists whole or not at all; a stage whose directory exists is read back, not
trained. While a stage trains it backs its training up into
``stages/.backup-NN-name/`` each epoch (`_resume`) and removes the backup
once its directory is written, so a killed run continues inside the stage.
"""

import os
import shutil
import time

import tf_keras as keras
from absl import logging

from tfopt import _files
from tfopt import quantization
from tfopt.pipeline import _figures
from tfopt.pipeline import _resume
from tfopt.pipeline import _stages
from tfopt.pipeline import _strategy

STAGES_DIR = "stages"
FLOAT_STAGE = "00-float"


def stage_names(options):
    """The stage directories of a run of `options`, "00-float" first."""
    return [FLOAT_STAGE] + [f"{index:02d}-{name}"
                            for index, name in enumerate(options.recipe, start=1)]


def run_stages(output_dir, options, model, teacher, train, test, place, measured_float=None):
    """Runs (or reads back) every stage of `options.recipe` in `output_dir`; their figures.

    `place`: the run's `_strategy.Placement`.

    `measured_float`: the float stage's figures when they are measured
    elsewhere (a search's candidates share one float stage).
    """
    names = stage_names(options)
    stages = [measured_float or finish_stage(output_dir, FLOAT_STAGE, "float",
                                             lambda: (model, model, 0), model, test, place)]
    for index, name in enumerate(options.recipe, start=1):
        stage, previous_stage = names[index], names[index - 1]

        def train_stage(name=name, stage=stage, previous_stage=previous_stage, index=index):
            # Every stage starts from the previous one as saved, on a first run as on a
            # continued one; a stage that is done loads nothing.
            previous = (model if previous_stage == FLOAT_STAGE
                        else load_stage(output_dir, previous_stage))
            keras.utils.set_random_seed(options.seed + index)
            epochs = options.stage_epochs(len(train[0]))
            logging.info("tfopt.pipeline: stage %s: %d epoch(s)", stage, epochs)
            trained = _stages.run_stage(name, previous, teacher, train, options, index,
                                        place.shared(backup_dir(output_dir, stage)),
                                        callbacks=[_resume.Progress(stage)],
                                        strategy=place.strategy)
            return trained, previous if name == "qat" else trained, epochs

        stages.append(finish_stage(output_dir, stage, name, train_stage, model, test, place))
    return stages


def remeasured(output_dir, stage, source, teacher, test):
    """The candidate's stage `source` copied into the run and measured on the test split."""
    directory = os.path.join(output_dir, STAGES_DIR, stage)
    if os.path.isdir(directory):
        return _figures.read_figures(directory)
    with _files.atomic_path(directory, replace=False) as staging:
        return _figures.remeasure(source, staging, teacher, test)


def finish_stage(output_dir, stage, name, train_stage, teacher, test, place):
    """The figures of `stage`: read back when it is done, else trained, written and read.

    Under multi_worker a stage is done when every worker wrote its copy: a
    worker killed before writing trains it again, and the others with it.
    Only the chief removes a stage's backup (the backups are the chief's).
    """
    directory = os.path.join(output_dir, STAGES_DIR, stage)
    backup = backup_dir(output_dir, stage) if place.task.chief else None
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


def backup_dir(output_dir, stage):
    """Where stage `stage` backs its training up; hidden beside the stage directories."""
    return os.path.join(output_dir, STAGES_DIR, f".backup-{stage}")


def load_stage(output_dir, stage):
    path = os.path.join(output_dir, STAGES_DIR, stage, _figures.MODEL_FILE)
    return quantization.load_model(path, compile=False)
