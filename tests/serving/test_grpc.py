"""TF Serving's gRPC API (tfopt/serving/_grpc.py) over a real loopback socket, official stubs."""

import grpc
import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow.core.example import example_pb2
from tensorflow_serving.apis import classification_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.apis import get_model_status_pb2
from tensorflow_serving.apis import inference_pb2
from tensorflow_serving.apis import input_pb2
from tensorflow_serving.apis import model_management_pb2
from tensorflow_serving.apis import model_service_pb2_grpc
from tensorflow_serving.apis import predict_pb2
from tensorflow_serving.apis import prediction_service_pb2_grpc
from tensorflow_serving.apis import regression_pb2
from tensorflow_serving.config import model_server_config_pb2

from tests.serving import grpc_servers
from tfopt.export._protos import session_bundle_config_pb2
from tfopt.serving import _grpc
from tfopt.serving import _grpc_tensors
from tfopt.serving._batching import Batcher
from tfopt.serving._manager import ServableManager

VERSION = grpc_servers.HALF_PLUS_TWO_VERSION


@pytest.fixture(scope="module")
def manager(tmp_path_factory, half_plus_two_base):
    manager = grpc_servers.start_manager(tmp_path_factory.mktemp("grpc_models"),
                                         half_plus_two_base)
    yield manager
    manager.stop()


class Recorder:
    """A metrics stand-in with the interface the servicers use: record(model, api, code, s, entry)."""

    def __init__(self):
        self.calls = []

    def record(self, model_name, api, code, seconds, entrypoint):
        self.calls.append((model_name, api, code, seconds, entrypoint))


@pytest.fixture(scope="module")
def metrics():
    return Recorder()


@pytest.fixture(scope="module")
def channel(manager, metrics):
    with grpc_servers.grpc_server(manager, metrics=metrics) as port:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield channel


@pytest.fixture(scope="module")
def prediction(channel):
    return prediction_service_pb2_grpc.PredictionServiceStub(channel)


@pytest.fixture(scope="module")
def models(channel):
    return model_service_pb2_grpc.ModelServiceStub(channel)


def predict_request(name="half_plus_two", inputs=None, signature="", version=None, label=None,
                    output_filter=()):
    request = predict_pb2.PredictRequest(output_filter=list(output_filter))
    request.model_spec.name = name
    request.model_spec.signature_name = signature
    if version is not None:
        request.model_spec.version.value = version
    if label is not None:
        request.model_spec.version_label = label
    inputs = {"x": np.array([[1.0], [2.0]], np.float32)} if inputs is None else inputs
    for alias, array in inputs.items():
        request.inputs[alias].CopyFrom(_grpc_tensors.typed_proto(array))
    return request


def example_input(values, context=None):
    model_input = input_pb2.Input()
    examples = [example_pb2.Example() for _ in values]
    for example, value in zip(examples, values):
        example.features.feature["x"].float_list.value.append(value)
    if context is None:
        model_input.example_list.examples.extend(examples)
    else:
        target = model_input.example_list_with_context
        target.context.features.feature["x"].float_list.value.append(context)
        target.examples.extend(examples)
    return model_input


def abort_of(call, request):
    with pytest.raises(grpc.RpcError) as info:
        call(request, timeout=10)
    return info.value.code(), info.value.details()


@pytest.mark.parametrize("form", ["typed", "tensor_content"])
def test_predict_answers_in_typed_fields_with_the_resolved_model_spec(prediction, form):
    request = predict_request()
    if form == "tensor_content":
        request.inputs["x"].CopyFrom(_grpc_tensors.request_proto(np.array([[1.0], [2.0]],
                                                                          np.float32)))
        assert request.inputs["x"].tensor_content and not request.inputs["x"].float_val
    response = prediction.Predict(request, timeout=10)
    y = response.outputs["y"]
    # TF Serving's own e2e client reads outputs["y"].float_val.
    assert list(y.float_val) == [2.5, 3.0] and not y.tensor_content
    assert [dim.size for dim in y.tensor_shape.dim] == [2, 1]
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.signature_name == "serving_default"
    assert response.model_spec.version.value == VERSION


