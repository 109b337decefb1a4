"""pipeline.optimize under a distribution strategy (tfopt/pipeline/_strategy.py).

A run of one replica is the default run; two replicas ("mirrored" over the
two logical CPUs of the tests) split each batch and end where one process
ends; two worker
processes under MultiWorkerMirroredStrategy hold the same weights, bit for
bit, and those of a single-process run of the same seed.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.conftest import compile_model
from tests.pipeline.conftest import straight_and_resumed
from tfopt import pipeline
from tfopt import quantization
from tfopt.pipeline import _figures
from tfopt.pipeline import _recipe
from tfopt.pipeline import _run
from tfopt.pipeline import _stages
from tfopt.pipeline import _strategy

# One replica or several: float sums in another order (threaded kernels, the all-reduce).
ATOL = 1e-4
# Two worker processes against this one, over two stages of two epochs: 8e-5 measured.
ACROSS_PROCESSES = dict(atol=1e-3, rtol=1e-3)
RUN = dict(epochs_per_stage=1, min_steps_per_stage=0, width=0.75, sparsity=0.6, seed=3)
# The two-worker run: two stages of two epochs, so that the second epoch's data order
# (read from the optimizer's step count inside tf.data) counts.
MULTI_WORKER = dict(recipe="distill,unstructured", epochs_per_stage=2, min_steps_per_stage=0,
                    width=0.75, sparsity=0.6, seed=3)
TRAIN_EXAMPLES = 640  # ten steps an epoch
# Starts tfopt-optimize on two workers and waits for them: one process, so that it can
# hold both in a network namespace of their own (TensorFlow's gRPC server listens on every
# address, 127.0.0.1 included).
LAUNCHER = """
import json, os, socket, subprocess, sys, time
log_dir, timeout, flags = sys.argv[1], float(sys.argv[2]), sys.argv[3:]
ports = []
for _ in range(2):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        ports.append(probe.getsockname()[1])
cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
workers = []
for index in range(2):
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="", TF_CONFIG=json.dumps(
        {"cluster": cluster, "task": {"type": "worker", "index": index}}))
    with open(os.path.join(log_dir, f"worker-{index}.out"), "wb") as out, \\
            open(os.path.join(log_dir, f"worker-{index}.err"), "wb") as err:
        workers.append(subprocess.Popen(
            [sys.executable, "-m", "tfopt.cli.optimize", *flags], env=env, stdout=out,
            stderr=err))
deadline = time.monotonic() + timeout
while any(w.poll() is None for w in workers) and time.monotonic() < deadline and not any(
        w.returncode for w in workers):
    time.sleep(0.2)
for w in workers:  # one failed or time is up: the other would wait for it forever
    if w.poll() is None:
        w.kill()
        w.wait()
