"""Models and a gRPC server on a loopback port, shared by the gRPC and client tests.

Four models: TF Serving's half_plus_two (version 123; predict, classify and
regress signatures; the conftest's session fixture), and two tfopt exports,
"one" (a single input of 4 floats, a classifier with a ``classify``
signature), "pair" (inputs "a" and "b", outputs "sum" and "logits") and
"typed" (float64 and int32 outputs).
"""

import contextlib
from concurrent import futures

import grpc
import numpy as np

import tfopt  # noqa: F401  (before tf_keras)
import tensorflow as tf
import tf_keras as keras
from tensorflow_serving.config import model_server_config_pb2

from tfopt import export
from tfopt.serving._grpc import add_servicers
from tfopt.serving._manager import ServableManager

HALF_PLUS_TWO_VERSION = 123


def one_input_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((4,), name="features")
    outputs = keras.layers.Dense(3, name="logits")(inputs)
    return keras.Model(inputs, outputs, name="one")


def two_input_model():
    keras.utils.set_random_seed(1)
    a = keras.Input((3,), name="a")
    b = keras.Input((2,), name="b")
    joined = keras.layers.Concatenate()([a, b])
    return keras.Model([a, b], [keras.layers.Dense(1, name="sum")(joined),
                                keras.layers.Dense(4, name="logits")(joined)], name="pair")


def typed_model():
    """Outputs of dtypes JSON numbers do not tell apart: float64 "third" and int32 "rounded"."""
    x = keras.Input((2,), name="x")
    third = keras.layers.Lambda(lambda t: tf.cast(t, tf.float64) / 3, name="third")(x)
    rounded = keras.layers.Lambda(lambda t: tf.cast(tf.round(t), tf.int32), name="rounded")(x)
    return keras.Model(x, [third, rounded], name="typed")


def write_models(root, half_plus_two_base):
    """Writes the tfopt exports under `root`; the ModelServerConfig of them and half_plus_two."""
    export.saved_model(one_input_model(), str(root / "one"), version=1, signatures="classify",
                       class_names=["a", "b", "c"], verify=False)
    export.saved_model(two_input_model(), str(root / "pair"), version=1, verify=False)
    export.saved_model(typed_model(), str(root / "typed"), version=1, verify=False)
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in (("half_plus_two", half_plus_two_base), ("one", root / "one"),
                            ("pair", root / "pair"), ("typed", root / "typed")):
        config.model_config_list.config.add(name=name, base_path=str(base_path),
                                            model_platform="tensorflow")
    return config


def start_manager(root, half_plus_two_base):
    """A started ServableManager (no polling) of the four models."""
    manager = ServableManager(write_models(root, half_plus_two_base),
                              file_system_poll_wait_seconds=0)
    manager.start()
    return manager


@contextlib.contextmanager
def grpc_server(manager, batcher=None, metrics=None, workers=8):
    """A started grpc.server on 127.0.0.1 with the servicers; yields its port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=workers))
    add_servicers(server, manager, batcher=batcher, metrics=metrics)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield port
    finally:
        server.stop(grace=None)


def pair_inputs(rows=2, seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(rows, 3)).astype(np.float32),
            "b": rng.normal(size=(rows, 2)).astype(np.float32)}
