"""MNIST and Fashion-MNIST loaders, fully offline: tiny IDX files served from 127.0.0.1.

The loaders' table of known sizes and SHA-256s is replaced by the tiny files' own, so the
real download path (urllib, streaming, checks, atomic rename) runs against a local server.
"""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
import http.server
import socket
import struct
import threading
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import xpnn
from xpnn import datasets
from xpnn.errors import DatasetUnavailableError, FileFormatError

from .paths import requires_repository
from .test_examples import run_example

pytestmark = pytest.mark.slow  # a local HTTP server per test; no backend lane

NAMES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
         "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")


def idx_bytes(array: np.ndarray, code: int = 0x08) -> bytes:
    """An uncompressed IDX file: magic 00 00 <code> <rank>, sizes, big-endian values."""
    dtype = datasets._IDX_DTYPES[code]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + np.asarray(array).astype(dtype).tobytes()


def make_split_arrays(seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {
        NAMES[0]: rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
        NAMES[1]: np.array([5, 0, 4, 1, 9], dtype=np.uint8),
        NAMES[2]: rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
        NAMES[3]: np.array([7, 2, 1], dtype=np.uint8),
    }


def archive_of(content: bytes) -> datasets._Archive:
    return datasets._Archive(len(content), hashlib.sha256(content).hexdigest())


class TinyDataset:
    """Four tiny gzip IDX files in a folder, the arrays they hold and their archives."""

    def __init__(self, folder: Path, seed: int = 0) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        self.arrays = make_split_arrays(seed)
        self.archives = {}
        for name, array in self.arrays.items():
            self.write(name, gzip.compress(idx_bytes(array), mtime=0))

    def write(self, name: str, content: bytes) -> None:
        """Serve ``content`` as ``name`` and make the loader expect exactly that."""
        (self.folder / name).write_bytes(content)
        self.archives[name] = archive_of(content)

    def install(self, monkeypatch, dataset: str = "mnist") -> None:
        """Make ``xpnn.datasets.<dataset>`` expect these files' sizes and hashes."""
        patched = dataclasses.replace(datasets._DATASETS[dataset], files=dict(self.archives))
        monkeypatch.setitem(datasets._DATASETS, dataset, patched)


class Server:
    """An HTTP server on 127.0.0.1 (port 0) serving a folder from a thread; it records the
    paths requested and can cut chosen files off half-way (after a full Content-Length)."""

    def __init__(self, folder: Path) -> None:
        self.requests: list[str] = []
        self.cut_off: set[str] = set()
        server = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args, **kwargs) -> None:
                super().__init__(*args, directory=str(folder), **kwargs)

            def do_GET(self) -> None:
                server.requests.append(self.path)
                name = self.path.lstrip("/")
                if name in server.cut_off:
                    content = (folder / name).read_bytes()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    self.wfile.write(content[: len(content) // 2])
                    self.close_connection = True
                    return
                super().do_GET()

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.02,),
                                       daemon=True)
        self.thread.start()
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.thread.join()
            self.running = False


