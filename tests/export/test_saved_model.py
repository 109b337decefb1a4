"""export.saved_model: versions, overwrite, model kinds, refusals, and the check."""

import logging
import os
import re

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_model_optimization as tfmot
import tf_keras as keras
from absl import logging as absl_logging

from tfopt import distillation
from tfopt import pruning
from tfopt.export import _saved_model
from tfopt.export import _versions
from tfopt.export._saved_model import saved_model
from tfopt.export._saved_model_bundle import SavedModelBundle
from tests.conftest import subclassed_model

X = np.random.default_rng(0).normal(size=(12, 4)).astype("float32")


def tiny(seed=0, classes=3, activation=None):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((4,), name="features"),
                             keras.layers.Dense(8, activation="relu", name="hidden"),
                             keras.layers.Dense(classes, activation=activation, name="logits")])


def served(version_dir, x):
    with SavedModelBundle(version_dir) as bundle:
        (outputs,) = bundle.run("serving_default", {"features": x}).values()
    return outputs


def _listing(base):
    return sorted(os.listdir(base))


@pytest.mark.parametrize("name, number", [
    ("1", 1), ("007", 7), ("+5", 5), (" 12\n", 12), ("-3", -3), ("9223372036854775807", 2**63 - 1),
    ("9223372036854775808", None), ("1.0", None), ("1e3", None), ("", None), ("v2", None),
    (".tfopt-12-abc", None), ("0x1f", None)])
def test_version_names_parse_as_tf_serving_reads_them(name, number):
    assert _versions.parse(name) == number


def test_versions_count_up_from_the_highest_integer_named_child(tmp_path):
    base = tmp_path / "digits"
    assert saved_model(tiny(), base) == str(base / "1")
    for name in ["007", "notes", "12abc", ".tfopt-1-x"]:
        (base / name).mkdir()
    (base / "readme.txt").write_text("not a version")
    assert saved_model(tiny(), str(base)) == str(base / "8")
    assert served(base / "8", X) == pytest.approx(tiny().predict(X, verbose=0), abs=1e-5)


def test_an_existing_version_is_refused_naming_its_directory(tmp_path):
    base = tmp_path / "digits"
    first = saved_model(tiny(seed=0), base, version=3)
    expected = re.escape(repr(first)) + ".*overwrite=True.*next one \\(4\\)"
    with pytest.raises(ValueError, match=expected):
        saved_model(tiny(seed=1), base, version=3)
    assert _listing(base) == ["3"]
    assert served(first, X) == pytest.approx(tiny(seed=0).predict(X, verbose=0), abs=1e-5)


def test_007_is_version_7_refused_then_replaced_with_overwrite(tmp_path):
    base = tmp_path / "digits"
    os.rename(saved_model(tiny(seed=0), base, version=7), base / "007")
    with pytest.raises(ValueError, match=re.escape(repr(str(base / "007")))):
        saved_model(tiny(seed=1), base, version=7)

    assert saved_model(tiny(seed=1), base, version=7, overwrite=True) == str(base / "7")
    assert _listing(base) == ["7"]  # the old "007" went, with the staging directory
    assert served(base / "7", X) == pytest.approx(tiny(seed=1).predict(X, verbose=0), abs=1e-5)


def test_overwrite_replaces_a_version_in_place(tmp_path):
    base = tmp_path / "digits"
    saved_model(tiny(seed=0), base, warmup_inputs=X)
    saved_model(tiny(seed=1), base, version=1, overwrite=True)
    assert _listing(base) == ["1"]
    assert not os.path.exists(base / "1" / "assets.extra")  # nothing of the old version left
    assert served(base / "1", X) == pytest.approx(tiny(seed=1).predict(X, verbose=0), abs=1e-5)


def _another_export_takes(version, base, monkeypatch):
    """Makes a stand-in for another process write `version` while this export is checked."""
    check = _saved_model._check

    def check_while_another_export_lands(*args, **kwargs):
        if not os.path.exists(os.path.join(base, str(version))):
            os.makedirs(os.path.join(base, str(version), "variables"))
            with open(os.path.join(base, str(version), "saved_model.pb"), "w") as stream:
                stream.write("theirs")
        return check(*args, **kwargs)

    monkeypatch.setattr(_saved_model, "_check", check_while_another_export_lands)


