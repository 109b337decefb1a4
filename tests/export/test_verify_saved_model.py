"""verify_saved_model: figures from the version run as TF Serving runs it."""

import os

import numpy as np
import pytest
import tf_keras as keras

from tfopt.export._saved_model import saved_model
from tfopt.export._verify_saved_model import verify_saved_model


@pytest.fixture(scope="module")
def digits_version(trained_cnn, digits_split, tmp_path_factory):
    _, (x_test, _) = digits_split
    return saved_model(trained_cnn, tmp_path_factory.mktemp("export") / "digits",
                       warmup_inputs=x_test[:10])


def test_figures_match_a_direct_computation(digits_version, trained_cnn, digits_split):
    _, (x_test, y_test) = digits_split
    x, y = x_test[:300], y_test[:300]
    figures = verify_saved_model(digits_version, x, reference=trained_cnn, labels=y)
    expected = trained_cnn.predict(x, verbose=0)
    assert figures["examples"] == 300 and figures["warmup_records"] == 11
    assert 0 <= figures["max_abs_diff"] < 1e-4
    assert figures["agreement"] == 1.0
    assert figures["accuracy"] == pytest.approx(np.mean(np.argmax(expected, -1) == y))
    assert figures["reference_accuracy"] == figures["accuracy"]
    one_hot = verify_saved_model(digits_version, x, labels=np.eye(10)[y])
    assert one_hot == {"examples": 300, "warmup_records": 11, "accuracy": figures["accuracy"]}


def test_a_different_model_shows_in_the_figures(digits_version, trained_cnn, digits_split):
    _, (x_test, _) = digits_split
    other = keras.models.clone_model(trained_cnn)  # same layers, fresh weights
    other.set_weights([w * 0.5 for w in trained_cnn.get_weights()])
    figures = verify_saved_model(digits_version, x_test[:100], reference=other)
    expected = trained_cnn.predict(x_test[:100], verbose=0)
    halved = other.predict(x_test[:100], verbose=0)
    assert figures["max_abs_diff"] == pytest.approx(np.max(np.abs(expected - halved)), rel=1e-3)
    assert figures["agreement"] == pytest.approx(
        np.mean(np.argmax(expected, -1) == np.argmax(halved, -1)))


def test_misuse_gets_a_clear_error(digits_version, trained_cnn, digits_split, tmp_path):
    _, (x_test, y_test) = digits_split
    base = os.path.dirname(digits_version)
    with pytest.raises(ValueError, match="looks like a base path.*" + digits_version):
        verify_saved_model(base, x_test)
    with pytest.raises(ValueError, match="No version directory"):
        verify_saved_model(str(tmp_path / "none"), x_test)
    with pytest.raises(TypeError, match="version_dir must be a path"):
        verify_saved_model(3, x_test)
    wrong = keras.Sequential([keras.Input((4,), name="features"), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match=r"reference model takes inputs \['features'\]"):
        verify_saved_model(digits_version, x_test, reference=wrong)
    with pytest.raises(ValueError, match="labels has 3 labels for 20 examples"):
        verify_saved_model(digits_version, x_test[:20], labels=y_test[:3])
    with pytest.raises(ValueError, match="pass inputs too"):
        verify_saved_model(digits_version, None, labels=y_test[:3])
    with pytest.raises(ValueError, match="inputs has a batch of shape"):
        verify_saved_model(digits_version, x_test[:, :4])
    bare = saved_model(trained_cnn, tmp_path / "bare", verify=False)
    with pytest.raises(ValueError, match="Nothing to verify"):
        verify_saved_model(bare, None)
