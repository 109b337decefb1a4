"""The generated TF Serving protos: equal to what tools/generate_protos.py makes, and importable."""

import importlib.util
import os

import pytest
from google.protobuf import descriptor_pool
from google.protobuf import text_format

from tfopt.export._protos import monitoring_config_pb2
from tfopt.export._protos import session_bundle_config_pb2

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = [monitoring_config_pb2, session_bundle_config_pb2]


def _generator():
    spec = importlib.util.spec_from_file_location(
        "generate_protos", os.path.join(REPOSITORY, "tools", "generate_protos.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_modules_are_what_the_generator_makes(tmp_path):
    paths = _generator().generate(str(tmp_path))
    assert sorted(os.path.basename(p) for p in paths) == sorted(
        os.path.basename(m.__file__) for m in MODULES)
    for module in MODULES:
        with open(module.__file__, "rb") as committed, open(
                tmp_path / os.path.basename(module.__file__), "rb") as generated:
            assert committed.read() == generated.read(), (
                f"{module.__file__} differs from tools/generate_protos.py's output; rerun it.")


@pytest.mark.parametrize("module, message, source", [
    (monitoring_config_pb2, "MonitoringConfig",
     "tensorflow_serving/config/monitoring_config.proto"),
    (session_bundle_config_pb2, "BatchingParameters",
     "tensorflow_serving/servables/tensorflow/session_bundle_config.proto"),
])
def test_modules_register_tf_servings_names_beside_tensorflow_serving_api(module, message, source):
    # All of tensorflow-serving-api's modules in the same process: a clash of
    # file or message names would have raised on import.
    from tensorflow_serving.apis import prediction_log_pb2  # noqa: F401
    from tensorflow_serving.apis import prediction_service_pb2_grpc  # noqa: F401
    from tensorflow_serving.apis import model_service_pb2_grpc  # noqa: F401
    from tensorflow_serving.config import model_server_config_pb2  # noqa: F401
    from tensorflow_serving.config import platform_config_pb2  # noqa: F401
    pool = descriptor_pool.Default()
    assert pool.FindFileByName(source) is module.DESCRIPTOR
    found = pool.FindMessageTypeByName(f"tensorflow.serving.{message}")
    assert found is getattr(module, message).DESCRIPTOR
    assert getattr(module, message).__module__ == module.__name__
    # The original .proto is the one kept under third_party/.
    assert os.path.isfile(os.path.join(REPOSITORY, "third_party", source))


def test_session_bundle_config_uses_tensorflows_own_protos():
    from tensorflow.core.protobuf import config_pb2
    from tensorflow.core.protobuf import named_tensor_pb2
    config = session_bundle_config_pb2.SessionBundleConfig()
    assert config.session_config.DESCRIPTOR is config_pb2.ConfigProto.DESCRIPTOR
    fixed_inputs = session_bundle_config_pb2.SessionBundleConfig.DESCRIPTOR.fields_by_name[
        "experimental_fixed_input_tensors"]
    assert fixed_inputs.message_type is named_tensor_pb2.NamedTensorProto.DESCRIPTOR
    config.session_config.intra_op_parallelism_threads = 2
    config.batching_parameters.max_batch_size.value = 16
    parsed = text_format.Parse(text_format.MessageToString(config),
                               session_bundle_config_pb2.SessionBundleConfig())
    assert parsed == config
