"""Helpers shared by the Keras 3 tests: config and `.keras` round trips, runs under JAX."""

import json
import os
import subprocess
import sys

import keras
import numpy as np

_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def assert_keras3_config_round_trip(obj):
    """get_config -> from_config and Keras 3 (de)serialization give an equal object."""
    config = obj.get_config()
    rebuilt = type(obj).from_config(config)
    assert rebuilt.get_config() == config
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(obj))
    assert type(restored) is type(obj)
    assert restored.get_config() == config
    return restored


def assert_keras3_file_round_trip(model, x, path):
    """Saves `model` to `path` (.keras), reloads it with plain keras.saving.load_model
    (no custom_objects), and asserts equal outputs on `x` and equal variables."""
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for before, after in zip(model.layers, loaded.layers):
        assert [v.name for v in after.weights] == [v.name for v in before.weights]
        for old, new in zip(before.weights, after.weights):
            np.testing.assert_array_equal(keras.ops.convert_to_numpy(new),
                                          keras.ops.convert_to_numpy(old),
                                          err_msg=f"{before.name}/{old.name}")
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(loaded(x, training=False)),
                                  keras.ops.convert_to_numpy(model(x, training=False)))
    return loaded


def run_under_jax(script, tmp_path):
    """Runs `script` (argv[1]: `tmp_path`) in a Python whose Keras runs on JAX.

    Keras picks its backend once, at import, hence a child process. Returns the
    JSON object the script prints on its last line.
    """
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2",
           "JAX_PLATFORMS": "cpu"}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path)], env=env, cwd=_ROOT,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])
