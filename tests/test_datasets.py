"""Tests of tfopt.datasets: the bundled digits and the idx reader behind Fashion-MNIST."""

import gzip
import os

import numpy as np
import pytest

from tfopt import datasets


def _write_idx(path, array, magic=None, compress=True):
    """Writes `array` (uint8) as an idx file, the format Fashion-MNIST ships in."""
    array = np.asarray(array, np.uint8)
    magic = (0x0800 | array.ndim) if magic is None else magic
    payload = (magic.to_bytes(4, "big") + np.asarray(array.shape, ">u4").tobytes()
               + array.tobytes())
    opener = gzip.open if compress else open
    with opener(path, "wb") as f:
        f.write(payload)
    return path


def _write_fashion_dir(directory, n_train=6, n_test=4, size=28):
    rng = np.random.default_rng(0)
    arrays = {
        "x_train": rng.integers(0, 256, (n_train, size, size)),
        "y_train": rng.integers(0, 10, n_train),
        "x_test": rng.integers(0, 256, (n_test, size, size)),
        "y_test": rng.integers(0, 10, n_test),
    }
    for key, name in datasets._FASHION_MNIST_FILES.items():
        _write_idx(os.path.join(directory, name), arrays[key])
    return arrays


def test_digits_shapes_ranges_and_labels():
    (x_train, y_train), (x_test, y_test) = datasets.load_digits()
    assert x_train.shape == (1437, 8, 8, 1) and x_test.shape == (360, 8, 8, 1)
    assert x_train.dtype == np.float32 and y_train.dtype == np.int64
    assert y_train.shape == (1437,) and y_test.shape == (360,)
    assert x_train.min() == 0.0 and x_train.max() == 1.0
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))
    # Stratified: every class keeps close to its 10% share of the test set.
    assert np.bincount(y_test).min() >= 35


def test_digits_split_is_deterministic_and_seeded():
    first, second = datasets.load_digits(), datasets.load_digits()
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[1][1], second[1][1])
    other = datasets.load_digits(seed=1)
    assert not np.array_equal(first[1][1], other[1][1])


def test_digits_rejects_bad_test_fraction():
    with pytest.raises(ValueError, match="test_fraction"):
        datasets.load_digits(test_fraction=1.5)


@pytest.mark.parametrize("compress", [True, False])
def test_read_idx_round_trip(tmp_path, compress):
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    path = _write_idx(tmp_path / ("images.gz" if compress else "images"), images,
                      compress=compress)
    read = datasets.read_idx(path, expect=0x803)
    assert read.dtype == np.uint8
    np.testing.assert_array_equal(read, images)


@pytest.mark.parametrize("payload,message", [
    (b"\x00\x00", "too short"),
    ((0x0D03).to_bytes(4, "big") + bytes(12), "not an unsigned-byte idx"),
    ((0x0803).to_bytes(4, "big") + bytes(4), "ends inside its idx header"),
    ((0x0801).to_bytes(4, "big") + (5).to_bytes(4, "big") + bytes(3), "announces shape"),
])
def test_read_idx_rejects_malformed_files(tmp_path, payload, message):
    path = tmp_path / "bad.gz"
    with gzip.open(path, "wb") as f:
        f.write(payload)
    with pytest.raises(ValueError, match=message):
        datasets.read_idx(path)


def test_read_idx_checks_the_expected_kind(tmp_path):
    path = _write_idx(tmp_path / "labels.gz", np.arange(5))
    with pytest.raises(ValueError, match="expected 0x00000803"):
        datasets.read_idx(path, expect=0x803)


def test_fashion_mnist_from_idx_fixture(tmp_path):
    arrays = _write_fashion_dir(tmp_path)
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist(str(tmp_path))
    assert x_train.shape == (6, 28, 28, 1) and x_test.shape == (4, 28, 28, 1)
    assert x_train.dtype == np.float32 and y_test.dtype == np.int64
    np.testing.assert_allclose(x_test[..., 0], arrays["x_test"] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y_train, arrays["y_train"])
    assert 0.0 <= x_train.min() and x_train.max() <= 1.0


def test_fashion_mnist_missing_directory_says_how_to_install(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(FileNotFoundError) as error:
        datasets.load_fashion_mnist(str(missing))
    assert str(missing) in str(error.value)
    assert "sudo apt-get install dataset-fashion-mnist" in str(error.value)
    assert "data_dir" in str(error.value)


def test_fashion_mnist_missing_file_is_named(tmp_path):
    _write_fashion_dir(tmp_path)
    os.remove(tmp_path / "t10k-labels-idx1-ubyte.gz")
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte.gz"):
        datasets.load_fashion_mnist(str(tmp_path))


def test_fashion_mnist_rejects_mismatched_counts(tmp_path):
    _write_fashion_dir(tmp_path)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.zeros(5))
    with pytest.raises(ValueError, match="6 images but .* 5 labels"):
        datasets.load_fashion_mnist(str(tmp_path))


