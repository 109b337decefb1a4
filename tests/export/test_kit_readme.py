"""The commands of serving/README.md that can run without a server, run as written.

Blocks marked ``<!-- runs in tests/export/test_kit_readme.py -->`` run in a
copy of serving/ with a real export root (two versions of a digits-shaped
classifier with the classify signature). Each Python command starts
TensorFlow, seconds per process, so the fast tests run the Python ones in this
process (same code, same arguments, same folder) and the slow test runs every
marked block in bash exactly as written; the gRPC snippet runs against a
stand-in PredictionService that answers from the SavedModel.
"""

import concurrent.futures
import contextlib
import io
import json
import os
import re
import runpy
import shlex
import shutil
import subprocess
import sys

import grpc
import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras
import yaml
from kubernetes import client
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc

from tfopt import export
from tfopt.export import _layout
from tests.export.conftest import EXAMPLE_MODEL
from tests.export.conftest import SERVING_DIR
from tests.export.conftest import example_served_model

README = os.path.join(SERVING_DIR, "README.md")
MARKER = "<!-- runs in tests/export/test_kit_readme.py"


def _blocks(language):
    """The marked code blocks of the README in `language`, in order."""
    with open(README, encoding="utf-8") as stream:
        text = stream.read()
    return re.findall(re.escape(MARKER) + r"[^\n]*-->\n```" + language + r"\n(.*?)```", text,
                      flags=re.S)


def _block_starting(prefix):
    [block] = [block for block in _blocks("bash") if block.startswith(prefix)]
    return block


def _make_kit_copy(parent):
    """serving/ copied under `parent`, with an export root as the README's export step leaves it."""
    folder = parent / "serving"
    # Without what the README's commands write there (gitignored; a fresh clone has none).
    shutil.copytree(SERVING_DIR, folder, ignore=shutil.ignore_patterns(
        "models", "*.json", "reference.npz", "local.config", "logs", "drift"))
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((8, 8, 1), name="image"), keras.layers.Flatten(),
                              keras.layers.Dense(10, activation="softmax", name="digit")])
    root = folder / "models"
    for version in (1, 2):
        export.saved_model(model, str(root / EXAMPLE_MODEL), version=version,
                           signatures="classify")
    export.model_server_config([example_served_model(EXAMPLE_MODEL, 1)],
                               str(root / _layout.MODELS_CONFIG))
    export.batching_config(str(root / _layout.BATCHING_CONFIG))
    export.monitoring_config(str(root / _layout.MONITORING_CONFIG))
    return str(folder)


@pytest.fixture(scope="module")
def kit_copy(tmp_path_factory):
    return _make_kit_copy(tmp_path_factory.mktemp("readme"))