def test_a_version_another_export_takes_meanwhile_is_left_alone(tmp_path, monkeypatch):
    base = str(tmp_path / "digits")
    _another_export_takes(1, base, monkeypatch)
    assert saved_model(tiny(), base) == os.path.join(base, "2")  # the next free one
    with open(os.path.join(base, "1", "saved_model.pb")) as stream:
        assert stream.read() == "theirs"
    _another_export_takes(3, base, monkeypatch)
    with pytest.raises(ValueError, match="Version 3 appeared at .* while this export"):
        saved_model(tiny(), base, version=3)
    with open(os.path.join(base, "3", "saved_model.pb")) as stream:
        assert stream.read() == "theirs"
    assert _listing(base) == ["1", "2", "3"]


def test_a_stale_staging_directory_is_removed_and_never_taken_for_a_version(tmp_path):
    base = tmp_path / "digits"
    dead = os.fork()
    if dead == 0:
        os._exit(0)
    os.waitpid(dead, 0)
    stale = base / f".tfopt-{dead}-abc123" / "5"
    stale.mkdir(parents=True)
    (stale / "saved_model.pb").write_bytes(b"half")
    assert saved_model(tiny(), base) == str(base / "1")
    assert _listing(base) == ["1"]


def _counter_model():
    """Its output depends on how often Python ran `call`: traced graphs freeze the count."""

    class Counter(keras.layers.Layer):
        calls = 0

        def call(self, x):
            type(self).calls += 1
            return x + float(type(self).calls)

    return keras.Sequential([keras.Input((4,), name="features"),
                             keras.layers.Dense(3, name="dense"), Counter(name="logits")])


def test_a_version_that_disagrees_with_keras_is_removed_and_the_figure_reported(tmp_path):
    base = tmp_path / "digits"
    with pytest.raises(ValueError, match=r"differ from the Keras model's by up to 1\b.*nothing "
                                         r"was written"):
        saved_model(_counter_model(), base, warmup_inputs=X)
    assert _listing(base) == []
    # The same difference within an explicit tolerance is accepted.
    saved_model(_counter_model(), base, warmup_inputs=X, tolerance=5.0)
    assert _listing(base) == ["1"]


@pytest.fixture
def absl_info(caplog):
    """INFO lines of absl logging, which tfopt logs through. tf.saved_model.save resets
    the absl logger's level to absl's verbosity, so that is what is set here."""
    previous = absl_logging.get_verbosity()
    absl_logging.set_verbosity(absl_logging.INFO)
    try:
        with caplog.at_level(logging.INFO, logger="absl"):
            yield caplog
    finally:
        absl_logging.set_verbosity(previous)


def _pruned():
    model = pruning.prune(tiny(), pruning.ConstantSparsity(0.5, begin_step=0))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, np.arange(12) % 3, epochs=1, verbose=0, callbacks=[pruning.UpdatePruningStep()])
    return model, pruning.strip(model), "PruneWrapper"


def _tfmot_pruned():
    model = tfmot.sparsity.keras.prune_low_magnitude(
        tiny(), pruning_schedule=tfmot.sparsity.keras.ConstantSparsity(0.5, 0))
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, np.arange(12) % 3, epochs=1, verbose=0,
              callbacks=[tfmot.sparsity.keras.UpdatePruningStep()])
    return model, tfmot.sparsity.keras.strip_pruning(model), "strip_pruning"


def _quantization_aware():
    model = tfmot.quantization.keras.quantize_model(tiny())
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(X, np.arange(12) % 3, epochs=1, verbose=0)
    return model, model, "quantization-aware"


def _distiller():
    student = tiny(seed=2)
    return distillation.Distiller(tiny(seed=1), student), student, "its student"


def _plain():
    return tiny(), tiny(), "wrote"


@pytest.mark.parametrize("make", [_plain, _pruned, _tfmot_pruned, _quantization_aware,
                                  _distiller])
def test_every_kind_of_model_exports_what_a_server_should_run(make, tmp_path, absl_info):
    model, expected, logged = make()
    version = saved_model(model, tmp_path / "m", warmup_inputs=X)
    assert logged in absl_info.text
    assert served(version, X) == pytest.approx(expected.predict(X, verbose=0), abs=1e-5)
    # Only the served model's weights are saved: no masks, steps or quantizer ranges of
    # the training wrappers (a quantization-aware model keeps its ranges: it runs them).
    stored = [name for name, _ in tf.train.list_variables(os.path.join(version, "variables",
                                                                      "variables"))
              if name.startswith("model_variables/")]
    assert len(stored) == len(expected.variables)


def test_a_called_subclassed_model_exports(tmp_path):
    model = subclassed_model()
    version = saved_model(model, tmp_path / "m")
    x = X[:, :3]
    with SavedModelBundle(version) as bundle:
        outputs = bundle.run("serving_default", {"input_1": x})
    assert list(outputs) == ["output_1"]
    assert outputs["output_1"] == pytest.approx(model(x).numpy(), abs=1e-5)


