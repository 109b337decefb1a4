"""What works on real architectures: tfopt and tfmot side by side.

For each of the 14 architectures of benchmarks/architectures.py and each
feature (unstructured pruning, channel pruning + shrink, int8 QAT to an int8
TFLite file, post-training int8, make_student + Distiller, FLOPs), runs the
feature with tfopt and with tfmot (or the plain TFLiteConverter recipe; the TF
profiler for FLOPs) and records "ok" with figures, or the reason it failed.
The cells are in benchmarks/_coverage_cells.py.

Cells run in worker processes, one per architecture (`--isolate`: one per
cell), so that a cell that hangs (killed after `--timeout` seconds and
reported as a timeout, with the step it hung in) or crashes the interpreter
cannot stop the run: the worker is restarted for the remaining cells.
Writes benchmarks/results/coverage.{json,md}; a run over a subset
(`--architectures`, `--features`, `--libraries`) writes coverage_partial.*.

    python -m benchmarks.coverage [--architectures=ResNet50,TextLSTM] [--features=qat]
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import traceback


import tf_keras as keras
from absl import app
from absl import flags
from absl import logging

from benchmarks import _common
from benchmarks import _coverage_cells as cells
from benchmarks import _coverage_report as report
from benchmarks import architectures

FLAGS = flags.FLAGS
flags.DEFINE_list("architectures", list(architectures.NAMES), "Architectures to run.")
flags.DEFINE_list("features", list(cells.FEATURES), "Features to run.")
flags.DEFINE_list("libraries", list(cells.LIBRARIES), "Libraries to run: tfopt, tfmot.")
flags.DEFINE_integer("timeout", 300, "Seconds one cell may take before it is killed.",
                     lower_bound=1)
flags.DEFINE_integer("batch_size", 2, "Training batch size.", lower_bound=1)
flags.DEFINE_integer("steps", 2, "Training steps of the features that train.", lower_bound=1)
flags.DEFINE_integer("representative_examples", 8, "Calibration examples for int8.",
                     lower_bound=1)
flags.DEFINE_bool("run_eagerly", True, "Train eagerly (about 6x faster here: tracing the "
                  "training graphs of the large applications takes minutes per cell). "
                  "--norun_eagerly trains in graph mode, as fit does by default.")
flags.DEFINE_bool("isolate", False, "One process per cell instead of one per architecture.")
flags.DEFINE_string("output_dir", _common.RESULTS_DIR, "Where coverage.{json,md} go.")
# Internal: set by the runner when it starts a worker.
flags.DEFINE_list("worker_cells", None, "Internal: architecture:feature:library cells to run.")
flags.DEFINE_string("worker_log", None, "Internal: the JSON-lines file a worker reports to.")

_TRACE_ROOTS = ("tfopt/", "tensorflow_model_optimization/", "tf_keras/", "tensorflow/")


# The worker: runs its cells in order, reporting each phase and result -----------

def _chain(error):
    """`error` and the exceptions that caused it, outermost first."""
    chain = [error]
    while (chain[-1].__cause__ or chain[-1].__context__) and len(chain) < 5:
        chain.append(chain[-1].__cause__ or chain[-1].__context__)
    return chain


def _where(error):
    """The innermost frame in tfopt (else tfmot, Keras, TF) of the deepest cause."""
    frames = [frame for e in reversed(_chain(error))
              for frame in reversed(traceback.extract_tb(e.__traceback__))]
    for root in _TRACE_ROOTS:
        for frame in frames:
            marker = "/" + root
            if marker in frame.filename:
                return f"{root}{frame.filename.split(marker, 1)[1]}:{frame.lineno}"
    return None


# Paths of this machine in messages (site-packages, the checkout) become relative.
_MACHINE_PATH = re.compile(r"/[^\s\"']*?/site-packages/|"
                           + re.escape(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
                           + "/")


def _without_machine_paths(text):
    return _MACHINE_PATH.sub("", text)


def reason(error):
    """`Type: message`, its first line and, when that one is short, the second; ~150 chars.

    The first line alone is often generic ("quantize cannot quantize 16 layer(s) of
    'x':", "Exception encountered when calling layer ..."); the second names the case.
    """
    lines = [line.strip() for line in _without_machine_paths(str(error)).splitlines()
             if line.strip()]
    text = " ".join(lines[:2] if lines and len(lines[0]) < 100 else lines[:1])
    text = f"{type(error).__name__}: {text}".rstrip(": ")
    return text if len(text) <= 150 else text[:147] + "..."


def detail(error):
    """The messages of `error` and its causes, for the JSON file (the table has `reason`)."""
    return " <- ".join(
        f"{type(e).__name__}: {' '.join(_without_machine_paths(str(e)).split())[:400]}"
        for e in _chain(error))


def run_worker(keys, log_path):
    logging.set_verbosity(logging.WARNING)
    directory = tempfile.mkdtemp(prefix="tfopt-coverage-")

    def write(**entry):
        with open(log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    for key in keys:
        name, feature, library = key.split(":")
        keras.backend.clear_session()
        write(cell=key, phase="build", time=time.time())
        ctx = cells.Context(FLAGS.batch_size, FLAGS.steps, FLAGS.representative_examples,
                            FLAGS.run_eagerly, directory,
                            lambda phase: write(cell=key, phase=phase, time=time.time()))
        start = time.perf_counter()
        try:
            figures = cells.CELLS[feature](name, library, ctx)
            outcome = {"status": "ok", "figures": figures}
        except Exception as error:  # noqa: BLE001  (every failure is a result here)
            outcome = {"status": "failed", "reason": reason(error), "where": _where(error),
                       "detail": detail(error), "figures": getattr(error, "figures", None)}
        outcome["seconds"] = round(time.perf_counter() - start, 1)
        write(cell=key, result=outcome)


# The runner: workers, timeouts, restarts -----------------------------------------

class _Worker:
    """A worker process running `keys`, and what it has reported so far."""

    def __init__(self, keys, scratch):
        self.log_path, self.err_path = (os.path.join(scratch, n) for n in ("log", "err"))
        argv = [sys.executable, "-m", "benchmarks.coverage", f"--worker_cells={','.join(keys)}",
                f"--worker_log={self.log_path}"] + [FLAGS[name].serialize() for name in (
                    "batch_size", "steps", "representative_examples", "run_eagerly")]
        env = dict(os.environ)
        env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        with open(self.err_path, "w") as stderr:
            # Its own session: a timeout kills the worker and anything it started.
            self.process = subprocess.Popen(argv, cwd=root, stdout=subprocess.DEVNULL,
                                            stderr=stderr, env=env, start_new_session=True)
        self.offset = 0

    def entries(self):
        """The complete lines written since the last call, parsed."""
        if not os.path.exists(self.log_path):
            return []
        with open(self.log_path) as f:
            f.seek(self.offset)
            text = f.read()
        complete = text[:text.rfind("\n") + 1]
        self.offset += len(complete.encode())
        return [json.loads(line) for line in complete.splitlines()]

    def kill(self):
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()

    def last_error_line(self):
        with open(self.err_path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        return lines[-1][:110] if lines else ""


def run_group(keys, timeout, record):
    """Runs `keys` in workers, restarting after a hang or crash; calls record(key, outcome)."""
    pending = list(keys)
    while pending:
        with tempfile.TemporaryDirectory() as scratch:
            worker = _Worker(pending, scratch)
            current, phase, since = None, "start-up", time.time()
            while pending:
                time.sleep(1)
                exited = worker.process.poll() is not None  # before reading: no lost result
                for entry in worker.entries():
                    if "result" in entry:
                        record(entry["cell"], entry["result"])
                        pending.remove(entry["cell"])
                        current, phase, since = None, None, time.time()
                    else:
                        if entry["cell"] != current:
                            current, since = entry["cell"], entry["time"]
                        phase = entry["phase"]
                cell = current or (pending[0] if pending else None)
                where = f" in {phase}" if phase else ""
                if cell and time.time() - since > timeout:
                    worker.kill()
                    record(cell, {"status": "timeout", "phase": phase, "seconds": timeout,
                                  "reason": f"timeout: no result after {timeout} s{where}"})
                    pending.remove(cell)
                    break
                if cell and exited:
                    record(cell, {"status": "crashed", "phase": phase,
                                  "seconds": round(time.time() - since, 1),
                                  "reason": f"process died (exit {worker.process.returncode})"
                                            f"{where}: {worker.last_error_line()}"})
                    pending.remove(cell)
                    break
            worker.process.wait()


def main(argv):
    del argv
    if FLAGS.worker_cells:
        return run_worker(FLAGS.worker_cells, FLAGS.worker_log)
    _validate(FLAGS.architectures, architectures.NAMES, "architectures")
    _validate(FLAGS.features, cells.FEATURES, "features")
    _validate(FLAGS.libraries, cells.LIBRARIES, "libraries")
    start = time.perf_counter()
    names, features = list(FLAGS.architectures), list(FLAGS.features)
    full = (names == list(architectures.NAMES) and features == list(cells.FEATURES)
            and list(FLAGS.libraries) == list(cells.LIBRARIES))
    stem = "coverage" if full else "coverage_partial"
    flag_values = {name: FLAGS[name].value for name in (
        "architectures", "features", "libraries", "timeout", "batch_size", "steps",
        "representative_examples", "run_eagerly", "isolate")}
    results = {"flags": flag_values, "tfopt_commit": _common.tfopt_commit(),
               "features": {f: cells.FEATURES[f] for f in features},
               "cells": {name: {f: {} for f in features} for name in names}}
    for name in names:
        for feature in features:
            for library in cells.LIBRARIES:
                if (feature, library) in cells.NOT_AVAILABLE:
                    results["cells"][name][feature][library] = {"status": "n/a"}

    def record(key, outcome):
        name, feature, library = key.split(":")
        results["cells"][name][feature][library] = outcome
        print(f"{key}: {outcome['status']} {outcome.get('reason', '')}", flush=True)
        results["environment"] = _common.environment(flag_values, time.perf_counter() - start)
        report.write(FLAGS.output_dir, stem, results, quiet=True)

    for name in names:
        keys = [f"{name}:{feature}:{library}" for feature in features
                for library in FLAGS.libraries if (feature, library) not in cells.NOT_AVAILABLE]
        for group in ([[key] for key in keys] if FLAGS.isolate else [keys]):
            run_group(group, FLAGS.timeout, record)
    results["environment"] = _common.environment(flag_values, time.perf_counter() - start)
    report.write(FLAGS.output_dir, stem, results)


def _validate(given, allowed, flag):
    unknown = [value for value in given if value not in allowed]
    if unknown:
        raise app.UsageError(f"--{flag}: unknown {', '.join(unknown)}; choose from "
                             f"{', '.join(allowed)}.")


if __name__ == "__main__":
    app.run(main)