def _run(block, folder):
    environment = dict(os.environ, PATH=os.path.dirname(sys.executable) + os.pathsep
                       + os.environ["PATH"])
    result = subprocess.run(["bash", "-e", "-c", block], cwd=folder, env=environment,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{block}\n{result.stderr[-2000:]}"
    return result.stdout


def test_readme_marks_the_commands_that_run_here():
    assert len(_blocks("bash")) == 5 and len(_blocks("python")) == 1


def _python_command(command, folder):
    """Runs the one-line Python command `command` in this process, in `folder`.

    ``python -c CODE`` executes CODE; ``python SCRIPT ARGS`` runs SCRIPT as
    __main__ with ARGS; ``tfopt-kit --flag=value ...`` calls what the tool
    calls, `export.serving_kit`, with the flags as arguments (the tool's absl
    flags are parsed once per process; the slow test runs it as written).
    """
    argv = shlex.split(command)
    assert argv[0] in ("python", "tfopt-kit"), command
    with contextlib.ExitStack() as stack:
        stack.enter_context(_cwd(folder))
        if argv[0] == "tfopt-kit":
            flags = dict(arg[2:].split("=", 1) for arg in argv[1:])
            export.serving_kit(flags.pop("export_root"), flags.pop("model_name"),
                               flags.pop("output_dir"))
            assert not flags, f"flags serving_kit does not take: {flags}"
        elif argv[1] == "-c":
            exec(compile(argv[2], "serving/README.md", "exec"), {})
        else:
            stack.enter_context(_argv(argv[1:]))
            runpy.run_path(argv[1], run_name="__main__")


@contextlib.contextmanager
def _cwd(folder):
    previous = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def _argv(argv):
    previous = sys.argv
    sys.argv = list(argv)
    try:
        yield
    finally:
        sys.argv = previous


def _assert_kit_is_committed_one(folder):
    for directory, _, names in os.walk(SERVING_DIR):
        for name in names:
            if name.endswith((".yml", ".yaml")):
                committed = os.path.join(directory, name)
                new = os.path.join(folder, os.path.relpath(committed, SERVING_DIR))
                with open(committed) as old, open(new) as fresh:
                    assert fresh.read() == old.read(), name


def _assert_requests(folder):
    with open(os.path.join(folder, "predict.json")) as stream:
        predict = json.load(stream)
    assert np.asarray(predict["instances"]).shape == (2, 8, 8, 1)
    with open(os.path.join(folder, "classify.json")) as stream:
        classify = json.load(stream)
    assert classify["signature_name"] == "classify"
    assert [list(example) for example in classify["examples"]] == [["image"], ["image"]]
    assert all(isinstance(value, float) and 0 <= value <= 1
               for example in classify["examples"] for value in example["image"])
    assert len(classify["examples"][0]["image"]) == 64


def _assert_labels(folder, version):
    path = os.path.join(folder, "models", _layout.MODELS_CONFIG)
    [model] = export.read_model_server_config(path).model_config_list.config
    assert dict(model.version_labels) == {"stable": version}
    assert list(model.model_version_policy.specific.versions) == [version]


def test_regenerating_the_kit_writes_the_committed_files(kit_copy):
    for name in ("docker-compose.yml", "kserve/inferenceservice.yaml"):
        os.remove(os.path.join(kit_copy, name))
    _python_command(_block_starting("tfopt-kit"), kit_copy)
    _assert_kit_is_committed_one(kit_copy)


def test_docker_compose_config_accepts_the_kit(kit_copy):
    assert shutil.which("docker-compose"), "apt-get install docker-compose (CI installs it)."
    _run(_block_starting("docker-compose -f docker-compose.yml config -q"), kit_copy)


def test_make_requests_writes_requests_for_both_signatures(kit_copy):
    _python_command(_block_starting("python make_requests.py"), kit_copy)
    _assert_requests(kit_copy)


def test_promote_and_roll_back_rewrite_the_labels(kit_copy):
    promote, roll_back = _block_starting("python -c").strip().splitlines()
    for command, version in ((promote, 2), (roll_back, 1)):
        _python_command(command, kit_copy)
        _assert_labels(kit_copy, version)


@pytest.mark.slow
def test_marked_commands_run_as_written_in_bash(tmp_path):
    """Every marked block in its own bash, in README order: TensorFlow starts five times."""
    kit_copy = _make_kit_copy(tmp_path)
    os.remove(os.path.join(kit_copy, "docker-compose.yml"))
    outputs = [_run(block, kit_copy) for block in _blocks("bash")]
    _assert_kit_is_committed_one(kit_copy)
    shown = outputs[1]
    assert "inputs['image']" in shown and "outputs['digit']" in shown
    assert "Method name is: tensorflow/serving/predict" in shown
    _assert_requests(kit_copy)
    _assert_labels(kit_copy, 1)


def test_loader_pod_mounts_the_kit_volume():
    with open(README, encoding="utf-8") as stream:
        [overrides] = re.findall(r"--overrides='(\{.*?\})'", stream.read())
    pod = json.loads(overrides)
    loaded = client.ApiClient().sanitize_for_serialization(client.V1Pod.from_dict(pod))
    assert loaded == pod
    with open(os.path.join(SERVING_DIR, "kubernetes", "pvc.yaml")) as stream:
        claim = yaml.safe_load(stream)["metadata"]["name"]
    assert pod["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == claim


class _StandIn(prediction_service_pb2_grpc.PredictionServiceServicer):
    """Answers GetModelMetadata and Predict from the SavedModel, as TF Serving would."""

    def __init__(self, version_dir):
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(version_dir, "saved_model.pb"), "rb") as stream:
            saved_model.ParseFromString(stream.read())
        self.signatures = get_model_metadata_pb2.SignatureDefMap()
        for name, signature in saved_model.meta_graphs[0].signature_def.items():
            self.signatures.signature_def[name].CopyFrom(signature)
        self.loaded = tf.saved_model.load(version_dir)
        self.requests = []

    def GetModelMetadata(self, request, context):  # noqa: N802  (gRPC's name)
        self.requests.append(request)
        response = get_model_metadata_pb2.GetModelMetadataResponse(model_spec=request.model_spec)
        response.metadata["signature_def"].Pack(self.signatures)
        return response

    def Predict(self, request, context):  # noqa: N802
        self.requests.append(request)
        inputs = {name: tf.make_ndarray(tensor) for name, tensor in request.inputs.items()}
        outputs = self.loaded.signatures["serving_default"](**inputs)
        response = predict_pb2.PredictResponse(model_spec=request.model_spec)
        for name, value in outputs.items():
            response.outputs[name].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


@contextlib.contextmanager
def _grpc_server(servicer):
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=2))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("localhost:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


def test_grpc_snippet_predicts_through_the_stubs(kit_copy):
    [snippet] = _blocks("python")
    servicer = _StandIn(os.path.join(kit_copy, "models", EXAMPLE_MODEL, "2"))
    with _grpc_server(servicer) as port:
        assert f'"localhost:{_layout.GRPC_PORT}"' in snippet
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(snippet.replace(f"localhost:{_layout.GRPC_PORT}", f"localhost:{port}"),
                         "serving/README.md", "exec"), {})
    metadata, predict = servicer.requests
    assert metadata.model_spec.name == predict.model_spec.name == EXAMPLE_MODEL
    assert list(predict.inputs) == ["image"]
    assert tf.make_ndarray(predict.inputs["image"]).shape == (2, 8, 8, 1)
    assert re.fullmatch(r"digits: \[\d \d\]\n", printed.getvalue())