@pytest.fixture(autouse=True)
def offline_environment(monkeypatch, tmp_path):
    """No test sees the user's home, cache or proxies; $XPNN_DATA points into tmp_path."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XPNN_DATA", str(tmp_path / "cache"))
    for variable in ("XPNN_MNIST_URL", "XPNN_FASHION_MNIST_URL", "http_proxy", "HTTP_PROXY",
                     "https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(variable, raising=False)


@pytest.fixture
def tiny(tmp_path, monkeypatch) -> TinyDataset:
    dataset = TinyDataset(tmp_path / "served")
    dataset.install(monkeypatch)
    return dataset


@pytest.fixture
def server(tiny):
    running = Server(tiny.folder)
    yield running
    running.stop()


def cache_folder(tmp_path: Path, dataset: str = "mnist") -> Path:
    return tmp_path / "cache" / dataset


def files_in(folder: Path) -> list[str]:
    """Every entry in ``folder`` (temporary files included), or [] if it does not exist."""
    return sorted(path.name for path in folder.iterdir()) if folder.exists() else []


def forbid_network(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the loader used the network")
    monkeypatch.setattr(urllib.request, "urlopen", refuse)


def closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


# -- downloading once, then reading offline -------------------------------------------------

def test_download_then_reload_offline(tiny, server, tmp_path, monkeypatch):
    (x_train, y_train), (x_test, y_test) = xpnn.datasets.mnist(url=server.url)
    assert sorted(server.requests) == sorted(f"/{name}" for name in NAMES)
    assert files_in(cache_folder(tmp_path)) == sorted(NAMES)  # no temporary file left

    server.stop()
    forbid_network(monkeypatch)
    (x_train2, y_train2), (x_test2, y_test2) = xpnn.datasets.mnist(url=server.url)
    for first, again in [(x_train, x_train2), (y_train, y_train2), (x_test, x_test2),
                         (y_test, y_test2)]:
        np.testing.assert_array_equal(first, again)


def test_values_shapes_and_dtypes(tiny, server):
    (x_train, y_train), (x_test, y_test) = xpnn.datasets.mnist(url=server.url)
    assert x_train.shape == (5, 1, 28, 28) and x_test.shape == (3, 1, 28, 28)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert y_train.dtype == np.int64 and y_test.dtype == np.int64
    np.testing.assert_array_equal(x_train[:, 0] * 255, tiny.arrays[NAMES[0]])
    np.testing.assert_array_equal(x_test[:, 0] * 255, tiny.arrays[NAMES[2]])
    assert y_train.tolist() == [5, 0, 4, 1, 9] and y_test.tolist() == [7, 2, 1]
    assert x_train.min() >= 0.0 and x_train.max() <= 1.0

    (flat_train, flat_labels), (flat_test, _) = xpnn.datasets.mnist(flatten=True,
                                                                    download=False)
    assert flat_train.shape == (5, 784) and flat_test.shape == (3, 784)
    np.testing.assert_array_equal(flat_train, x_train.reshape(5, 784))
    np.testing.assert_array_equal(flat_labels, y_train)


def test_url_from_the_environment(tiny, server, monkeypatch):
    monkeypatch.setenv("XPNN_MNIST_URL", server.url.rstrip("/"))  # the slash is optional
    (x_train, _), _ = xpnn.datasets.mnist()
    assert x_train.shape == (5, 1, 28, 28) and len(server.requests) == 4


def test_xpnn_data_and_data_dir_choose_the_cache(tiny, server, tmp_path, monkeypatch):
    monkeypatch.setenv("XPNN_DATA", str(tmp_path / "elsewhere"))
    xpnn.datasets.mnist(url=server.url)
    assert files_in(tmp_path / "elsewhere" / "mnist") == sorted(NAMES)

    xpnn.datasets.mnist(url=server.url, data_dir=tmp_path / "explicit")
    assert files_in(tmp_path / "explicit" / "mnist") == sorted(NAMES)
    assert not (tmp_path / "cache").exists() and not (tmp_path / "home").exists()


def test_default_cache_is_in_the_home_folder(tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("XPNN_DATA")  # HOME is tmp_path / "home" (offline_environment)
    folder = tmp_path / "home" / ".cache" / "xpnn" / "mnist"
    folder.mkdir(parents=True)
    for name in NAMES:
        (folder / name).write_bytes((tiny.folder / name).read_bytes())
    forbid_network(monkeypatch)
    (x_train, _), _ = xpnn.datasets.mnist(download=False)
    assert x_train.shape == (5, 1, 28, 28)


def test_fashion_mnist_has_its_own_folder_and_variable(tmp_path, monkeypatch):
    tiny = TinyDataset(tmp_path / "fashion", seed=1)
    tiny.install(monkeypatch, "fashion_mnist")
    server = Server(tiny.folder)
    try:
        monkeypatch.setenv("XPNN_FASHION_MNIST_URL", server.url)
        (x_train, _), (x_test, y_test) = xpnn.datasets.fashion_mnist()
    finally:
        server.stop()
    assert files_in(cache_folder(tmp_path, "fashion_mnist")) == sorted(NAMES)
    np.testing.assert_array_equal(x_train[:, 0] * 255, tiny.arrays[NAMES[0]])
    assert x_test.shape == (3, 1, 28, 28) and y_test.tolist() == [7, 2, 1]


# -- failed downloads leave nothing behind ---------------------------------------------------

def test_download_cut_off_raises_and_leaves_no_file(tiny, server, tmp_path):
    server.cut_off.add(NAMES[0])
    with pytest.raises(DatasetUnavailableError, match=r"truncated: [\d,]+ of [\d,]+ bytes"):
        xpnn.datasets.mnist(url=server.url)
    assert files_in(cache_folder(tmp_path)) == []


@pytest.mark.parametrize("change, message", [
    (lambda content: content[:-10], "truncated"),
    (lambda content: content + b"\0" * 10, "larger than the expected"),
    (lambda content: content[:-1] + bytes([content[-1] ^ 1]), "fails its SHA-256 check"),
], ids=["shorter", "longer", "same size, other bytes"])
def test_wrong_download_raises_and_leaves_no_file(tiny, server, tmp_path, change, message):
    labels = tiny.folder / NAMES[1]
    labels.write_bytes(change(labels.read_bytes()))  # the loader still expects the original
    with pytest.raises(DatasetUnavailableError, match=message) as raised:
        xpnn.datasets.mnist(url=server.url)
    assert NAMES[1] in str(raised.value)
    # the file before it was complete and verified, so it stays; nothing else is there
    assert files_in(cache_folder(tmp_path)) == [NAMES[0]]


def test_http_error_raises_and_leaves_no_file(tiny, server, tmp_path):
    (tiny.folder / NAMES[3]).unlink()
    with pytest.raises(DatasetUnavailableError, match="HTTP 404") as raised:
        xpnn.datasets.mnist(url=server.url)
    assert f"{server.url}{NAMES[3]}" in str(raised.value)
    assert files_in(cache_folder(tmp_path)) == sorted(NAMES[:3])


def test_unreachable_server_says_how_to_get_the_data(tiny, tmp_path):
    url = closed_port_url()
    with pytest.raises(DatasetUnavailableError, match="cannot be reached") as raised:
        xpnn.datasets.mnist(url=url)
    message = str(raised.value)
    assert all(f"{url}{name}" in message for name in NAMES)
    assert str(cache_folder(tmp_path)) in message
    assert "$XPNN_DATA" in message and "$XPNN_MNIST_URL" in message
    assert files_in(cache_folder(tmp_path)) == []


def test_download_false_never_uses_the_network(tiny, server, tmp_path, monkeypatch):
    forbid_network(monkeypatch)
    with pytest.raises(DatasetUnavailableError, match="missing and download=False") as raised:
        xpnn.datasets.mnist(url=server.url, download=False)
    assert all(name in str(raised.value) for name in NAMES)
    assert server.requests == [] and files_in(cache_folder(tmp_path)) == []


def test_the_real_checksum_table_is_complete():
    for dataset in datasets._DATASETS.values():
        assert tuple(dataset.files) == NAMES
        for archive in dataset.files.values():
            assert len(archive.sha256) == 64 and int(archive.sha256, 16) >= 0
            assert archive.size > 0
    assert datasets._DATASETS["mnist"].files[NAMES[0]].size == 9912422
    assert datasets._DATASETS["fashion_mnist"].files[NAMES[0]].size == 26421880


# -- a corrupted cache is detected every time ------------------------------------------------

@pytest.mark.parametrize("corrupt", [
    lambda content: content[:-1] + bytes([content[-1] ^ 0xFF]),
    lambda content: content[: len(content) // 2],
], ids=["flipped byte", "truncated"])
def test_corrupted_cached_file_is_downloaded_again(tiny, server, tmp_path, corrupt):
    xpnn.datasets.mnist(url=server.url)
    cached = cache_folder(tmp_path) / NAMES[2]
    cached.write_bytes(corrupt(cached.read_bytes()))
    server.requests.clear()

    with pytest.warns(UserWarning, match=f"{NAMES[2]}.*downloading it again") as record:
        (_, _), (x_test, _) = xpnn.datasets.mnist(url=server.url)
    assert record[0].filename == __file__  # the warning points at the caller
    assert server.requests == [f"/{NAMES[2]}"]
    assert cached.read_bytes() == (tiny.folder / NAMES[2]).read_bytes()
    np.testing.assert_array_equal(x_test[:, 0] * 255, tiny.arrays[NAMES[2]])
    assert files_in(cache_folder(tmp_path)) == sorted(NAMES)


def test_corrupted_cached_file_without_download_names_the_file(tiny, server, tmp_path):
    xpnn.datasets.mnist(url=server.url)
    cached = cache_folder(tmp_path) / NAMES[1]
    content = cached.read_bytes()
    cached.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    with pytest.raises(DatasetUnavailableError, match="fails its SHA-256 check") as raised:
        xpnn.datasets.mnist(download=False)
    assert str(cached) in str(raised.value)


def test_corrupted_cached_file_and_failed_download_leave_the_old_file(tiny, server, tmp_path):
    xpnn.datasets.mnist(url=server.url)
    cached = cache_folder(tmp_path) / NAMES[0]
    cached.write_bytes(b"not MNIST")
    server.stop()
    with pytest.warns(UserWarning), pytest.raises(DatasetUnavailableError,
                                                  match="cannot be reached"):
        xpnn.datasets.mnist(url=server.url)
    assert cached.read_bytes() == b"not MNIST"  # only a verified download replaces it
    assert files_in(cache_folder(tmp_path)) == sorted(NAMES)


# -- IDX parsing -------------------------------------------------------------------------------

@pytest.mark.parametrize("code", sorted(datasets._IDX_DTYPES))
def test_read_idx_reads_every_type_big_endian(tmp_path, code):
    values = np.arange(-6, 18).reshape(2, 3, 4) % 100
    path = tmp_path / "values.idx"
    path.write_bytes(idx_bytes(values, code))
    array = datasets.read_idx(path)
    assert array.shape == (2, 3, 4) and array.dtype.isnative
    assert array.dtype == np.dtype(datasets._IDX_DTYPES[code]).newbyteorder("=")
    np.testing.assert_array_equal(array, values.astype(array.dtype))


def test_read_idx_gzip_and_empty_arrays(tmp_path):
    path = tmp_path / "empty-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros(0, np.uint8))))
    assert datasets.read_idx(path).shape == (0,)


LABELS = idx_bytes(np.array([1, 2, 3], np.uint8))


@pytest.mark.parametrize("content, message", [
    (b"", "magic number is missing"),
    (b"\x01\x02" + LABELS[2:], "not an IDX file: its magic number is 0102"),
    (LABELS[:2] + b"\x07" + LABELS[3:], "unknown IDX type code 0x07"),
    (bytes([0, 0, 8, 3]) + struct.pack(">I", 5), "truncated: its header ends after 8 bytes"),
    (LABELS[:-1], r"truncated: its header promises \(3,\) uint8 values"),
    (LABELS + b"\0", r"too long: .* but 4 bytes follow"),
], ids=["empty", "bad magic", "type code", "short header", "short data", "trailing bytes"])
def test_read_idx_malformed(tmp_path, content, message):
    path = tmp_path / "labels.idx"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=message) as raised:
        datasets.read_idx(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("content, message", [
    (b"plain bytes", "not a complete gzip file"),
    (gzip.compress(LABELS)[:-6], "not a complete gzip file"),
], ids=["not gzip", "truncated gzip"])
def test_read_idx_bad_gzip(tmp_path, content, message):
    path = tmp_path / "labels-idx1-ubyte.gz"
    path.write_bytes(content)
    with pytest.raises(FileFormatError, match=message) as raised:
        datasets.read_idx(path)
    assert str(path) in str(raised.value)


@pytest.mark.parametrize("name, array, message", [
    (NAMES[0], np.zeros((5, 27, 27), np.uint8), r"expected uint8 images of shape \(n, 28, 28\)"),
    (NAMES[0], np.zeros((5, 28, 28), np.int16), "expected uint8 images"),
    (NAMES[1], np.zeros((5, 1), np.uint8), r"expected uint8 labels of shape \(n,\)"),
    (NAMES[1], np.zeros(4, np.uint8), "holds 4 labels, but .* holds 5 images"),
    (NAMES[3], np.array([1, 10, 2], np.uint8), "holds the label 10, expected 0–9"),
], ids=["27x27", "int16 images", "2-D labels", "count mismatch", "label 10"])
def test_loader_checks_what_the_files_hold(tiny, server, monkeypatch, name, array, message):
    code = 0x0B if array.dtype == np.int16 else 0x08
    tiny.write(name, gzip.compress(idx_bytes(array, code)))
    tiny.install(monkeypatch)  # the loader expects the malformed file: it passes its check
    with pytest.raises(FileFormatError, match=message) as raised:
        xpnn.datasets.mnist(url=server.url)
    assert name in str(raised.value)


# -- the example -------------------------------------------------------------------------------

@requires_repository
def test_mnist_cnn_example_says_how_to_get_missing_data(tiny, monkeypatch, capsys):
    monkeypatch.setenv("XPNN_MNIST_URL", closed_port_url())
    with pytest.raises(SystemExit) as raised:
        run_example(monkeypatch, "mnist_cnn.py", "--limit", "4")
    assert raised.value.code == 1
    err = capsys.readouterr().err
    assert "MNIST is not available" in err and "Traceback" not in err
    assert "XPNN_DATA" in err and NAMES[0] in err


@requires_repository
@pytest.mark.parametrize("fashion", [False, True], ids=["mnist", "fashion"])
def test_mnist_cnn_example_runs_offline(tiny, server, monkeypatch, capsys, fashion):
    if fashion:
        tiny.install(monkeypatch, "fashion_mnist")
    monkeypatch.setenv("XPNN_FASHION_MNIST_URL" if fashion else "XPNN_MNIST_URL", server.url)
    accuracy = run_example(monkeypatch, "mnist_cnn.py", "--device", "cpu", "--epochs", "1",
                           "--batch-size", "2", "--limit", "4",
                           *(["--fashion"] if fashion else []))
    out = capsys.readouterr().out
    assert 0.0 <= accuracy <= 1.0
    assert "4 training and 3 test images" in out and "test accuracy:" in out
    assert ("Fashion-MNIST" in out) == fashion