class _Unbuilt(keras.Model):
    def call(self, x):
        return x


def _two_outputs():
    inputs = keras.Input((4,), name="features")
    return keras.Model(inputs, [keras.layers.Dense(3, name="a")(inputs),
                                keras.layers.Dense(2, name="b")(inputs)])


def _ends_in_batch_norm():
    return keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(3),
                             keras.layers.BatchNormalization()])


def _variable_length():
    return keras.Sequential([keras.Input((None, 4), name="steps"),
                             keras.layers.GlobalAveragePooling1D(),
                             keras.layers.Dense(3, activation="softmax")])


_FEATURE = tf.io.FixedLenFeature([4], tf.float32)


@pytest.mark.parametrize("model, kwargs, error, message", [
    (_Unbuilt, {}, ValueError, "known input shape.*call it once"),
    (lambda: "model.keras", {}, ValueError,
     r"needs a Keras model, tf_keras \(Keras 2\) or Keras 3, got builtins.str"),
    (tiny, {"version": "3"}, TypeError, "version must be an int"),
    (tiny, {"version": True}, TypeError, "version must be an int"),
    (tiny, {"version": -1}, ValueError, "between 0 and"),
    (tiny, {"signatures": "predict"}, ValueError, r"signatures \['predict'\] unknown"),
    (tiny, {"signatures": 5}, TypeError, "signatures must be a name"),
    (tiny, {"overwrite": "yes"}, TypeError, "overwrite must be True or False"),
    (tiny, {"verify": 1}, TypeError, "verify must be True or False"),
    (tiny, {"tolerance": -1.0}, ValueError, "tolerance must be a finite number >= 0"),
    (tiny, {"tolerance": "0.1"}, TypeError, "tolerance must be a number"),
    (tiny, {"tolerance": 0.1, "verify": False}, ValueError, "with verify=False"),
    (tiny, {"class_names": ["a", "b", "c"]}, ValueError, "class_names describe the classify"),
    (tiny, {"feature_spec": {"x": _FEATURE}}, ValueError, "feature_spec describe the classify"),
    (tiny, {"warmup_inputs": X[:, :3]}, ValueError, r"warmup_inputs has a batch of shape"),
    (tiny, {"warmup_inputs": X[0]}, ValueError, "one example at a time"),
    (tiny, {"warmup_inputs": np.full((2, 4), np.nan, "float32")}, ValueError, "non-finite"),
    (tiny, {"warmup_inputs": np.array([["a"] * 4])}, TypeError, "not numbers"),
    (tiny, {"warmup_inputs": np.zeros((970, 4), "float32")}, ValueError,
     "970 examples.*1001 warmup records.*at most 969"),
    (_two_outputs, {"signatures": "classify"}, ValueError, "one input and one output"),
    (_ends_in_batch_norm, {"signatures": "classify"}, ValueError, "logits or probabilities"),
    (lambda: tiny(classes=1), {"signatures": "classify"}, ValueError, "reads as a regression"),
    (_variable_length, {"signatures": "classify"}, ValueError, "Pass feature_spec"),
    (tiny, {"signatures": "classify", "class_names": ["a", "b"]}, ValueError,
     "each of the model's 3 classes"),
    (tiny, {"signatures": "classify", "class_names": [0, 1, 2]}, TypeError, "list of 3 strings"),
    (tiny, {"signatures": "classify", "feature_spec": {"x": tf.io.FixedLenFeature([5],
                                                                                  tf.float32)}},
     ValueError, "needs 4 numbers"),
    (tiny, {"signatures": "classify", "feature_spec": {"x": tf.io.FixedLenFeature([4],
                                                                                  tf.string)}},
     ValueError, "needs 4 numbers"),
    (tiny, {"signatures": "classify", "feature_spec": _FEATURE}, TypeError,
     "feature_spec must be a dict"),
])
def test_misuse_is_refused_before_anything_is_written(model, kwargs, error, message, tmp_path):
    base = tmp_path / "m"
    with pytest.raises(error, match=message):
        saved_model(model(), base, **kwargs)
    assert not base.exists()


@pytest.mark.parametrize("make_base, message", [
    (lambda tmp: tmp / "file", "is a file"),
    (lambda tmp: None, "base_path must be a directory path"),
    (lambda tmp: saved_model(tiny(), tmp / "m"), "is a SavedModel itself.*give its parent"),
])
def test_a_base_path_that_cannot_hold_versions_is_refused(make_base, message, tmp_path):
    (tmp_path / "file").write_text("x")
    base = make_base(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises((TypeError, ValueError), match=message):
        saved_model(tiny(), base)
    assert sorted(os.listdir(tmp_path)) == before