def test_fashion_mnist_real_files_when_installed():
    if not os.path.isdir(datasets.FASHION_MNIST_DIR):
        # The parser is covered by the fixture tests above; this checks the real copy.
        pytest.skip(f"{datasets.FASHION_MNIST_DIR} not installed (dataset-fashion-mnist)")
    (x_train, y_train), (x_test, y_test) = datasets.load_fashion_mnist()
    assert x_train.shape == (60000, 28, 28, 1) and x_test.shape == (10000, 28, 28, 1)
    assert y_train.shape == (60000,) and y_test.shape == (10000,)
    assert np.bincount(y_train).tolist() == [6000] * 10
    assert 0.0 <= x_test.min() and x_test.max() <= 1.0


def _corrupt(path, how):
    """Damages an idx .gz file the ways real downloads and copies go wrong."""
    data = open(path, "rb").read()
    if how == "truncated gzip":
        data = data[: len(data) // 2]
    elif how == "not gzip":
        data = b"<html>404 Not Found</html>\n"
    elif how == "wrong magic":
        data = gzip.compress((0x0802).to_bytes(4, "big") + gzip.decompress(data)[4:])
    elif how == "payload cut short":
        data = gzip.compress(gzip.decompress(data)[:-7])
    open(path, "wb").write(data)


@pytest.mark.parametrize("how,reason", [
    ("truncated gzip", "cut short: its gzip stream ends"),
    ("not gzip", "not a readable gzip file"),
    ("wrong magic", "magic number 0x00000802, expected 0x00000803"),
    ("payload cut short", "the file is cut short"),
])
def test_fashion_mnist_damaged_file_is_named_with_a_remedy(tmp_path, how, reason):
    _write_fashion_dir(tmp_path)
    damaged = tmp_path / "train-images-idx3-ubyte.gz"
    _corrupt(damaged, how)
    with pytest.raises(ValueError) as error:
        datasets.load_fashion_mnist(str(tmp_path))
    message = str(error.value)
    assert str(damaged) in message and reason in message
    assert "Replace it with a good copy" in message and "data_dir" in message


def test_fashion_mnist_damaged_default_copy_says_reinstall(tmp_path, monkeypatch):
    _write_fashion_dir(tmp_path)
    _corrupt(tmp_path / "t10k-labels-idx1-ubyte.gz", "truncated gzip")
    monkeypatch.setattr(datasets, "FASHION_MNIST_DIR", str(tmp_path))
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz is cut short.*"
                       "apt-get install --reinstall dataset-fashion-mnist"):
        datasets.load_fashion_mnist(str(tmp_path))


def test_fashion_mnist_rejects_labels_beyond_the_classes(tmp_path):
    _write_fashion_dir(tmp_path)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", [1, 2, 200, 3])
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte.gz holds label 200; "
                       r"the classes are 0\.\.9"):
        datasets.load_fashion_mnist(str(tmp_path))


@pytest.mark.parametrize("call,error,message", [
    (lambda: datasets.load_digits(test_fraction="0.2"), TypeError,
     "test_fraction must be a number in .0, 1., got str '0.2'"),
    (lambda: datasets.load_digits(test_fraction=True), TypeError, "got bool True"),
    (lambda: datasets.load_digits(seed="0"), TypeError, "seed must be an integer, got str '0'"),
    (lambda: datasets.load_digits(seed=1.5), TypeError, "seed must be an integer, got float"),
    (lambda: datasets.load_digits(seed=-1), ValueError, r"seed must be in \[0, 2\*\*32\)"),
    (lambda: datasets.load_digits(test_fraction=0.001), ValueError,
     "puts 2 of the 1797 examples in the test set.*between 0.006 and 0.994"),
    (lambda: datasets.load_digits(test_fraction=0.999), ValueError, "at least 10, one per class"),
    (lambda: datasets.load_fashion_mnist(data_dir=None), TypeError,
     "data_dir must be a path .str or os.PathLike., got NoneType None"),
    (lambda: datasets.load_fashion_mnist(data_dir=7), TypeError, "got int 7"),
    # An int would otherwise be taken for an open file descriptor.
    (lambda: datasets.read_idx(0), TypeError, "path must be a path"),
    (lambda: datasets.read_idx("x.gz", expect="0x803"), TypeError,
     "expect must be an idx magic number such as 0x803"),
])
def test_wrong_argument_types_and_values_are_explained(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_digits_split_sizes_at_the_edges_of_the_allowed_range():
    (x_train, _), (x_test, _) = datasets.load_digits(test_fraction=0.006)
    assert len(x_test) == 11 and len(x_train) == 1786
    (_, y_train), _ = datasets.load_digits(test_fraction=np.float32(0.5), seed=np.int64(3))
    assert len(y_train) == 898
