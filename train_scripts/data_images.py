"""Image sources: Fashion-MNIST offline from the Debian `dataset-fashion-mnist` idx files, CIFAR-10 from the Hub."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
from datasets import load_dataset

FASHION_MNIST_DIR_ENV = "VISION_TRM_FASHION_MNIST_DIR"
DEFAULT_FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
FASHION_MNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot"]
_INSTALL_HINT = "apt-get install dataset-fashion-mnist, or set {} to a folder holding the four idx .gz files"


class DataFileError(RuntimeError):
    """A data file is missing or unreadable; the message names the file."""


def fashion_mnist_dir() -> Path:
    return Path(os.environ.get(FASHION_MNIST_DIR_ENV, DEFAULT_FASHION_MNIST_DIR))


def read_idx(path) -> np.ndarray:
    """Parses a (gzipped) idx file (http://yann.lecun.com/exdb/mnist/) into a uint8 array."""
    path = Path(path)
    if not path.is_file():
        raise DataFileError(f"Fashion-MNIST file {path} not found: " + _INSTALL_HINT.format(FASHION_MNIST_DIR_ENV))
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            data = handle.read()
        zero, dtype_code, ndim = struct.unpack(">HBB", data[:4])
        if zero != 0 or dtype_code != 0x08 or not 1 <= ndim <= 4:
            raise ValueError(f"bad idx magic (zero={zero}, type=0x{dtype_code:02x}, ndim={ndim})")
        shape = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
        array = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
        if array.size != int(np.prod(shape)):
            raise ValueError(f"expected {int(np.prod(shape))} values for shape {shape}, found {array.size}")
        return array.reshape(shape)
    except (OSError, EOFError, ValueError, struct.error, gzip.BadGzipFile) as error:
        raise DataFileError(
            f"Fashion-MNIST file {path} is corrupt ({error}): reinstall it ("
            + _INSTALL_HINT.format(FASHION_MNIST_DIR_ENV) + ")"
        ) from error


def load_fashion_mnist(split: str = "train", directory=None) -> tuple[np.ndarray, np.ndarray]:
    """Returns `(images uint8 [N, 28, 28], labels int64 [N])` of the `train` (60k) or `test` (10k) split."""
    directory = Path(directory) if directory is not None else fashion_mnist_dir()
    image_file, label_file = FASHION_MNIST_FILES[split]
    images = read_idx(directory / image_file)
    labels = read_idx(directory / label_file).astype(np.int64)
    if len(images) != len(labels):
        raise DataFileError(f"Fashion-MNIST files {directory / image_file} and {directory / label_file} disagree: "
                            f"{len(images)} images vs {len(labels)} labels")
    return images, labels


def load_cifar10(split: str = "train"):
    """CIFAR-10 through `datasets.load_dataset("uoft-cs/cifar10")` (needs a reachable Hub or a local cache)."""
    dataset = load_dataset("uoft-cs/cifar10", split=split)
    return dataset


def image_rows(images, labels, source: str):
    """Composite rows for an image classification source (raw uint8 pixels as bytes + shape)."""
    for image, label in zip(images, labels):
        image = np.asarray(image, dtype=np.uint8)
        yield {"image": image.tobytes(), "image_shape": list(image.shape), "label": int(label), "source": source}
