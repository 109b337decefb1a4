"""Fixtures for export tests: a small trained digits CNN and its files in every mode, and
the export root the deployment kit is rendered from."""

import contextlib
import os
import signal

import numpy as np
import pytest
import tf_keras as keras

from tfopt import datasets
from tfopt import export
from tfopt.export import _layout


def digits_cnn(seed=0):
    """Conv-Conv-Dense, 38k weights: enough that weights, not the flatbuffer's
    fixed overhead, set the file size, so mode size ratios show."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"),
        keras.layers.Conv2D(32, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ])


def compile_and_fit(model, x, y, epochs=3, lr=1e-2, callbacks=()):
    model.compile(keras.optimizers.Adam(lr),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x, y, epochs=epochs, batch_size=64, verbose=0, callbacks=list(callbacks))
    return model


@pytest.fixture(scope="session")
def digits_split():
    return datasets.load_digits()


@pytest.fixture(scope="session")
def trained_cnn(digits_split):
    (x, y), _ = digits_split
    return compile_and_fit(digits_cnn(), x, y)


@pytest.fixture(scope="session")
def tflite_files(trained_cnn, digits_split, tmp_path_factory):
    """{mode: path} for every mode, int modes calibrated on 300 training images."""
    (x, _), _ = digits_split
    directory = tmp_path_factory.mktemp("tflite")
    return {mode: export.tflite(trained_cnn, str(directory / f"{mode}.tflite"), mode=mode,
                                representative_data=x[:300] if mode.startswith("int") else None)
            for mode in export.TFLITE_MODES}


def tensor_dtypes(path):
    """Input dtypes, output dtypes and the set of all tensor dtypes of a file."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path)
    interpreter.allocate_tensors()
    return ([np.dtype(d["dtype"]) for d in interpreter.get_input_details()],
            [np.dtype(d["dtype"]) for d in interpreter.get_output_details()],
            {np.dtype(d["dtype"]) for d in interpreter.get_tensor_details()})


def float_tensors_in_use(path):
    """Names of the float tensors some op of the file reads or writes.

    A quantized LSTM also lists float "intermediate" tensors that only carry
    scales; no op touches them, so an integer-only file may hold them.
    """
    from ai_edge_litert.interpreter import Interpreter, OpResolverType
    interpreter = Interpreter(model_path=str(path), experimental_op_resolver_type=(
        OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES))
    interpreter.allocate_tensors()
    used = {i for op in interpreter._get_ops_details() for i in (*op["inputs"], *op["outputs"])}
    return [d["name"] for d in interpreter.get_tensor_details()
            if d["index"] in used and np.dtype(d["dtype"]).kind == "f"]


@contextlib.contextmanager
def time_limit(seconds):
    """Raises TimeoutError in the block after `seconds`, so a call that once hung
    (quantize on some Functional models, an endless tf.data pipeline) fails its
    test instead of stopping the suite. Main thread only (SIGALRM)."""

    def expire(*unused):
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


# The deployment kit: serving/ holds the kit for the example model.
SERVING_DIR = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "serving")
EXAMPLE_MODEL = "digits"


def example_served_model(model_name, version):
    """models.config's entry after `tfopt-export --labels=stable` wrote `version`."""
    return export.ServedModel(model_name, versions=[version], labels={"stable": version})


def write_export_root(root, model_name=EXAMPLE_MODEL, versions=(1,)):
    """An export root as tfopt-export leaves it: SavedModel versions and the three
    configs, written by the same functions with the defaults the tool uses, and
    the newest version labelled stable, as examples/export_digits.py exports it."""
    model = keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(2, name="y")])
    for version in versions:
        export.saved_model(model, os.path.join(root, model_name), version=version)
    export.model_server_config([example_served_model(model_name, versions[-1])],
                               os.path.join(root, _layout.MODELS_CONFIG))
    export.batching_config(os.path.join(root, _layout.BATCHING_CONFIG))
    export.monitoring_config(os.path.join(root, _layout.MONITORING_CONFIG))
    return root
