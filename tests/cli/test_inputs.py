"""Tests of tfopt.cli._inputs: models, data and output paths checked before any work."""

import json
import os
import zipfile

import h5py
import numpy as np
import pytest
import tf_keras as keras

from tfopt import datasets
from tfopt.cli import _inputs
from tfopt.cli._app import UsageError


def _text(path, content="hello\n"):
    with open(path, "w") as f:
        f.write(content)
    return str(path)


def _truncated(tool_files, path):
    with open(tool_files["model"], "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    return str(path)


def _archive(path, **members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, content in members.items():
            archive.writestr(name.replace("_json", ".json"), json.dumps(content))
    return str(path)


def _hdf5_without_model(path):
    with h5py.File(path, "w") as f:
        f["weights"] = np.zeros(3)
    return str(path)


@pytest.mark.parametrize("make,message", [
    (lambda d, t: str(d / "missing.keras"), "does not exist"),
    (lambda d, t: str(d), "is a directory, not a model file"),
    (lambda d, t: _text(d / "notes.keras"), "is not a Keras model: neither a .keras archive"),
    (lambda d, t: _text(d / "notes.h5"), "is not a Keras model: neither a .keras archive"),
    (lambda d, t: _truncated(t, d / "cut.keras"), "is a damaged zip archive .* cut short"),
    (lambda d, t: _archive(d / "other.keras", notes_json={}), "is a zip archive without config.json"),
    (lambda d, t: _archive(d / "k3.keras", config_json={}, metadata_json={
        "keras_version": "3.15.1"}), "was saved by Keras 3.15.1; tfopt works with Keras 2"),
    (lambda d, t: _hdf5_without_model(d / "weights.h5"), "cannot be loaded as a tf_keras model"),
])
def test_files_that_are_not_models_are_named(tmp_path, tool_files, make, message):
    path = make(tmp_path, tool_files)
    with pytest.raises(UsageError, match=f"--model='{path}' {message}"):
        _inputs.load_model(path)


def test_models_load_from_keras_and_h5_files(tmp_path, tool_files):
    model = _inputs.load_model(tool_files["model"])
    h5 = str(tmp_path / "model.h5")
    model.save(h5)
    assert _inputs.load_model(h5).count_params() == model.count_params()


def test_loading_an_unstepped_optimizer_does_not_warn(tmp_path, caplog):
    """tf_keras warns it cannot restore an optimizer that was compiled but never
    stepped; the tool fine-tunes with a new one, so the warning would only puzzle."""
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    path = str(tmp_path / "fresh.keras")
    model.save(path)
    keras.models.load_model(path)
    assert "Skipping variable loading for optimizer" in caplog.text  # the warning exists
    caplog.clear()
    _inputs.load_model(path)
    assert "Skipping variable loading" not in caplog.text


def _two_inputs():
    a, b = keras.Input((4,)), keras.Input((4,))
    return keras.Model([a, b], keras.layers.Dense(3)(keras.layers.Concatenate()([a, b])))


@pytest.mark.parametrize("make,message", [
    (_two_inputs, "has 2 inputs and 1 outputs"),
    (lambda: keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3)]),
     r"outputs shape \(None, 6, 6, 4\); the tool fine-tunes classifiers"),
    (lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)]),
     r"outputs shape \(None, 1\).*at least 2 classes"),
])
def test_models_that_are_not_classifiers_are_refused(make, message):
    with pytest.raises(UsageError, match=message):
        _inputs.validate_classifier(make(), "--model='m.keras'")


@pytest.mark.parametrize("name,message", [
    ("mnist", "--data='mnist': use 'digits' or 'fashion_mnist', or an .npz file"),
    ("{directory}/array.npy", "use 'digits' or 'fashion_mnist', or an .npz file"),
    ("{directory}/missing.npz", "missing.npz' does not exist"),
    ("{text}", "is not an .npz file .the zip archive of arrays that numpy.savez writes"),
    ("{missing_keys}", r"has no x_train and y_train; it holds \['images', 'labels'\]"),
    ("{object_arrays}", "x_train holds Python objects, not numbers"),
])
def test_bad_data_files_are_named(tmp_path, tool_files, name, message):
    name = name.format(text=_text(tmp_path / "notes.npz"), **tool_files)
    with pytest.raises(UsageError, match=message):
        _inputs.load_data(name)