print(json.dumps([w.returncode for w in workers]))
"""
TIMEOUT = 240


def subset():
    """Digits with 640 training examples: the data of the two-worker run."""
    from tfopt import datasets  # pylint: disable=import-outside-toplevel
    (x, y), test = datasets.load_digits()
    return (x[:TRAIN_EXAMPLES], y[:TRAIN_EXAMPLES]), test


@pytest.fixture(scope="module")
def plain_cnn():
    """A digits CNN without BatchNormalization, whose batch statistics differ per replica."""
    (x, y), _ = subset()
    keras.utils.set_random_seed(0)
    model = compile_model(keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Conv2D(8, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(10)]))
    model.fit(x, y, epochs=4, batch_size=64, verbose=0)
    return model


def _weights(output_dir, stage):
    path = os.path.join(output_dir, _run.STAGES_DIR, stage, _figures.MODEL_FILE)
    return quantization.load_model(path, compile=False).get_weights()


def _record(output_dir):
    with open(os.path.join(output_dir, _run.RUN_FILE), encoding="utf-8") as stream:
        return json.load(stream)


def _assert_close(got, want, share=1.0, **tolerance):
    """Same zeros and close values (with `share` < 1: that share, the rest within 10x)."""
    assert len(got) == len(want) > 0
    for ours, theirs in zip(got, want):
        np.testing.assert_array_equal(ours == 0, theirs == 0)  # unstructured masks
        if share == 1.0:
            np.testing.assert_allclose(ours, theirs, **tolerance)
            continue
        close = np.isclose(ours, theirs, **tolerance)
        assert close.mean() >= share, (close.mean(), ours, theirs)
        np.testing.assert_allclose(ours, theirs, **{key: 10 * value
                                                    for key, value in tolerance.items()})


# Configuration ---------------------------------------------------------------

@pytest.mark.parametrize("text, message", [
    (None, "needs the TF_CONFIG environment variable"),
    ("  ", "needs the TF_CONFIG environment variable"),
    ("{cluster", "TF_CONFIG is not JSON"),
    ('["worker"]', "needs a 'cluster' and a 'task' object"),
    ('{"cluster": {"worker": ["127.0.0.1:1"]}}', "needs a 'cluster' and a 'task' object"),
    ('{"cluster": {"worker": []}, "task": {"type": "worker", "index": 0}}',
     "cluster job 'worker' must list 'host:port' addresses"),
    ('{"cluster": {"worker": ["127.0.0.1"]}, "task": {"type": "worker", "index": 0}}',
     r"cluster job 'worker' must list 'host:port' addresses; got \['127.0.0.1'\]"),
    ('{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 2}}',
     r"is not a training task of the cluster \(training tasks: worker 0..1\)"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
     "is not a training task"),
    ('{"cluster": {"worker": ["a:1"]}, "task": {"type": "worker", "index": "0"}}',
     "is not a training task"),
    ('{"cluster": {"ps": ["a:1"]}, "task": {"type": "ps", "index": 0}}',
     r"training tasks: none"),
])
def test_a_bad_tf_config_is_named_before_anything_runs(monkeypatch, text, message):
    if text is None:
        monkeypatch.delenv(_strategy.TF_CONFIG, raising=False)
    else:
        monkeypatch.setenv(_strategy.TF_CONFIG, text)
    with pytest.raises(ValueError, match=message):
        _strategy.validate_strategy("multi_worker")


@pytest.mark.parametrize("cluster, task, chief, workers, run_dir", [
    ({"worker": ["a:1", "b:2"]}, ("worker", 0), True, 2, "out"),
    ({"worker": ["a:1", "b:2"]}, ("worker", 1), False, 2, "out/.workers/worker-1"),
    ({"chief": ["a:1"], "worker": ["b:2"]}, ("chief", 0), True, 2, "out"),
    ({"chief": ["a:1"], "worker": ["b:2"]}, ("worker", 0), False, 2, "out/.workers/worker-0"),
    ({"chief": ["a:1"], "worker": ["b:2"], "evaluator": ["c:3"]}, ("worker", 0), False, 2,
     "out/.workers/worker-0"),
])
def test_the_chief_writes_the_output_dir_and_other_workers_their_copy(cluster, task, chief,
                                                                      workers, run_dir):
    config = {"cluster": cluster, "task": {"type": task[0], "index": task[1]}}
    read = _strategy.read_tf_config({_strategy.TF_CONFIG: json.dumps(config)})
    assert (read.type, read.index, read.chief, read.workers) == (*task, chief, workers)
    assert _strategy.run_dir("out", read) == run_dir


@pytest.mark.parametrize("strategy, message", [
    *[(name, rf"strategy={name!r} is not one of \['default', 'mirrored', 'multi_worker'\]")
      for name in ("mirror", "", None, 2, "Default")],
    (lambda: tf.distribute.OneDeviceStrategy("/cpu:0"),
     "strategy=OneDeviceStrategy: a stage backs its training up with Keras' BackupAndRestore, "
     "which supports MirroredStrategy and MultiWorkerMirroredStrategy only"),
])
def test_an_unknown_strategy_is_refused_before_anything_runs(tmp_path, plain_cnn, strategy,
                                                             message):
    strategy = strategy() if callable(strategy) else strategy
    with pytest.raises(ValueError, match=message):
        pipeline.optimize(plain_cnn, subset(), tmp_path / "run", strategy=strategy)
    assert not os.path.exists(tmp_path / "run")


def test_multi_worker_made_after_tensorflow_started_says_how_to_start(monkeypatch, plain_cnn):
    monkeypatch.setenv(_strategy.TF_CONFIG, json.dumps(
        {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
         "task": {"type": "worker", "index": 0}}))
    monkeypatch.setattr(_strategy, "_made", {})
    with pytest.raises(ValueError, match=r"must be made before TensorFlow runs anything: call "
                                         r"tfopt.pipeline.make_strategy\('multi_worker'\) first"):
        _strategy.make("multi_worker")


def test_a_multi_worker_search_for_latency_is_refused_before_anything_runs(
        tmp_path, monkeypatch, plain_cnn):
    # Each worker would time its own files, and their searches could part ways.
    monkeypatch.setattr(_strategy, "task_of", lambda strategy: _strategy.Task("worker", 0, 2))
    with pytest.raises(ValueError, match="target_latency_us cannot steer a multi-worker search"):
        pipeline.optimize(plain_cnn, subset(), tmp_path / "run", target_latency_us=5.0)
    assert not os.path.exists(tmp_path / "run")


# One process -----------------------------------------------------------------

@pytest.fixture(scope="module")
def default_run(tmp_path_factory, plain_cnn):
    return pipeline.optimize(plain_cnn, subset(), tmp_path_factory.mktemp("default") / "run",
                             recipe="distill", **RUN)


def test_one_replica_is_the_default_run(tmp_path, plain_cnn, default_run):
    one = tf.distribute.MirroredStrategy(["/cpu:0"])  # a strategy of the caller's own
    output_dir = tmp_path / "run"
    result = pipeline.optimize(plain_cnn, subset(), output_dir, recipe="distill", strategy=one,
                               **RUN)
    _assert_close(_weights(output_dir, "01-distill"),
                  _weights(default_run.output_dir, "01-distill"), atol=ATOL)
    assert {key: _record(output_dir)[key] for key in ("strategy", "workers", "replicas")} == {
        "strategy": "MirroredStrategy", "workers": 1, "replicas": 1}
    # The same run under either strategy: started again by default, it has nothing to do.
    again = pipeline.optimize(plain_cnn, subset(), output_dir, recipe="distill", **RUN)
    assert again.stages == result.stages
    assert _record(output_dir)["strategy"] == "default"


def test_mirrored_trains_on_every_local_device_and_is_another_run(
        tmp_path, monkeypatch, plain_cnn, default_run, mirrored_strategy):
    # This process has two logical CPUs (tests/conftest.py), which MirroredStrategy() takes;
    # the session's strategy over them stands in for it (a second one would collide).
    monkeypatch.setitem(_strategy._made, "mirrored", mirrored_strategy)
    output_dir = tmp_path / "run"
    pipeline.optimize(plain_cnn, subset(), output_dir, recipe="distill", strategy="mirrored",
                      **RUN)
    assert {key: _record(output_dir)[key] for key in ("strategy", "workers", "replicas")} == {
        "strategy": "mirrored", "workers": 1, "replicas": 2}
    # Each replica trains on half of every batch: together they take the default run's steps.
    _assert_close(_weights(output_dir, "01-distill"),
                  _weights(default_run.output_dir, "01-distill"), atol=ATOL)
    with pytest.raises(pipeline.RunConflict, match=r"it differs in \['replicas'\]"):
        pipeline.optimize(plain_cnn, subset(), output_dir, recipe="distill", **RUN)


def test_a_saved_model_teacher_teaches_under_the_strategy(tmp_path, plain_cnn,
                                                          mirrored_strategy):
    # Its copy in the strategy's scope is cloned and given the weights: loaded from a .keras
    # file there, Keras divided the file's h5py dataset by the replicas (TypeError).
    from tfopt.pipeline import _teacher  # pylint: disable=import-outside-toplevel
    module = tf.Module()
    module.model = plain_cnn
    module.__call__ = tf.function(lambda x: plain_cnn(x, training=False),
                                  input_signature=[tf.TensorSpec([None, 8, 8, 1], tf.float32)])
    tf.saved_model.save(module, str(tmp_path / "hub"))
    teacher = _teacher.load_teacher(str(tmp_path / "hub"), plain_cnn.input_shape[1:])
    result = pipeline.optimize(plain_cnn, subset(), tmp_path / "run", recipe="distill",
                               teacher=teacher, strategy=mirrored_strategy, **RUN)
    assert [figures["stage"] for figures in result.stages] == ["00-float", "01-distill"]
    assert _record(tmp_path / "run")["replicas"] == 2


# Taylor scores average each replica's gradients of its half batch, which rank channels
# otherwise than the whole batch's: the channels stage ranks by magnitude. QAT's moving
# activation ranges are each replica's of its half batch (like BatchNormalization's
# statistics), and fake quantization rounds onto slightly other grids: 99% of the qat
# stage's values end within 1e-3 (+1% of the value), the rest within 1e-2 (+10%): one
# weight in 2,048 measured 6e-3 apart at the pipeline's learning rate.
# (The distill stage under two replicas: test_mirrored_trains_on_every_local_device_and_...)
@pytest.mark.parametrize("name, criterion, tolerance", [
    ("channels", "magnitude", dict(atol=ATOL)),
    ("unstructured", "taylor", dict(atol=ATOL)),
    ("qat", "taylor", dict(atol=1e-3, rtol=1e-2, share=0.99))])
def test_two_replicas_split_each_batch_and_end_where_one_process_ends(
        tmp_path, plain_cnn, mirrored_strategy, name, criterion, tolerance):
    options = _recipe.Options(epochs_per_stage=2, min_steps_per_stage=0, batch_size=64, seed=5,
                              criterion=criterion, channel_fraction=0.25)
    train = subset()[0]

    def run(strategy, backup):
        keras.utils.set_random_seed(9)
        return _stages.run_stage(name, plain_cnn, plain_cnn, train, options, 1,
                                 str(tmp_path / backup), strategy=strategy)

    one, two = run(None, "one"), run(mirrored_strategy, "two")
    # A plain model of this process: its variables are not the strategy's.
    assert not hasattr(two.weights[0], "values")
    _assert_close(two.get_weights(), one.get_weights(), **tolerance)


def test_an_interrupted_stage_continues_under_the_strategy_to_the_uninterrupted_state(
        tmp_path, plain_cnn, mirrored_strategy, name="channels"):
    # BackupAndRestore restores the replicas' variables, and the second epoch's data order
    # (read from the restored step count inside the distributed dataset) is the same.
    options = _recipe.Options(epochs_per_stage=2, min_steps_per_stage=0, batch_size=64, seed=7,
                              criterion="magnitude", channel_fraction=0.25)
    train = subset()[0]

    def run(backup, callbacks):
        keras.utils.set_random_seed(9)
        return _stages.run_stage(name, plain_cnn, plain_cnn, train, options, 2, str(backup),
                                 callbacks=callbacks, strategy=mirrored_strategy)

    straight, resumed = straight_and_resumed(run, tmp_path)
    assert int(resumed.optimizer[0]) == int(straight.optimizer[0]) == 2 * 10
    _assert_close(resumed.optimizer, straight.optimizer, atol=ATOL)
    assert resumed.weights.keys() == straight.weights.keys()
    _assert_close(list(resumed.weights.values()), list(straight.weights.values()),
                  atol=ATOL)  # masks and steps included


# Two worker processes --------------------------------------------------------

def _network_namespace():
    """The command prefix that runs a command in a new network namespace, or [] if none can."""
    prefix = ["unshare", "--user", "--map-root-user", "--net", "sh", "-c",
              'ip link set lo up && exec "$@"', "sh"]
    if not (shutil.which("unshare") and shutil.which("ip")):
        return []
    try:
        probe = subprocess.run(prefix + ["true"], capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return []
    return prefix if probe.returncode == 0 else []


@pytest.mark.slow  # two workers, each starting TensorFlow and running two stages: ~45 s
def test_two_workers_hold_the_same_weights_as_each_other_and_as_one_process(tmp_path,
                                                                            plain_cnn):
    model_path = tmp_path / "float.keras"
    plain_cnn.save(model_path)
    (x_train, y_train), (x_test, y_test) = subset()
    data_path = tmp_path / "digits.npz"
    np.savez(data_path, x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    output_dir = tmp_path / "run"
    flags = [f"--model={model_path}", f"--data={data_path}", f"--output_dir={output_dir}",
             "--strategy=multi_worker", "--formats=tflite_int8", "--model_name=digits",
             *(f"--{key}={value}" for key, value in MULTI_WORKER.items())]
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    env = {key: value for key, value in os.environ.items() if key != "TFOPT_VERBOSE"}
    env["PYTHONPATH"] = os.pathsep.join(
        [root] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    process = subprocess.Popen(
        _network_namespace() + [sys.executable, "-c", LAUNCHER, str(tmp_path), str(TIMEOUT),
                                *flags],
        stdout=subprocess.PIPE, env=env, start_new_session=True)
    try:
        # Meanwhile, the same run in this process.
        single = pipeline.optimize(quantization.load_model(model_path, compile=False),
                                   subset(), tmp_path / "single", **MULTI_WORKER)
        out, _ = process.communicate(timeout=TIMEOUT + 30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    said = {name: (tmp_path / name).read_text(errors="replace")
            for name in ("worker-0.out", "worker-0.err", "worker-1.out", "worker-1.err")
            if (tmp_path / name).exists()}
    assert json.loads(out or "null") == [0, 0], "\n".join(
        f"--- {name}:\n{text[-2000:]}" for name, text in said.items())

    # The chief speaks for the run and exports it; the other worker trains quietly.
    assert said["worker-0.out"].splitlines()[-1] == f"report: {output_dir / 'report.md'}"
    assert said["worker-1.out"] == ""
    assert "tfopt.pipeline: stage 02-unstructured: epoch 2/2" in said["worker-0.err"]
    assert "tfopt.pipeline" not in said["worker-1.err"]
    worker_dir = output_dir / _strategy.WORKERS_DIR / "worker-1"
    assert (output_dir / "export" / "tflite" / "digits_int8.tflite").is_file()
    assert not (worker_dir / "export").exists()
    assert sorted(os.listdir(output_dir / _run.STAGES_DIR)) == sorted(
        os.listdir(worker_dir / _run.STAGES_DIR)) == ["00-float", "01-distill", "02-unstructured"]
    for directory in (output_dir, worker_dir):
        assert {key: _record(directory)[key] for key in ("strategy", "workers", "replicas")} == {
            "strategy": "multi_worker", "workers": 2, "replicas": 2}
    for stage in ("01-distill", "02-unstructured"):
        chief = _weights(output_dir, stage)
        # Every worker applies the same all-reduced gradients: the same bits.
        for ours, theirs in zip(chief, _weights(worker_dir, stage)):
            np.testing.assert_array_equal(ours, theirs, err_msg=stage)
        # Each worker trained on its half of every batch of the single run's order.
        _assert_close(chief, _weights(single.output_dir, stage), **ACROSS_PROCESSES)
