"""Image data sets that load without a network: scikit-learn's digits, Fashion-MNIST.

Both loaders answer ``((x_train, y_train), (x_test, y_test))`` like
``keras.datasets.*.load_data()``, with images as float32 in [0, 1] shaped
``(n, height, width, 1)`` and integer labels, ready for a Conv2D model.
"""

import gzip
import math
import numbers
import os
import zlib

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

_CLASSES = 10  # both data sets
_DIGITS_EXAMPLES = 1797


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

    Raises:
      TypeError: `test_fraction` is not a number or `seed` not an integer.
      ValueError: either side of the split would miss a class, or `seed` is
        negative.

    Example:
      >>> (x_train, y_train), (x_test, y_test) = load_digits()
      >>> x_train.shape, x_test.shape
      ((1437, 8, 8, 1), (360, 8, 8, 1))
    """
    from sklearn import datasets
    from sklearn import model_selection

    _validate_split(test_fraction, seed)
    digits = datasets.load_digits()
    # Pixel values in the bundled set are counts of 0..16.
    images = (digits.images / 16.0).astype(np.float32)[..., np.newaxis]
    labels = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = model_selection.train_test_split(
        images, labels, test_size=float(test_fraction), stratify=labels, random_state=int(seed))
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
      TypeError: `data_dir` is not a path.
      FileNotFoundError: `data_dir` or one of the four files is missing.
      ValueError: a file is damaged (cut short, not gzip, not an idx file of
        the expected kind, labels beyond 0..9), or images and labels disagree
        in number. The message names the file and says how to get a good copy.

    Example:
      >>> (x_train, y_train), (x_test, y_test) = load_fashion_mnist()
      >>> x_train.shape, y_test.shape
      ((60000, 28, 28, 1), (10000,))
    """
    _validate_path(data_dir, "data_dir")
    paths = {key: os.path.join(data_dir, name) for key, name in _FASHION_MNIST_FILES.items()}
    missing = [path for path in paths.values() if not os.path.isfile(path)]
    if missing:
        where = (f"directory {data_dir!r} does not exist" if not os.path.isdir(data_dir)
                 else f"missing {', '.join(missing)}")
        raise FileNotFoundError(
            f"Fashion-MNIST not found: {where}. Install it with "
            f"`sudo apt-get install dataset-fashion-mnist`, or pass data_dir= a directory "
            f"holding {', '.join(_FASHION_MNIST_FILES.values())}.")
    remedy = _fashion_mnist_remedy(data_dir)
    splits = []
    for split in ("train", "test"):
        images = _read_fashion_file(paths[f"x_{split}"], _IDX_IMAGES, remedy)
        labels = _read_fashion_file(paths[f"y_{split}"], _IDX_LABELS, remedy)
        if len(images) != len(labels):
            raise ValueError(f"Fashion-MNIST files disagree: {paths[f'x_{split}']} holds "
                             f"{len(images)} images but {paths[f'y_{split}']} holds "
                             f"{len(labels)} labels. {remedy}")
        if labels.size and labels.max() >= _CLASSES:
            raise ValueError(f"Fashion-MNIST file {paths[f'y_{split}']} holds label "
                             f"{labels.max()}; the classes are 0..{_CLASSES - 1}. {remedy}")
        splits.append(((images / 255.0).astype(np.float32)[..., np.newaxis],
                       labels.astype(np.int64)))
    return tuple(splits)


def _fashion_mnist_remedy(data_dir):
    """What to do about a damaged file: reinstall the package, or replace a private copy."""
    if os.path.abspath(data_dir) == os.path.abspath(FASHION_MNIST_DIR):
        return ("Reinstall the files with `sudo apt-get install --reinstall "
                "dataset-fashion-mnist`, or pass data_dir= a directory holding good copies.")
    return ("Replace it with a good copy, or drop data_dir= to read the copy that "
            f"`sudo apt-get install dataset-fashion-mnist` puts in {FASHION_MNIST_DIR}.")


def _read_fashion_file(path, expect, remedy):
    try:
        return read_idx(path, expect=expect)
    except ValueError as error:
        raise ValueError(f"Fashion-MNIST file damaged: {error} {remedy}") from error


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

    Raises:
      TypeError: `path` is not a path, or `expect` not an integer.
      ValueError: the file is cut short, not gzip although named ".gz", or not
        an unsigned-byte idx file of the expected kind; the message names it.

    Example:
      >>> read_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz").shape
      (10000,)
    """
    _validate_path(path, "path")
    if expect is not None and (isinstance(expect, bool) or
                               not isinstance(expect, numbers.Integral)):
        raise TypeError(f"expect must be an idx magic number such as 0x803 (images) or 0x801 "
                        f"(labels), or None; got {type(expect).__name__} {expect!r}.")
    compressed = os.fspath(path).endswith(".gz")
    try:
        with (gzip.open if compressed else open)(path, "rb") as f:
            data = f.read()
    except EOFError as error:
        raise ValueError(f"{path} is cut short: its gzip stream ends before the end marker "
                         "(an interrupted download or copy).") from error
    except (gzip.BadGzipFile, zlib.error) as error:
        raise ValueError(f"{path} is not a readable gzip file ({error}).") from error
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
        cut = " (the file is cut short)" if len(data) - header < size else ""
        raise ValueError(f"{path}: header announces shape {shape} ({size} bytes) but "
                         f"{len(data) - header} bytes follow{cut}.")
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def _validate_path(path, name):
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got "
                        f"{type(path).__name__} {path!r}.")


def _validate_split(test_fraction, seed):
    """Checks load_digits' arguments before scikit-learn sees them."""
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real):
        raise TypeError(f"test_fraction must be a number in (0, 1), got "
                        f"{type(test_fraction).__name__} {test_fraction!r}. Example: "
                        "test_fraction=0.2 holds out 20% of the examples.")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an integer, got {type(seed).__name__} {seed!r}.")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be in [0, 2**32), got {seed}.")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}.")
    # The split is stratified, so each side needs at least one example per class.
    n_test = math.ceil(test_fraction * _DIGITS_EXAMPLES)
    if not _CLASSES <= n_test <= _DIGITS_EXAMPLES - _CLASSES:
        low = _CLASSES / _DIGITS_EXAMPLES
        raise ValueError(f"test_fraction={test_fraction!r} puts {n_test} of the "
                         f"{_DIGITS_EXAMPLES} examples in the test set; each side of the "
                         f"stratified split needs at least {_CLASSES}, one per class. Use a "
                         f"value between {low:.3f} and {1 - low:.3f}.")
