"""Generates tfopt's Python modules for TF Serving protos that tensorflow-serving-api lacks.

tensorflow-serving-api ships ModelServerConfig but not BatchingParameters
(servables/tensorflow/session_bundle_config.proto) nor MonitoringConfig
(config/monitoring_config.proto), the messages of the files that
``--batching_parameters_file`` and ``--monitoring_config_file`` read. Their
unmodified .proto files live in third_party/tensorflow_serving/; this script
compiles them with grpcio-tools' protoc into tfopt/export/_protos/.

session_bundle_config.proto imports TensorFlow's config.proto and
named_tensor.proto (and through them much of TensorFlow's proto tree). Rather
than vendoring that tree, protoc reads those files' descriptors from the
installed TensorFlow's Python modules (``--descriptor_set_in``), and the
generated code imports them from ``tensorflow.core`` as any TensorFlow proto
user does.

Usage (from the repository root, in the project's virtual environment):

  python tools/generate_protos.py            # rewrites tfopt/export/_protos/*_pb2.py
  python tools/generate_protos.py --out DIR  # writes them to DIR instead
"""

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile

from google.protobuf import descriptor_pb2

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Proto paths are relative to third_party/, so that the file names (and the
# names registered in the descriptor pool) are TF Serving's own.
PROTO_ROOT = os.path.join(REPOSITORY, "third_party")
PROTOS = (
    "tensorflow_serving/config/monitoring_config.proto",
    "tensorflow_serving/servables/tensorflow/session_bundle_config.proto",
)
PACKAGE = "tfopt.export._protos"
OUTPUT_DIR = os.path.join(REPOSITORY, *PACKAGE.split("."))
HEADER = "# Written by tools/generate_protos.py from third_party/{source}; rerun it to update.\n"

_IMPORT = re.compile(r'^import\s+(?:public\s+|weak\s+)?"([^"]+)";', re.MULTILINE)


def _module_name(proto):
    """The Python module protoc generates for `proto` (a path like a/b/c.proto)."""
    return proto[:-len(".proto")].replace("/", ".") + "_pb2"


def _imports(proto):
    with open(os.path.join(PROTO_ROOT, proto), encoding="utf-8") as file:
        return _IMPORT.findall(file.read())


def _descriptor_set(protos):
    """The FileDescriptorSet of everything `protos` import, from installed Python modules.

    Dependencies come before the files that import them, as protoc expects.
    """
    files = descriptor_pb2.FileDescriptorSet()
    seen = set()

    def add(file_descriptor):
        if file_descriptor.name in seen:
            return
        seen.add(file_descriptor.name)
        for dependency in file_descriptor.dependencies:
            add(dependency)
        file_descriptor.CopyToProto(files.file.add())

    for proto in protos:
        for imported in _imports(proto):
            if imported not in protos:
                add(importlib.import_module(_module_name(imported)).DESCRIPTOR)
    return files


def generate(output_dir=OUTPUT_DIR):
    """Compiles PROTOS into `output_dir` as ``<name>_pb2.py``; returns their paths."""
    with tempfile.TemporaryDirectory() as scratch:
        descriptors = os.path.join(scratch, "imports.pb")
        with open(descriptors, "wb") as file:
            file.write(_descriptor_set(PROTOS).SerializeToString())
        generated = os.path.join(scratch, "out")
        os.makedirs(generated)
        # In a child process: grpc_tools' protoc crashes in a process that has
        # loaded TensorFlow's own copy of the protobuf library first.
        run = subprocess.run([sys.executable, "-m", "grpc_tools.protoc",
                              f"--proto_path={PROTO_ROOT}", f"--descriptor_set_in={descriptors}",
                              f"--python_out={generated}", *PROTOS],
                             capture_output=True, text=True, check=False)
        if run.returncode != 0:
            raise RuntimeError(f"protoc failed (exit status {run.returncode}): {run.stderr}")
        os.makedirs(output_dir, exist_ok=True)
        return [_install(proto, generated, output_dir) for proto in PROTOS]


def _install(proto, generated, output_dir):
    """Moves `proto`'s module into the flat tfopt package, named as it is imported there."""
    source = os.path.join(generated, proto[:-len(".proto")] + "_pb2.py")
    with open(source, encoding="utf-8") as file:
        code = file.read()
    # The message classes' __module__ (used by pickle and repr) must name the
    # module they are imported from.
    original = f"'{_module_name(proto)}'"
    if code.count(original) != 1:
        raise RuntimeError(f"Expected the module name {original} once in protoc's output for "
                           f"{proto}; protoc's output format changed, update {__file__}.")
    name = os.path.basename(proto)[:-len(".proto")] + "_pb2"
    code = code.replace(original, f"'{PACKAGE}.{name}'")
    path = os.path.join(output_dir, name + ".py")
    with open(path, "w", encoding="utf-8") as file:
        file.write(HEADER.format(source=proto) + code)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=OUTPUT_DIR, help="directory for the *_pb2.py files")
    for path in generate(parser.parse_args(argv).out):
        print(path)


if __name__ == "__main__":
    sys.exit(main())
