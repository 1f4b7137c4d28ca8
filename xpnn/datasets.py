"""Datasets as NumPy arrays: small built-in ones, and MNIST-style ones downloaded once.

Synthetic sets are generated from a seed; :func:`load_digits` reads the 8×8 handwritten
digits that ship inside scikit-learn (``pip install 'xpnn[examples]'``).

:func:`mnist` and :func:`fashion_mnist` download their four gzip-compressed IDX files once
into a cache folder (``$XPNN_DATA``, else ``~/.cache/xpnn``; one sub-folder per dataset),
then read them from there without the network. Every file is checked against its known size
and SHA-256 when it is downloaded *and* each time it is read (hashing 40 MB takes a fraction
of a second), so a truncated or altered file is never used. A download is written like every
xpnn file (:func:`xpnn.saving.atomic_write`): to a temporary file in the same folder that is
renamed into place only once it is complete and verified, so a failed download leaves
nothing behind. A cached file that fails its check is replaced by a fresh download, with a
warning; if that is not possible, the error names the file.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import os
import sys
import urllib.error
import urllib.request
import warnings
import zlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import numpy as np

from xpnn.data import train_test_split
from xpnn.errors import DatasetUnavailableError, FileFormatError
from xpnn.saving import PathLike, atomic_write


def xor() -> tuple[np.ndarray, np.ndarray]:
    """The four XOR points: x (4, 2) float32 and y (4, 1) float32 with y = x₁ XOR x₂."""
    x = np.array([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=np.float32)
    y = np.array([[0], [1], [1], [0]], dtype=np.float32)
    return x, y


def two_moons(n: int = 200, *, noise: float = 0.1, seed: int | None = 0
              ) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaving half circles: x (n, 2) float32, y (n,) int64 in {0, 1}."""
    rng = np.random.default_rng(seed)
    n_upper = n // 2
    angle_upper = rng.uniform(0.0, np.pi, n_upper)
    angle_lower = rng.uniform(0.0, np.pi, n - n_upper)
    upper = np.stack([np.cos(angle_upper), np.sin(angle_upper)], axis=1)
    lower = np.stack([1.0 - np.cos(angle_lower), 0.5 - np.sin(angle_lower)], axis=1)
    x = np.concatenate([upper, lower]) + noise * rng.standard_normal((n, 2))
    y = np.concatenate([np.zeros(n_upper, np.int64), np.ones(n - n_upper, np.int64)])
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order]