def test_npz_needs_x_test_and_y_test_together(tmp_path):
    path = str(tmp_path / "half.npz")
    np.savez(path, x_train=np.zeros((2, 3)), y_train=np.zeros(2), x_test=np.zeros((2, 3)))
    with pytest.raises(UsageError, match="has no y_test.*x_test and y_test together"):
        _inputs.load_data(path)


def test_missing_fashion_mnist_is_a_usage_error(tmp_path, monkeypatch):
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path / "none"))
    with pytest.raises(UsageError, match="--data=fashion_mnist: Fashion-MNIST not found.*"
                       "apt-get install dataset-fashion-mnist"):
        _inputs.load_data("fashion_mnist")


def test_npz_without_test_split_tests_on_train(tool_files):
    (x_train, y_train), (x_test, y_test) = _inputs.load_data(tool_files["ok"])
    assert x_test is x_train and y_test is y_train


@pytest.fixture(scope="module")
def classifier():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(10)])


_X = np.zeros((6, 8, 8, 1), np.float32)
_Y = np.arange(6)


def _nan_x():
    x = _X.copy()
    x[1, 2, 3, 0] = np.nan
    return x


@pytest.mark.parametrize("x,y,message", [
    (np.zeros((6, 28, 28, 1)), _Y,
     r"x_train has a batch of shape \(6, 28, 28, 1\); the model's input .* is "
     r"\(None, 8, 8, 1\)"),
    (np.zeros((6, 64)), _Y, r"x_train has a batch of shape \(6, 64\)"),
    (np.full((6, 8, 8, 1), "a"), _Y, "x_train holds <U1 values, not numbers"),
    (_X[:0], _Y[:0], "x_train holds no examples"),
    (_nan_x(), _Y, r"x_train holds 1 non-finite value\(s\) \(NaN or infinity\)"),
    (_X, _Y + 5, r"y_train holds labels 5\.\.10, but the model outputs 10 classes "
                 r"\(labels 0\.\.9\).*last layer has 11 units"),
    (_X, _Y - 1, r"y_train holds labels -1\.\.4"),
    (_X, _Y + 0.5, "y_train has dtype float64 with values that are not whole numbers"),
    (_X, np.eye(10)[_Y], r"y_train has shape \(6, 10\); give one integer class label per "
                         r"example, shape \(6,\) \(from one-hot labels: y.argmax\(-1\)\)"),
    (_X, _Y[:4], "y_train has 4 labels for 6 examples"),
])
def test_data_that_does_not_fit_the_model_is_explained(classifier, x, y, message):
    with pytest.raises(UsageError, match="--data='d.npz': " + message):
        _inputs.fit_data(classifier, (x, y), (_X, _Y), given="--data='d.npz'")


def test_test_split_is_checked_too(classifier):
    with pytest.raises(UsageError, match=r"x_test has a batch of shape \(6, 9, 9, 1\)"):
        _inputs.fit_data(classifier, (_X, _Y), (np.zeros((6, 9, 9, 1)), _Y), given="d")


def test_integer_inputs_are_cast_to_the_models_float_input(classifier):
    """uint8 pixels in an .npz are common; fit casts them, and so does the check."""
    (x, _), _ = _inputs.fit_data(classifier, (np.zeros((6, 8, 8, 1), np.uint8), _Y), (_X, _Y),
                                 given="d")
    assert x.dtype == np.float32


def test_fitting_data_comes_back_with_int64_labels(classifier):
    (x, y), (_, y_test) = _inputs.fit_data(
        classifier, (_X, _Y.astype(np.float32)), (_X, _Y[:, None]), given="d")
    assert x is _X and y.dtype == np.int64 and y_test.shape == (6,)
    np.testing.assert_array_equal(y, _Y)


def _directory(path):
    os.makedirs(path)
    return str(path)


@pytest.mark.parametrize("make,message", [
    (lambda d: str(d / "out.h5"), "must end in .keras"),
    (lambda d: _directory(d / "dir.keras"), "is a directory; give a file name inside it"),
    (lambda d: _text(d / "afile") + "/out.keras", "is a file, not a directory"),
    (lambda d: "/proc/tfopt/out.keras", "creating a file in '/proc' fails"),
])
def test_unwritable_outputs_are_refused(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(UsageError, match=f"--output='{path}' .*{message}"):
        _inputs.validate_output(path)


def test_a_writable_output_is_accepted_without_creating_anything(tmp_path):
    _inputs.validate_output(str(tmp_path / "new" / "deeper" / "model.keras"))
    assert os.listdir(tmp_path) == []
