"""Image data sets that load without a network: scikit-learn's digits, Fashion-MNIST.

Both loaders answer ``((x_train, y_train), (x_test, y_test))`` like
``keras.datasets.*.load_data()``, with images as float32 in [0, 1] shaped
``(n, height, width, 1)`` and integer labels, ready for a Conv2D model.
"""

import gzip
import os

import numpy as np

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

_FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}

# idx magic numbers for unsigned-byte data: 0x0000 08 <number of dimensions>.
_IDX_LABELS = 0x00000801
_IDX_IMAGES = 0x00000803


def load_digits(test_fraction=0.2, seed=0):
    """scikit-learn's 1,797 handwritten 8x8 digits, split into train and test.

    The data ships inside scikit-learn, so this never touches the network. The
    split is stratified by class and depends only on `seed`.

    Args:
      test_fraction: share of the examples held out for testing. Defaults to 0.2.
      seed: seed of the split. Defaults to 0.

    Returns:
      ``((x_train, y_train), (x_test, y_test))``: images float32 in [0, 1]
      shaped (n, 8, 8, 1), labels int64 in 0..9.

    Example:
      >>> (x_train, y_train), (x_test, y_test) = load_digits()
      >>> x_train.shape, x_test.shape
      ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    from sklearn import datasets
    from sklearn import model_selection

    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    digits = datasets.load_digits()
    # Pixel values in the bundled set are counts of 0..16.
    images = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        images, labels, test_size=test_fraction, stratify=labels, random_state=seed)
    return (x_train, y_train), (x_test, y_test)


def load_fashion_mnist(data_dir=FASHION_MNIST_DIR):
    """Fashion-MNIST (60,000 train / 10,000 test 28x28 images) from local idx files.

    Reads the four standard ``*-idx?-ubyte.gz`` files. Debian's
    ``dataset-fashion-mnist`` package installs them in the default directory;
    any other copy works through `data_dir`.

    Args:
      data_dir: directory holding train-images-idx3-ubyte.gz,
        train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz and
        t10k-labels-idx1-ubyte.gz. Defaults to
        "/usr/share/datasets/fashion-mnist".

    Returns:
      ``((x_train, y_train), (x_test, y_test))``: images float32 in [0, 1]
      shaped (n, 28, 28, 1), labels int64 in 0..9.

    Raises:
      FileNotFoundError: `data_dir` or one of the four files is missing.
      ValueError: a file is not an idx file of the expected kind, or images and
        labels disagree in number.

    Example:
      >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
      >>> x_train.shape, y_test.shape
      ((60000, 28, 28, 1), (10000,))
    """
    paths = {key: os.path.join(data_dir, name) for key, name in _FASHION_MNIST_FILES.items()}
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        where = (f"directory {data_dir!r} does not exist" if not os.path.isdir(data_dir)
                 else f"missing {', '.join(missing)}")
        raise FileNotFoundError(
            f"Fashion-MNIST not found: {where}. Install it with "
            f"`sudo apt-get install dataset-fashion-mnist`, or pass data_dir= a directory "
            f"holding {', '.join(_FASHION_MNIST_FILES.values())}.")
    splits = []
    for split in ("train", "test"):
        images = read_idx(paths[f"x_{split}"], expect=_IDX_IMAGES)
        labels = read_idx(paths[f"y_{split}"], expect=_IDX_LABELS)
        if len(images) != len(labels):
            raise ValueError(f"{paths[f'x_{split}']} holds {len(images)} images but "
                             f"{paths[f'y_{split}']} holds {len(labels)} labels.")
        splits.append(((images / 255.0).astype(np.float32)[..., np.newaxis],
                       labels.astype(np.int64)))
    return tuple(splits)


def read_idx(path, expect=None):
    """Reads an unsigned-byte idx file (gzip-compressed or not) into a numpy array.

    The idx format is a big-endian magic number ``0x000008NN`` (NN = number of
    dimensions), NN big-endian uint32 sizes, then the bytes.

    Args:
      path: the file; read through gzip when it ends in ".gz".
      expect: the magic number required (0x801 labels, 0x803 images), or None
        for any unsigned-byte idx file. Defaults to None.

    Returns:
      A uint8 array of the shape the header gives.

    Example:
      >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape
      (10000,)
    """
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4:
        raise ValueError(f"{path} is too short to be an idx file ({len(data)} bytes).")
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08 or ndim == 0:
        raise ValueError(f"{path} is not an unsigned-byte idx file: magic number "
                         f"{magic:#010x}, expected 0x000008NN.")
    if expect is not None and magic != expect:
        raise ValueError(f"{path} has idx magic number {magic:#010x}, expected {expect:#010x} "
                         f"({'labels' if expect == _IDX_LABELS else 'images'}).")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValueError(f"{path} ends inside its idx header ({len(data)} of {header} bytes).")
    shape = tuple(int(s) for s in np.frombuffer(data, ">u4", count=ndim, offset=4))
    size = int(np.prod(shape))
    if len(data) - header != size:
        raise ValueError(f"{path}: header announces shape {shape} ({size} bytes) but "
                         f"{len(data) - header} bytes follow.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)
