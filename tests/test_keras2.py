"""Importing tfopt leaves `tf.keras` and TF_USE_LEGACY_KERAS as the user set them."""

import os
import subprocess
import sys

import pytest

# Imports every tfopt package (tfmot comes with the tf-keras ones), then reports which
# Keras `tf.keras` is ("keras": Keras 3, "tf_keras": Keras 2) and the variable's value,
# as a user's script would see them.
_SCRIPT = """
import os
import tfopt.pruning, tfopt.quantization, tfopt.distillation, tfopt.export, tfopt.pipeline
import tfopt.keras3
for name in tfopt.keras3.__all__:
    getattr(tfopt.keras3, name)
import tensorflow as tf
print(tf.keras.__name__.split(".")[0], os.environ.get("TF_USE_LEGACY_KERAS"))
"""


@pytest.mark.parametrize("setting, tf_keras_is, variable", [
    (None, "keras", "None"),    # the default: tf.keras stays Keras 3
    ("1", "tf_keras", "1"),     # the user asked for Keras 2: kept
])
def test_imports_keep_tf_keras_and_the_variable_as_the_user_set_them(
        setting, tf_keras_is, variable):
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    if setting is not None:
        env["TF_USE_LEGACY_KERAS"] = setting
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    out = subprocess.run([sys.executable, "-c", _SCRIPT], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == [tf_keras_is, variable]


def test_importing_tfmot_directly_would_have_switched_tf_keras():
    # The side effect tfopt._keras2 guards against, so the test above can fail.
    env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    script = ("import os, tensorflow_model_optimization, tensorflow as tf; "
              "print(tf.keras.__name__.split('.')[0], os.environ.get('TF_USE_LEGACY_KERAS'))")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120, check=True).stdout.split()
    assert out == ["tf_keras", "1"]
