"""Where a pipeline run trains: this process, all its devices, or several worker processes.

``strategy="default"`` trains in this process as plain Keras does;
``"mirrored"`` on every local device (`tf.distribute.MirroredStrategy`);
``"multi_worker"`` on every worker of the cluster that ``TF_CONFIG`` names
(`tf.distribute.MultiWorkerMirroredStrategy`). A strategy of those two kinds
made by the caller is taken as it is; Keras' `BackupAndRestore`, which lets
a killed stage continue, supports no other.

Under multi_worker every worker runs the same program: each ``fit``, each
read of a synchronized variable (BatchNormalization's moving statistics,
pruning's gradient statistics) and each check of `all_workers` is a
collective that every worker must reach in the same order. Every worker
therefore runs every stage and writes its own copy of the run: the chief
(task 0) into the output directory, every other worker into
``<output_dir>/.workers/<task type>-<index>/`` beside it, so that workers
sharing a file system do not write the same files, and the chief's files
are the run's. Keras' `BackupAndRestore` restores every worker from the
chief's backup, so the stages' backups stay in the chief's directory, and
resuming a multi-worker run needs the output directory on a file system
every worker sees.
"""

import contextlib
import dataclasses
import json
import os
import tempfile

import tensorflow as tf
import tf_keras as keras

from tfopt import quantization

DEFAULT = "default"
MIRRORED = "mirrored"
MULTI_WORKER = "multi_worker"
STRATEGIES = (DEFAULT, MIRRORED, MULTI_WORKER)
TF_CONFIG = "TF_CONFIG"
WORKERS_DIR = ".workers"
# The jobs of a MultiWorkerMirroredStrategy cluster that train ("evaluator" and "ps" do not).
_TRAINING_JOBS = ("chief", "worker")
_TEMPORARY_MODEL = "model.keras"

# One strategy of each kind per process: a second MultiWorkerMirroredStrategy cannot
# configure the collectives again, and two strategies reuse collective keys.
_made = {}


@dataclasses.dataclass(frozen=True)
class Task:
    """This process's place in the run: its job, index, and how many workers train.

    Attributes:
      type: "chief" or "worker" ("chief" for a single-process run).
      index: the task's index in its job.
      workers: the training processes of the run (1 but for multi_worker).
      has_chief_job: whether the cluster has a "chief" job (else worker 0 leads).
    """

    type: str = "chief"
    index: int = 0
    workers: int = 1
    has_chief_job: bool = False

    @property
    def chief(self):
        """Whether this process writes the run's own files: TensorFlow's chief."""
        return self.type == "chief" or (self.type == "worker" and self.index == 0
                                        and not self.has_chief_job)


@dataclasses.dataclass(frozen=True)
class Placement:
    """A run's strategy, and where this process keeps its copy of the run.

    Attributes:
      strategy: the `tf.distribute.Strategy`, or None for the default.
      output_dir: the run's own directory (the chief's copy).
    """

    strategy: object
    output_dir: str

    @property
    def task(self):
        return task_of(self.strategy)

    @property
    def run_dir(self):
        """This process's copy of the run (`output_dir` for the chief)."""
        return run_dir(self.output_dir, self.task)

    def shared(self, path):
        """`path` of this process's copy as the chief's copy has it: backups are the chief's."""
        return os.path.join(self.output_dir, os.path.relpath(path, self.run_dir))


def validate_strategy(strategy):
    """`strategy` if it is one of `STRATEGIES` or a supported strategy object; else raises.

    For "multi_worker" the environment's ``TF_CONFIG`` is checked too
    (`read_tf_config`), so that a bad cluster is named before anything trains.
    """
    supported = (tf.distribute.MirroredStrategy, tf.distribute.MultiWorkerMirroredStrategy)
    if isinstance(strategy, supported):
        return strategy
    if isinstance(strategy, tf.distribute.Strategy):
        raise ValueError(f"strategy={type(strategy).__name__}: a stage backs its training up "
                         "with Keras' BackupAndRestore, which supports MirroredStrategy and "
                         "MultiWorkerMirroredStrategy only; pass one of those, or 'default', "
                         "'mirrored' or 'multi_worker'.")
    if not isinstance(strategy, str) or strategy not in STRATEGIES:
        raise ValueError(f"strategy={strategy!r} is not one of {list(STRATEGIES)} or a "
                         "tf.distribute.MirroredStrategy or MultiWorkerMirroredStrategy; use "
                         "'default' to train in this process.")
    if strategy == MULTI_WORKER:
        read_tf_config()
    return strategy


