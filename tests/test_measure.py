import keras as keras3
import numpy as np
import pytest
import tf_keras as keras

from tfopt import measure

KERASES = pytest.mark.parametrize("k", [keras, keras3], ids=["tf_keras", "keras3"])


def _dense_model(seed=0, k=keras):
    k.utils.set_random_seed(seed)
    return k.Sequential([k.Input((64,)), k.layers.Dense(256), k.layers.Dense(10)])


@KERASES
def test_zeros_compress_and_raw_size_does_not_change(k):
    model = _dense_model(k=k)
    raw, compressed = measure.keras_file_size(model)
    assert compressed < raw
    sparse = _dense_model(k=k)
    sparse.set_weights([np.where(np.random.default_rng(0).random(w.shape) < 0.8, 0.0, w)
                        for w in sparse.get_weights()])
    sparse_raw, sparse_compressed = measure.keras_file_size(sparse)
    assert abs(sparse_raw - raw) < 512
    assert sparse_compressed < 0.5 * compressed
    # .keras files carry their save time, so two saves differ by a few bytes.
    assert abs(measure.gzipped_size(sparse) - sparse_compressed) < 64


@KERASES
def test_optimizer_state_is_not_counted(k):
    model = _dense_model(k=k)
    raw_before, _ = measure.keras_file_size(model)
    model.compile("adam", "mse")
    model.fit(np.zeros((8, 64)), np.zeros((8, 10)), verbose=0)
    raw_after, _ = measure.keras_file_size(model)
    assert abs(raw_after - raw_before) < 512  # Adam's two slots would double it