def test_predict_two_inputs_matches_in_process_outputs_and_output_filter(prediction, manager):
    inputs = grpc_servers.pair_inputs(rows=3)
    _, expected = manager.servable("pair").predict(inputs)
    response = prediction.Predict(predict_request("pair", inputs), timeout=10)
    assert set(response.outputs) == {"sum", "logits"}
    for alias, array in expected.items():
        np.testing.assert_array_equal(_grpc_tensors.to_array(response.outputs[alias]), array)
    filtered = prediction.Predict(predict_request("pair", inputs, output_filter=["sum"]),
                                  timeout=10)
    assert set(filtered.outputs) == {"sum"}


def test_predict_by_version_and_any_signature(prediction):
    request = predict_request(version=VERSION, signature="regress_x_to_y",
                              inputs={"inputs": np.array([_example_bytes(4.0)], object)})
    response = prediction.Predict(request, timeout=10)
    assert list(response.outputs["outputs"].float_val) == [4.0]
    assert response.model_spec.signature_name == "regress_x_to_y"


def _example_bytes(x):
    example = example_pb2.Example()
    example.features.feature["x"].float_list.value.append(x)
    return example.SerializeToString()


PREDICT_ERRORS = [
    ("no model_spec", predict_pb2.PredictRequest(),
     grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec"),
    ("unknown model", predict_request("nope"),
     grpc.StatusCode.NOT_FOUND, "Servable not found for request: Latest(nope)"),
    # ServerCore::ServableRequestFromModelSpec (server_core.cc).
    ("no model name", predict_request(""),
     grpc.StatusCode.INVALID_ARGUMENT, "ModelSpec has no name specified."),
    # saved_model::GetInputValues (tensorflow/cc/saved_model/util.cc).
    ("wrong input name", predict_request(inputs={"z": np.ones((1, 1), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT, "Signature input alias: x(feed name: x:0) not found in "
     "request and no default value provided. Inputs expected to be in the request {z}, or "
     "default input alias set: "),
    ("unknown version", predict_request(version=7),
     grpc.StatusCode.NOT_FOUND, "Servable not found for request: Specific(half_plus_two, 7)"),
    ("unknown label", predict_request(label="canary"),
     grpc.StatusCode.INVALID_ARGUMENT, "Unrecognized servable version label: canary"),
    ("unknown signature", predict_request(signature="nope"),
     grpc.StatusCode.FAILED_PRECONDITION, 'Serving signature key "nope" not found.'),
    ("extra input", predict_request(inputs={"x": np.ones((1, 1), np.float32),
                                            "z": np.ones((1, 1), np.float32)}),
     grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 2!=1 len({x,z}) != len({x}). Sent extra: {z}. "
     "Missing but required: {}."),
    ("no inputs", predict_request(inputs={}), grpc.StatusCode.INVALID_ARGUMENT,
     "input size does not match signature: 0!=1 len({}) != len({x}). Sent extra: {}. "
     "Missing but required: {x}."),
    ("dtype", predict_request(inputs={"x": np.array([[b"a"]], object)}),
     grpc.StatusCode.INVALID_ARGUMENT, "Expects arg[0] to be float but string is provided"),
    ("unknown output_filter", predict_request(output_filter=["zz"]),
     grpc.StatusCode.INVALID_ARGUMENT,
     "output tensor alias not found in signature: zz Outputs expected to be in the set {y}."),
    ("duplicate output_filter", predict_request(output_filter=["y", "y"]),
     grpc.StatusCode.INVALID_ARGUMENT, "duplicate output tensor alias: y"),
]


@pytest.mark.parametrize("request_, code, message", [case[1:] for case in PREDICT_ERRORS],
                         ids=[case[0] for case in PREDICT_ERRORS])
def test_predict_errors_carry_tf_servings_code_and_text(prediction, request_, code, message):
    assert abort_of(prediction.Predict, request_) == (code, message)
    # The server still answers afterwards.
    assert list(prediction.Predict(predict_request(), timeout=10).outputs["y"].float_val) == [
        2.5, 3.0]


def test_unreadable_tensor_is_invalid_argument(prediction):
    request = predict_request()
    request.inputs["x"].tensor_content = b"\x00\x01\x02"  # 3 bytes for 2 float32 values
    del request.inputs["x"].float_val[:]
    code, message = abort_of(prediction.Predict, request)
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT, "tensor parsing error: x")


def test_long_messages_are_cut_after_1024_characters(prediction):
    name = "m" * 2000
    code, message = abort_of(prediction.Predict, predict_request(name))
    full = f"Servable not found for request: Latest({name})"
    assert code == grpc.StatusCode.NOT_FOUND
    assert message == full[:1024] + "...TRUNCATED"
    assert _grpc.status_message("short") == "short"


@pytest.mark.parametrize("context", [None, 10.0])
def test_classify_and_regress_echo_the_model_spec(prediction, context):
    request = classification_pb2.ClassificationRequest(input=example_input([1.0, 2.0], context))
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "classify_x_to_y"
    response = prediction.Classify(request, timeout=10)
    # Each example's own "x" overrides the context's (context bytes come first).
    scores = [[entry.score for entry in row.classes]
              for row in response.result.classifications]
    assert scores == [[2.5], [3.0]]
    assert all(entry.label == "" for row in response.result.classifications
               for entry in row.classes)
    assert (response.model_spec.signature_name, response.model_spec.version.value) == (
        "classify_x_to_y", VERSION)
    request = regression_pb2.RegressionRequest(input=example_input([1.0, 2.0], context))
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "regress_x_to_y2"
    response = prediction.Regress(request, timeout=10)
    assert [entry.value for entry in response.result.regressions] == [3.5, 4.0]
    assert response.model_spec.signature_name == "regress_x_to_y2"


def test_classify_labels_of_a_tfopt_classifier(prediction, manager):
    example = example_pb2.Example()
    example.features.feature["features"].float_list.value.extend([1.0, 2.0, 3.0, 4.0])
    request = classification_pb2.ClassificationRequest()
    request.model_spec.name = "one"
    request.model_spec.signature_name = "classify"
    request.input.example_list.examples.append(example)
    response = prediction.Classify(request, timeout=10)
    _, classes, scores = manager.servable("one").classify([example.SerializeToString()],
                                                          "classify")
    row = response.result.classifications[0].classes
    assert [entry.label.encode() for entry in row] == list(classes[0])
    np.testing.assert_allclose([entry.score for entry in row], scores[0], rtol=1e-6)


EXAMPLE_ERRORS = [
    ("no model_spec", None, example_input([1.0]), grpc.StatusCode.INVALID_ARGUMENT,
     "Missing ModelSpec"),
    # Each method on its own signature: the signature is checked before the Input.
    ("empty input", "{method}_x_to_y", input_pb2.Input(), grpc.StatusCode.INVALID_ARGUMENT,
     "Input is empty."),
    ("unknown model", "", example_input([1.0]), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
    ("empty input, unknown model", "", input_pb2.Input(), grpc.StatusCode.NOT_FOUND,
     "Servable not found for request: Latest(nope)"),
]


@pytest.mark.parametrize("method", ["Classify", "Regress"])
def test_empty_input_is_checked_after_the_signature(prediction, method):
    # classifier.cc / regressor.cc check the signature before util.cc reads the Input.
    kind = (classification_pb2.ClassificationRequest if method == "Classify" else
            regression_pb2.RegressionRequest)
    request = kind(input=input_pb2.Input())
    request.model_spec.name = "half_plus_two"
    code, message = abort_of(getattr(prediction, method), request)
    noun = "classification" if method == "Classify" else "regression"
    assert code == grpc.StatusCode.INVALID_ARGUMENT
    assert message.startswith(f"No {noun} inputs found in SignatureDef: ")


@pytest.mark.parametrize("method", ["Classify", "Regress"])
@pytest.mark.parametrize("signature, model_input, code, message",
                         [case[1:] for case in EXAMPLE_ERRORS],
                         ids=[case[0] for case in EXAMPLE_ERRORS])
def test_classify_and_regress_errors(prediction, method, signature, model_input, code, message):
    kind = (classification_pb2.ClassificationRequest if method == "Classify" else
            regression_pb2.RegressionRequest)
    request = kind(input=model_input)
    if signature is not None:
        request.model_spec.name = "nope" if code == grpc.StatusCode.NOT_FOUND else "half_plus_two"
        request.model_spec.signature_name = signature.format(method=method.lower())
    assert abort_of(getattr(prediction, method), request) == (code, message)


def test_unknown_classify_signature_is_invalid_argument(prediction):
    request = classification_pb2.ClassificationRequest(input=example_input([1.0]))
    request.model_spec.name = "half_plus_two"
    request.model_spec.signature_name = "nope"
    code, message = abort_of(prediction.Classify, request)
    assert (code, message) == (grpc.StatusCode.INVALID_ARGUMENT,
                               "No signature was found with the name: nope")


def test_metadata_is_a_packed_signature_def_map(prediction):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
    request.model_spec.name = "half_plus_two"
    response = prediction.GetModelMetadata(request, timeout=10)
    signatures = get_model_metadata_pb2.SignatureDefMap()
    assert response.metadata["signature_def"].Unpack(signatures)
    assert set(signatures.signature_def) == {"serving_default", "classify_x_to_y",
                                             "regress_x_to_y", "regress_x_to_y2"}
    assert response.model_spec.name == "half_plus_two"
    assert response.model_spec.version.value == VERSION
    assert response.model_spec.signature_name == ""  # get_model_metadata_impl.cc sets none


@pytest.mark.parametrize("fields, message", [
    ([], "GetModelMetadataRequest must specify at least one metadata_field"),
    (["signature_def", "graph"], "Metadata field graph is not supported"),
])
def test_metadata_fields_are_checked(prediction, fields, message):
    request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=fields)
    request.model_spec.name = "half_plus_two"
    assert abort_of(prediction.GetModelMetadata, request) == (
        grpc.StatusCode.INVALID_ARGUMENT, message)


def test_model_status(models):
    request = get_model_status_pb2.GetModelStatusRequest()
    request.model_spec.name = "half_plus_two"
    response = models.GetModelStatus(request, timeout=10)
    (status,) = response.model_version_status
    assert (status.version, status.state, status.status.error_code) == (VERSION, 30, 0)
    request.model_spec.name = "nope"
    assert abort_of(models.GetModelStatus, request) == (
        grpc.StatusCode.NOT_FOUND, "Could not find any versions of model nope")
    assert abort_of(models.GetModelStatus, get_model_status_pb2.GetModelStatusRequest()) == (
        grpc.StatusCode.INVALID_ARGUMENT, "Missing ModelSpec")


def test_multi_inference_is_unimplemented(prediction):
    code, _ = abort_of(prediction.MultiInference, inference_pb2.MultiInferenceRequest())
    assert code == grpc.StatusCode.UNIMPLEMENTED


def test_reload_config_loads_the_new_list(manager, half_plus_two_base):
    first = model_server_config_pb2.ModelServerConfig()
    first.model_config_list.config.add(name="half_plus_two", base_path=half_plus_two_base,
                                       model_platform="tensorflow")
    own = ServableManager(first, file_system_poll_wait_seconds=0)
    own.start()
    try:
        with grpc_servers.grpc_server(own) as port, grpc.insecure_channel(
                f"127.0.0.1:{port}") as channel:
            stub = model_service_pb2_grpc.ModelServiceStub(channel)
            renamed = model_server_config_pb2.ModelServerConfig()
            text_format.Parse(f'model_config_list {{ config {{ name: "renamed" base_path: '
                              f'"{half_plus_two_base}" model_platform: "tensorflow" }} }}',
                              renamed)
            response = stub.HandleReloadConfigRequest(
                model_management_pb2.ReloadConfigRequest(config=renamed), timeout=30)
            assert response.status.error_code == 0
            assert own.model_names() == ["renamed"]
            code, message = abort_of(stub.HandleReloadConfigRequest,
                                     model_management_pb2.ReloadConfigRequest())
            assert code == grpc.StatusCode.INVALID_ARGUMENT
            assert message.startswith("ServerModelConfig type not supported")
    finally:
        own.stop()


def test_metrics_count_each_call_with_its_code(prediction, metrics):
    before = len(metrics.calls)
    prediction.Predict(predict_request(), timeout=10)
    abort_of(prediction.Predict, predict_request("nope"))
    recorded = [call[:3] + call[4:] for call in metrics.calls[before:]]
    assert recorded == [("half_plus_two", "Predict", grpc.StatusCode.OK, "GRPC"),
                        ("nope", "Predict", grpc.StatusCode.NOT_FOUND, "GRPC")]
    assert all(call[3] >= 0 for call in metrics.calls[before:])


def test_predict_through_a_batcher(manager):
    parameters = session_bundle_config_pb2.BatchingParameters()
    parameters.max_batch_size.value = 8
    batcher = Batcher(parameters)
    try:
        with grpc_servers.grpc_server(manager, batcher=batcher) as port, grpc.insecure_channel(
                f"127.0.0.1:{port}") as channel:
            stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
            response = stub.Predict(predict_request(), timeout=10)
            assert list(response.outputs["y"].float_val) == [2.5, 3.0]
            assert response.model_spec.signature_name == "serving_default"
            assert batcher.batches_run >= 1
    finally:
        batcher.stop()


@pytest.mark.parametrize("dtype, field", [
    (np.float32, "float_val"), (np.float64, "double_val"), (np.int32, "int_val"),
    (np.int8, "int_val"), (np.int64, "int64_val"), (np.uint32, "uint32_val"),
    (np.uint64, "uint64_val"), (np.bool_, "bool_val"), (np.float16, "half_val"),
    (np.complex64, "scomplex_val"), (object, "string_val"),
])
def test_typed_proto_round_trips(dtype, field):
    array = (np.array([[b"a", b"bc"], [b"", b"\xff"]], object) if dtype is object else
             np.array([[1, 0], [3, 4]]).astype(dtype))
    proto = _grpc_tensors.typed_proto(array)
    assert getattr(proto, field) and not proto.tensor_content
    back = _grpc_tensors.to_array(proto)
    assert back.shape == array.shape and back.dtype == array.dtype
    np.testing.assert_array_equal(back, array)
    np.testing.assert_array_equal(_grpc_tensors.to_array(_grpc_tensors.request_proto(array)),
                                  array)


def test_typed_proto_refuses_what_tf_serving_cannot_carry():
    with pytest.raises(TypeError, match="cannot be sent to TF Serving"):
        _grpc_tensors.typed_proto(np.array(["2020-01-01"], "datetime64[D]"))
    with pytest.raises(TypeError, match="must hold str or bytes"):
        _grpc_tensors.typed_proto(np.array([5, b"a"], object))


def test_add_servicers_validates_its_arguments(manager):
    with pytest.raises(TypeError, match="server must be a grpc.Server"):
        _grpc.add_servicers(object(), manager)
    with pytest.raises(TypeError, match="manager must be a tfopt.serving ServableManager"):
        _grpc.add_servicers(grpc.server(None), object())


class FailingServable:
    name, version = "broken", 1

    def __init__(self, error):
        self.error = error

    def predict(self, inputs, signature_name="", output_filter=()):
        raise self.error


class FailingManager:
    def __init__(self, error):
        self.error = error

    def servable(self, model_name, version=None, label=None):
        return FailingServable(self.error)

    def status(self, model_name, version=None, label=None):
        raise AssertionError("not called")

    def reload_config(self, config):
        raise AssertionError("not called")


@pytest.mark.parametrize("error, code, message", [
    (tf.errors.ResourceExhaustedError(None, None, "OOM when allocating"),
     grpc.StatusCode.RESOURCE_EXHAUSTED, "OOM when allocating"),
    (RuntimeError("boom"), grpc.StatusCode.INTERNAL, "RuntimeError: boom"),
])
def test_unexpected_errors_become_a_status_and_the_server_lives_on(error, code, message):
    with grpc_servers.grpc_server(FailingManager(error)) as port, grpc.insecure_channel(
            f"127.0.0.1:{port}") as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        for _ in range(2):
            assert abort_of(stub.Predict, predict_request("broken")) == (code, message)
