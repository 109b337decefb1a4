"""What one tfopt-export run writes, in an order that leaves nothing partial behind.

1. Each TFLite file is converted into a hidden staging directory beside its
   final path (`tfopt._files.atomic_path`); the conversions are the steps
   most likely to fail, and nothing visible exists yet.
2. The SavedModel version is written; `export.saved_model` is atomic itself.
3. The configs are written (models.config last, atomically).
4. Only then do the TFLite files move into place (leaving the staging blocks).

A failure in 1 or 2 leaves nothing. A failure in 3 removes the new version
directory and any config file the run created, and the message says so. The
directories the run created on the way (the export root, the base path, the
TFLite directory) are removed again when they are left empty.
"""

import contextlib
import dataclasses
import os
import shutil

from tfopt import _files
from tfopt import export
from tfopt.cli import _app
from tfopt.cli import _export_table


@dataclasses.dataclass
class Plan:
    """Everything a run writes, checked: the model, the data and where each file goes.

    Attributes:
      model: the Keras model to export, as a server runs it.
      base_path: the model's TF Serving base path.
      tflite: ``[(format name, mode, final path)]`` in the order given.
      saved_model: whether to write the SavedModel (and the configs).
      version, overwrite, classify: the SavedModel's --version, --overwrite, --classify.
      calibration: representative inputs for integer TFLite modes, or None.
      verify: ``(x, y)`` to measure every export on, or None.
      warmup: inputs to write as warmup requests, or None.
      configs: the `_export_configs.ConfigUpdate` to write with the SavedModel.
    """

    model: object
    base_path: str
    tflite: list
    saved_model: bool
    version: int = None
    overwrite: bool = False
    classify: bool = False
    calibration: object = None
    verify: tuple = None
    warmup: object = None
    configs: object = None


def write(plan):
    """Writes what `plan` lists; returns the table rows (SavedModel first)."""
    directories = [plan.base_path] + [os.path.dirname(path) for _, _, path in plan.tflite]
    rows = []
    with _empty_directories_removed_on_failure(directories), contextlib.ExitStack() as staged:
        for name, mode, final in plan.tflite:
            temporary = staged.enter_context(_files.atomic_path(final))
            rows.append(_tflite(plan, name, mode, temporary, final))
        if plan.saved_model:
            rows.insert(0, _saved_model_and_configs(plan))
    return rows


def _tflite(plan, name, mode, temporary, final):
    try:
        export.tflite(plan.model, temporary, mode=mode, representative_data=plan.calibration)
    except ValueError as error:
        raise _app.Failure(f"{name}: {error} Nothing was written.") from error
    figures = {}
    if plan.verify is not None:
        figures = export.verify_tflite(temporary, *plan.verify, reference=plan.model,
                                       latency_runs=0)
    return _export_table.row(name, temporary, figures, shown_path=final)


def _saved_model_and_configs(plan):
    try:
        version_dir = export.saved_model(
            plan.model, plan.base_path, version=plan.version, warmup_inputs=plan.warmup,
            signatures="classify" if plan.classify else None, overwrite=plan.overwrite)
    except ValueError as error:
        raise _app.Failure(f"saved_model: {error} Nothing was written.") from error
    with _removed_on_failure(version_dir, plan.overwrite):
        figures = {}
        if plan.verify is not None:
            x, y = plan.verify
            figures = export.verify_saved_model(version_dir, x, reference=plan.model, labels=y)
        plan.configs.write(int(os.path.basename(version_dir)))
    return _export_table.row("saved_model", version_dir, figures)


@contextlib.contextmanager
def _removed_on_failure(version_dir, overwrite):
    """Removes the version directory this run wrote if the block fails, and says so."""
    try:
        yield
    except BaseException as error:
        shutil.rmtree(version_dir, ignore_errors=True)
        if not isinstance(error, Exception):  # Ctrl-C: removed, and still an interruption
            raise
        replaced = (" (with --overwrite it had replaced the earlier one, which is gone too)"
                    if overwrite else "")
        raise _app.Failure(f"{error} The new version {version_dir} was removed{replaced}; the "
                           "configs and TFLite files are as they were.") from error


@contextlib.contextmanager
def _empty_directories_removed_on_failure(paths):
    """Removes, if the block fails, the directories among `paths` (and their parents) it created."""
    missing = set()
    for path in map(os.path.abspath, paths):
        while not os.path.exists(path):
            missing.add(path)
            path = os.path.dirname(path)
    try:
        yield
    except BaseException:
        for path in sorted(missing, key=len, reverse=True):  # children before parents
            with contextlib.suppress(OSError):
                os.rmdir(path)  # only if empty
        raise