def read_tf_config(environ=None):
    """This worker's `Task` from ``TF_CONFIG`` (JSON: cluster and task), checked.

    Raises:
      ValueError: TF_CONFIG is missing, not JSON, or names no training task
        of its cluster; the message shows the expected form.
    """
    text = (os.environ if environ is None else environ).get(TF_CONFIG, "")
    form = ('e.g. TF_CONFIG=\'{"cluster": {"worker": ["host0:port", "host1:port"]}, '
            '"task": {"type": "worker", "index": 0}}\' on worker 0')
    if not text.strip():
        raise ValueError(f"strategy='multi_worker' needs the {TF_CONFIG} environment variable "
                         f"naming the cluster and this worker's task ({form}); without a "
                         "cluster use strategy='mirrored'.")
    try:
        config = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{TF_CONFIG} is not JSON ({error}); {form}.") from None
    cluster = config.get("cluster") if isinstance(config, dict) else None
    task = config.get("task") if isinstance(config, dict) else None
    if not isinstance(cluster, dict) or not isinstance(task, dict):
        raise ValueError(f"{TF_CONFIG} needs a 'cluster' and a 'task' object; got {text!r}; "
                         f"{form}.")
    for job, addresses in cluster.items():
        if not isinstance(addresses, list) or not addresses or not all(
                isinstance(address, str) and address.rpartition(":")[2].isdigit()
                for address in addresses):
            raise ValueError(f"{TF_CONFIG}: cluster job {job!r} must list 'host:port' "
                             f"addresses; got {addresses!r}.")
    jobs = [job for job in _TRAINING_JOBS if job in cluster]
    kind, index = task.get("type"), task.get("index")
    if kind not in jobs or isinstance(index, bool) or not isinstance(index, int) \
            or not 0 <= index < len(cluster[kind]):
        allowed = ", ".join(f"{job} 0..{len(cluster[job]) - 1}" for job in jobs) or "none"
        raise ValueError(f"{TF_CONFIG}: task {task!r} is not a training task of the cluster "
                         f"(training tasks: {allowed}); give this worker's type and index.")
    return Task(kind, index, sum(len(cluster[job]) for job in jobs), "chief" in cluster)


def make(strategy):
    """The `tf.distribute.Strategy` of `strategy` (see `validate_strategy`); None for default.

    "multi_worker" must be made before TensorFlow runs its first operation
    (building or loading a model runs some): make it first with this
    function, then load the model.

    Raises:
      ValueError: a bad name or TF_CONFIG, or multi_worker asked for too late.
    """
    strategy = validate_strategy(strategy)
    if not isinstance(strategy, str):
        return strategy
    if strategy == DEFAULT:
        return None
    if strategy not in _made:
        if strategy == MIRRORED:
            _made[strategy] = tf.distribute.MirroredStrategy()
        else:
            try:
                _made[strategy] = tf.distribute.MultiWorkerMirroredStrategy()
            except RuntimeError as error:  # "Collective ops must be configured at startup"
                raise ValueError(
                    "strategy='multi_worker' must be made before TensorFlow runs anything: "
                    "call tfopt.pipeline.make_strategy('multi_worker') first in the program, "
                    "then load the model and pass strategy='multi_worker'.") from error
    return _made[strategy]


def name_of(strategy):
    """What run.json and the report call `strategy` (None: "default")."""
    if strategy is None:
        return DEFAULT
    for name, made in _made.items():
        if made is strategy:
            return name
    return type(strategy).__name__


def task_of(strategy):
    """This process's `Task` under `strategy` (the single chief but for multi-worker)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().jobs:
        return Task()
    spec = resolver.cluster_spec()
    jobs = [job for job in _TRAINING_JOBS if job in spec.jobs]
    return Task(resolver.task_type, int(resolver.task_id),
                sum(spec.num_tasks(job) for job in jobs), "chief" in spec.jobs)


def replicas(strategy):
    """Replicas that train in step: what changes a run's arithmetic (per-replica batches)."""
    return 1 if strategy is None else int(strategy.num_replicas_in_sync)


def run_dir(output_dir, task):
    """Where `task` writes its copy of the run: `output_dir` for the chief (module docstring)."""
    if task.chief:
        return output_dir
    return os.path.join(output_dir, WORKERS_DIR, f"{task.type}-{task.index}")


def scope(strategy):
    return contextlib.nullcontext() if strategy is None else strategy.scope()


def all_workers(strategy, holds):
    """Whether `holds` is true on every worker; a collective every worker must reach.

    Workers decide together what to skip (a stage one of them finished before
    a kill), since a worker that trains alone waits for the others forever.
    """
    if task_of(strategy).workers == 1:
        return bool(holds)
    votes = strategy.reduce(tf.distribute.ReduceOp.SUM,
                            strategy.experimental_distribute_values_from_function(
                                lambda _: tf.constant(1.0 if holds else 0.0)), axis=None)
    return int(votes.numpy()) == strategy.num_replicas_in_sync


def into_scope(model, strategy):
    """A copy of `model` whose variables `strategy` holds (`model` itself for default)."""
    if strategy is None:
        return model
    with strategy.scope():
        try:
            copy = keras.models.clone_model(model)
        except (TypeError, ValueError):  # a subclassed model: Keras cannot clone it
            return _copy(model)
        # Not through a .keras file: loading one in a strategy's scope fails for variables
        # summed across replicas (Keras divides the file's h5py dataset by the replicas).
        copy.set_weights(model.get_weights())
        return copy


def local_copy(model, strategy):
    """A copy of `model` trained under `strategy` with plain variables of this process.

    Reading the trained model's synchronized variables is a collective, so
    every worker copies its model at the same point; the copy is then
    measured, saved and converted by each process alone.
    """
    return model if strategy is None else _copy(model)


def _copy(model):
    # Through the .keras format: it carries every layer tfopt makes (pruning and
    # quantization wrappers included), as the stages' own files do.
    with tempfile.TemporaryDirectory(prefix="tfopt-strategy-") as directory:
        path = os.path.join(directory, _TEMPORARY_MODEL)
        model.save(path)
        return quantization.load_model(path, compile=False)