def two_spirals(n: int = 400, *, noise: float = 0.05, turns: float = 1.5,
                seed: int | None = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two interleaved spirals of ``turns`` turns: x (n, 2) float32, y (n,) int64."""
    rng = np.random.default_rng(seed)
    n_first = n // 2
    labels = np.concatenate([np.zeros(n_first, np.int64), np.ones(n - n_first, np.int64)])
    radius = np.sqrt(rng.uniform(0.05, 1.0, n))
    angle = 2.0 * np.pi * turns * radius + np.pi * labels
    x = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    x += noise * rng.standard_normal((n, 2))
    order = rng.permutation(n)
    return x[order].astype(np.float32), labels[order]


def noisy_sine(n: int = 200, *, noise: float = 0.1, seed: int | None = 0
               ) -> tuple[np.ndarray, np.ndarray]:
    """y = sin(x) + noise for x uniform in [−π, π]: x (n, 1), y (n, 1), float32."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-np.pi, np.pi, (n, 1))
    y = np.sin(x) + noise * rng.standard_normal((n, 1))
    return x.astype(np.float32), y.astype(np.float32)


def linear_regression(n: int = 200, features: int = 3, *, noise: float = 0.1,
                      seed: int | None = 0
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """y = x w + b + noise with random w, b: returns x (n, features), y (n, 1) (float64),
    and the true w (features,) and b."""
    rng = np.random.default_rng(seed)
    true_w = rng.uniform(-2.0, 2.0, features)
    true_b = float(rng.uniform(-1.0, 1.0))
    x = rng.standard_normal((n, features))
    y = x @ true_w + true_b + noise * rng.standard_normal(n)
    return x, y[:, None], true_w, true_b


def load_digits(*, test_fraction: float = 0.2, seed: int | None = 0
                ) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """The 1,797 8×8 handwritten digits of scikit-learn, split stratified by class.

    Returns ``(x_train, y_train), (x_test, y_test)`` with x (n, 64) float32 scaled to [0, 1]
    and y (n,) int64 labels 0–9.
    """
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError("the digits dataset ships with scikit-learn: "
                          "pip install 'xpnn[examples]'") from error
    bunch = sklearn_digits()
    x = (bunch.data / 16.0).astype(np.float32)
    y = bunch.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_fraction=test_fraction, seed=seed, stratify=True)
    return (x_train, y_train), (x_test, y_test)


# --- MNIST and Fashion-MNIST ---------------------------------------------------------------

Split = tuple[np.ndarray, np.ndarray]

#: Environment variable naming the cache folder (default ``~/.cache/xpnn``).
DATA_VARIABLE = "XPNN_DATA"
_DOWNLOAD_TIMEOUT_S = 60.0
_CHUNK_BYTES = 1 << 20


@dataclass(frozen=True)
class _Archive:
    """What one downloaded file must be: its exact size in bytes and its SHA-256."""

    size: int
    sha256: str


@dataclass(frozen=True)
class _IdxDataset:
    """A dataset published as four gzip-compressed IDX files behind one base URL."""

    title: str  # for messages: "MNIST"
    folder: str  # the cache sub-folder
    url: str  # the default mirror (a base URL ending in "/")
    url_variable: str  # the environment variable that overrides it
    # file name -> what it must be, in the order train images, train labels, test images,
    # test labels
    files: Mapping[str, _Archive]


# Sizes and SHA-256 of the original files, from TensorFlow Datasets:
# tensorflow_datasets/url_checksums/mnist.txt (for the storage.googleapis.com/cvdf-datasets
# mirror) and url_checksums/fashion_mnist.txt (for the Fashion-MNIST S3 bucket used here).
# The mirrors serve identical bytes: torchvision (torchvision/datasets/mnist.py) checks one
# MD5 per file for both yann.lecun.com and the ossci-datasets.s3.amazonaws.com mirror used
# here, and other public projects pair these SHA-256s with the ossci mirror.
_DATASETS: dict[str, _IdxDataset] = {
    "mnist": _IdxDataset(
        title="MNIST", folder="mnist",
        url="https://ossci-datasets.s3.amazonaws.com/mnist/",
        url_variable="XPNN_MNIST_URL",
        files={
            "train-images-idx3-ubyte.gz": _Archive(
                9912422, "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609"),
            "train-labels-idx1-ubyte.gz": _Archive(
                28881, "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c"),
            "t10k-images-idx3-ubyte.gz": _Archive(
                1648877, "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6"),
            "t10k-labels-idx1-ubyte.gz": _Archive(
                4542, "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6"),
        }),
    "fashion_mnist": _IdxDataset(
        title="Fashion-MNIST", folder="fashion_mnist",
        url="http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",
        url_variable="XPNN_FASHION_MNIST_URL",
        files={
            "train-images-idx3-ubyte.gz": _Archive(
                26421880, "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84"),
            "train-labels-idx1-ubyte.gz": _Archive(
                29515, "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845"),
            "t10k-images-idx3-ubyte.gz": _Archive(
                4422102, "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073"),
            "t10k-labels-idx1-ubyte.gz": _Archive(
                5148, "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5"),
        }),
}


def mnist(*, flatten: bool = False, url: str | None = None, data_dir: PathLike | None = None,
          download: bool = True) -> tuple[Split, Split]:
    """The MNIST handwritten digits: 60,000 training and 10,000 test images of 28×28 pixels.

    Returns ``(x_train, y_train), (x_test, y_test)``: x float32 in [0, 1] of shape
    (n, 1, 28, 28) (channels first, as :class:`xpnn.Conv2D` takes them) or (n, 784) with
    ``flatten=True``; y int64 labels 0–9.

    The files are downloaded once into ``data_dir/mnist`` (``data_dir`` defaults to
    ``$XPNN_DATA``, else ``~/.cache/xpnn``) from ``url``, else ``$XPNN_MNIST_URL``, else
    ``https://ossci-datasets.s3.amazonaws.com/mnist/`` (a ``file://`` folder works too), and
    checked against their known SHA-256 every time. ``download=False`` never uses the
    network. Raises :class:`~xpnn.errors.DatasetUnavailableError`, saying how to get the
    files, when they are not cached and cannot be downloaded.
    """
    return _load_idx_dataset(_DATASETS["mnist"], flatten=flatten, url=url, data_dir=data_dir,
                             download=download)


def fashion_mnist(*, flatten: bool = False, url: str | None = None,
                  data_dir: PathLike | None = None, download: bool = True
                  ) -> tuple[Split, Split]:
    """Zalando's Fashion-MNIST: 60,000 training and 10,000 test 28×28 images of clothes.

    Labels 0–9 are T-shirt/top, trouser, pullover, dress, coat, sandal, shirt, sneaker, bag,
    ankle boot. Everything else is as in :func:`mnist`: the same shapes and dtypes, the cache
    sub-folder ``fashion_mnist``, the base URL from ``url``, else ``$XPNN_FASHION_MNIST_URL``,
    else ``http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/``.
    """
    return _load_idx_dataset(_DATASETS["fashion_mnist"], flatten=flatten, url=url,
                             data_dir=data_dir, download=download)


def _load_idx_dataset(dataset: _IdxDataset, *, flatten: bool, url: str | None,
                      data_dir: PathLike | None, download: bool) -> tuple[Split, Split]:
    """Make sure the dataset's four files are cached and verified, then read them."""
    folder = _data_root(data_dir) / dataset.folder
    base_url = _base_url(dataset, url)
    for name, archive in dataset.files.items():
        _ensure_file(dataset, folder, base_url, name, archive, download)
    train_images, train_labels, test_images, test_labels = (
        folder / name for name in dataset.files)
    return (_read_split(train_images, train_labels, flatten),
            _read_split(test_images, test_labels, flatten))


def _data_root(data_dir: PathLike | None) -> Path:
    """``data_dir``, else ``$XPNN_DATA``, else ``~/.cache/xpnn``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    variable = os.environ.get(DATA_VARIABLE)
    return Path(variable).expanduser() if variable else Path.home() / ".cache" / "xpnn"


def _base_url(dataset: _IdxDataset, url: str | None) -> str:
    """``url``, else the dataset's environment variable, else its default mirror; ends in /."""
    base = url or os.environ.get(dataset.url_variable) or dataset.url
    return base if base.endswith("/") else base + "/"


# --- the cache: verify, else download ---

def _ensure_file(dataset: _IdxDataset, folder: Path, base_url: str, name: str,
                 archive: _Archive, download: bool) -> None:
    """Leave a verified copy of ``name`` in ``folder``: keep the cached one if it passes its
    check, else download it (if allowed) and verify it before it takes the cached name."""
    path = folder / name
    problem = None
    if path.exists():
        problem = _check_archive(path, archive)
        if problem is None:
            return
        if download:
            warnings.warn(f"the cached file '{path}' {problem}; downloading it again",
                          stacklevel=4)
    if not download:
        reason = (f"the cached file '{path}' {problem}" if problem
                  else f"'{path}' is missing and download=False")
        raise _unavailable(dataset, folder, base_url, name, reason)
    folder.mkdir(parents=True, exist_ok=True)
    source = base_url + name
    print(f"xpnn: downloading {source} ({archive.size:,} bytes) to {folder}", file=sys.stderr)
    try:
        atomic_write(path, lambda file: _fetch(source, file, archive))
    except urllib.error.HTTPError as error:
        reason = f"{source} answered HTTP {error.code} {error.reason}"
        raise _unavailable(dataset, folder, base_url, name, reason) from None
    except urllib.error.URLError as error:
        reason = f"{source} cannot be reached ({error.reason})"
        raise _unavailable(dataset, folder, base_url, name, reason) from None
    except _MismatchError as error:
        reason = f"the download of {source} {error}"
        raise _unavailable(dataset, folder, base_url, name, reason) from None
    except (OSError, http.client.HTTPException) as error:
        reason = f"the download of {source} failed ({error!r})"
        raise _unavailable(dataset, folder, base_url, name, reason) from None


class _MismatchError(Exception):
    """A download arrived, but not with the expected size and SHA-256."""


def _fetch(source: str, file: IO[bytes], archive: _Archive) -> None:
    """Copy ``source`` into ``file``, raising :class:`_MismatchError` unless exactly the
    expected bytes arrived (it stops reading as soon as there are too many)."""
    digest = hashlib.sha256()
    size = 0
    with urllib.request.urlopen(source, timeout=_DOWNLOAD_TIMEOUT_S) as response:
        while chunk := response.read(_CHUNK_BYTES):
            size += len(chunk)
            if size > archive.size:
                raise _MismatchError(f"is larger than the expected {archive.size:,} bytes")
            digest.update(chunk)
            file.write(chunk)
    problem = _size_problem(size, archive) or _hash_problem(digest.hexdigest(), archive)
    if problem:
        raise _MismatchError(problem)


def _check_archive(path: Path, archive: _Archive) -> str | None:
    """None if the file at ``path`` has the expected size and SHA-256, else what is wrong
    (the file is hashed only if its size is right)."""
    return (_size_problem(path.stat().st_size, archive)
            or _hash_problem(_sha256(path), archive))


def _sha256(path: Path) -> str:
    """The SHA-256 of a file, as 64 hexadecimal digits."""
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def _size_problem(size: int, archive: _Archive) -> str | None:
    """What is wrong with a file of ``size`` bytes that should be ``archive``, or None."""
    if size < archive.size:
        return f"is truncated: {size:,} of {archive.size:,} bytes"
    if size > archive.size:
        return f"has {size:,} bytes, expected {archive.size:,}"
    return None


def _hash_problem(sha256: str, archive: _Archive) -> str | None:
    """What is wrong with a file of hash ``sha256`` that should be ``archive``, or None."""
    if sha256 != archive.sha256:
        return f"fails its SHA-256 check: its hash is {sha256}, expected {archive.sha256}"
    return None


def _unavailable(dataset: _IdxDataset, folder: Path, base_url: str, name: str,
                 reason: str) -> DatasetUnavailableError:
    """The error for a file that is neither cached nor downloadable: why, and how to get
    every file still missing from ``folder``."""
    missing = [other for other, archive in dataset.files.items()
               if other == name or not (folder / other).exists()]
    urls = "\n".join(f"    {base_url}{other}" for other in missing)
    return DatasetUnavailableError(
        f"{dataset.title} is not available: {reason}.\n"
        f"Fetch these files some other way and put them, still gzip-compressed, in "
        f"{folder}:\n{urls}\n"
        f"or set ${DATA_VARIABLE} to a folder whose '{dataset.folder}' sub-folder holds all "
        f"four, or set ${dataset.url_variable} (or pass url=) to another mirror.")


# --- reading IDX files ---

#: IDX type codes (the third byte of the magic number) and their big-endian NumPy dtypes.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: PathLike) -> np.ndarray:
    """Read an IDX file (gzip-compressed if its name ends in ``.gz``) into a NumPy array.

    IDX, the format of MNIST: a magic number ``00 00 <type> <rank>``, then ``rank`` sizes as
    big-endian uint32, then the values, row-major and big-endian. Raises
    :class:`~xpnn.errors.FileFormatError` naming the file if the header is invalid or the
    data do not match it exactly.
    """
    where = f"'{os.fspath(path)}'"
    try:
        if os.fspath(path).endswith(".gz"):
            with gzip.open(path, "rb") as file:
                content = file.read()
        else:
            content = Path(path).read_bytes()
    except (gzip.BadGzipFile, EOFError, zlib.error) as error:
        raise FileFormatError(f"{where} is not a complete gzip file ({error})") from None
    if len(content) < 4 or content[:2] != b"\0\0":
        raise FileFormatError(f"{where} is not an IDX file: its magic number is "
                              f"{content[:4].hex() or 'missing'}, expected 0000<type><rank>")
    code, rank = content[2], content[3]
    if code not in _IDX_DTYPES:
        raise FileFormatError(f"{where}: unknown IDX type code 0x{code:02x}, expected one of "
                              f"{', '.join(f'0x{known:02x}' for known in _IDX_DTYPES)}")
    header = 4 + 4 * rank
    if len(content) < header:
        raise FileFormatError(f"{where} is truncated: its header ends after {len(content)} "
                              f"bytes, but its rank of {rank} needs {header}")
    shape = tuple(int(size) for size in np.frombuffer(content, ">u4", count=rank, offset=4))
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(content) - header != expected:
        raise FileFormatError(
            f"{where} {'is truncated' if len(content) - header < expected else 'is too long'}"
            f": its header promises {shape} {dtype.name} values ({expected:,} bytes) after "
            f"the {header}-byte header, but {len(content) - header:,} bytes follow")
    values = np.frombuffer(content, dtype, offset=header).reshape(shape)
    return values.astype(dtype.newbyteorder("="))


def _read_split(images_path: Path, labels_path: Path, flatten: bool) -> Split:
    """One split's images (float32 in [0, 1], NCHW or flat) and labels (int64), checked."""
    images = read_idx(images_path)
    labels = read_idx(labels_path)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        raise FileFormatError(f"'{images_path}' holds {images.dtype} values of shape "
                              f"{images.shape}, expected uint8 images of shape (n, 28, 28)")
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise FileFormatError(f"'{labels_path}' holds {labels.dtype} values of shape "
                              f"{labels.shape}, expected uint8 labels of shape (n,)")
    if len(labels) != len(images):
        raise FileFormatError(f"'{labels_path}' holds {len(labels)} labels, but "
                              f"'{images_path}' holds {len(images)} images")
    if len(labels) and labels.max() > 9:
        raise FileFormatError(f"'{labels_path}' holds the label {labels.max()}, expected 0–9")
    x = images.astype(np.float32)
    x /= 255.0
    x = x.reshape(len(x), 28 * 28) if flatten else x[:, None, :, :]
    return x, labels.astype(np.int64)
