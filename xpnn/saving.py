"""The xpnn file format, and writing files so that a crash never leaves a corrupt one.

An xpnn file is a ZIP archive (stored, not compressed) holding

- ``xpnn.json``: ``{"format": "xpnn", "format_version": 1, "xpnn_version": ..., "kind":
  "model" | "weights" | "checkpoint", "arrays": [{"name", "shape", "dtype"}, ...], ...}`` plus
  the kind's own entries (architecture, compile settings, optimizer and training state);
- ``arrays/<i>.npy``: the i-th array of the manifest in NumPy's ``.npy`` format.

It is an ``.npz`` file with one extra member, so ``numpy.load(path)`` opens it too. Loading
never unpickles: arrays are read with ``allow_pickle=False`` and must be of a numeric dtype,
classes are looked up by name among the classes already imported (:mod:`xpnn.config`), and
the ZIP CRC-32 of every member is checked, so truncated and corrupted files are refused with
a :class:`~xpnn.errors.FileFormatError` naming the file and the problem.

Every write goes to a temporary file in the same directory (which must exist: a missing one is
named in the error), which is flushed, ``fsync``-ed and renamed over the target (atomic on
POSIX and Windows), then the directory is ``fsync``-ed: at any moment the target is either
the previous complete file or the new complete file. A process killed while writing may
leave a ``.<name>.tmp-*`` file behind; it is never read.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import numpy as np

from xpnn._version import __version__
from xpnn.errors import FileFormatError

FORMAT = "xpnn"
FORMAT_VERSION = 1
MANIFEST = "xpnn.json"
#: The dtypes an xpnn file may hold.
ARRAY_DTYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64",
                          "uint8", "bool"})
KINDS = ("model", "weights", "checkpoint")

PathLike = str | os.PathLike[str]


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file next to ``path``, make it durable and rename
    it over ``path``; on any error the temporary file is removed and ``path`` is untouched."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise FileNotFoundError(
            f"cannot write '{os.fspath(path)}': the folder '{os.fspath(directory)}' does not "
            "exist; create it first, e.g. os.makedirs(folder, exist_ok=True)")
    try:
        handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.tmp-", dir=directory)
    except OSError as error:  # its message would name the temporary file, not the target
        raise type(error)(error.errno, f"cannot write '{os.fspath(path)}' (a temporary file "
                          f"next to it first): {error.strerror}") from None
    try:
        os.chmod(temporary, 0o666 & ~_umask())  # mkstemp makes it private (0600)
        with os.fdopen(handle, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(temporary)
        raise
    _fsync_directory(directory)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (not possible on Windows, where it is not needed)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def write_file(path: PathLike, kind: str, entries: Mapping[str, Any],
               arrays: Mapping[str, np.ndarray]) -> None:
    """Write an xpnn file of ``kind`` with JSON ``entries`` and named host ``arrays``."""
    assert kind in KINDS
    host_arrays = {name: np.asarray(value, order="C") for name, value in arrays.items()}
    for name, value in host_arrays.items():
        if value.dtype.name not in ARRAY_DTYPES:
            raise TypeError(f"cannot save array {name!r} of dtype {value.dtype}")
    manifest = {
        "format": FORMAT, "format_version": FORMAT_VERSION, "xpnn_version": __version__,
        "kind": kind, **entries,
        "arrays": [{"name": name, "shape": list(value.shape), "dtype": value.dtype.name}
                   for name, value in host_arrays.items()],
    }
    text = json.dumps(manifest, allow_nan=True)

    def write(file: IO[bytes]) -> None:
        with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as archive:
            archive.writestr(MANIFEST, text)
            for index, value in enumerate(host_arrays.values()):
                with archive.open(f"arrays/{index}.npy", "w", force_zip64=True) as member:
                    np.lib.format.write_array(member, value, allow_pickle=False)

    atomic_write(path, write)


def read_file(path: PathLike, kinds: tuple[str, ...] = KINDS
              ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and check an xpnn file; return its manifest and its arrays by name.

    Raises :class:`~xpnn.errors.FileFormatError` naming ``path`` if the file is not an xpnn
    file, is truncated or corrupted, has a newer format, or is not one of ``kinds``.
    """
    where = f"'{os.fspath(path)}'"
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise FileFormatError(f"{where} is not an xpnn file: not a ZIP archive (the file is "
                              "foreign, or truncated)") from None
    with archive:
        manifest = _read_manifest(archive, where)
        if manifest["kind"] not in kinds:
            raise FileFormatError(f"{where} holds a {manifest['kind']}, expected "
                                  f"{' or '.join(kinds)}")
        arrays = {}
        for index, entry in enumerate(manifest["arrays"]):
            arrays[entry["name"]] = _read_array(archive, f"arrays/{index}.npy", entry, where)
    return manifest, arrays


def _read_manifest(archive: zipfile.ZipFile, where: str) -> dict[str, Any]:
    try:
        text = archive.read(MANIFEST)
    except KeyError:
        raise FileFormatError(f"{where} is not an xpnn file: it has no {MANIFEST}") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise FileFormatError(f"{where} is corrupted: {MANIFEST} cannot be read "
                              f"({error})") from None
    try:
        manifest = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise FileFormatError(f"{where} is corrupted: {MANIFEST} is not valid JSON "
                              f"({error})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise FileFormatError(f"{where} is not an xpnn file: {MANIFEST} does not say "
                              f"format 'xpnn'")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise FileFormatError(f"{where}: unknown format_version {version!r}")
    if version > FORMAT_VERSION:
        raise FileFormatError(
            f"{where} has format version {version}, written by xpnn "
            f"{manifest.get('xpnn_version', '?')}; this xpnn reads versions up to "
            f"{FORMAT_VERSION}: upgrade xpnn")
    arrays = manifest.get("arrays")
    if manifest.get("kind") not in KINDS or not isinstance(arrays, list) or not all(
            isinstance(entry, dict) and {"name", "shape", "dtype"} <= set(entry)
            for entry in arrays):
        raise FileFormatError(f"{where} is corrupted: its {MANIFEST} lacks a valid kind or "
                              "array list")
    return manifest


def _read_array(archive: zipfile.ZipFile, member: str, entry: dict[str, Any],
                where: str) -> np.ndarray:
    if entry["dtype"] not in ARRAY_DTYPES:
        raise FileFormatError(f"{where}: array {entry['name']!r} has dtype {entry['dtype']!r}; "
                              f"xpnn files hold only {sorted(ARRAY_DTYPES)}")
    try:
        with archive.open(member) as stream:
            array = np.lib.format.read_array(stream, allow_pickle=False)
            if stream.read(1):
                raise ValueError("trailing data after the array")
    except KeyError:
        raise FileFormatError(f"{where} is truncated or corrupted: member {member} "
                              f"({entry['name']!r}) is missing") from None
    except ValueError as error:
        if "allow_pickle" in str(error) or "pickle" in str(error).lower():
            raise FileFormatError(f"{where}: member {member} holds pickled Python objects, "
                                  "which xpnn never loads (a file crafted to run code?)"
                                  ) from None
        raise FileFormatError(f"{where} is corrupted: member {member} ({entry['name']!r}) "
                              f"cannot be read ({error})") from None
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise FileFormatError(f"{where} is corrupted: member {member} ({entry['name']!r}) "
                              f"fails its check ({error})") from None
    if list(array.shape) != list(entry["shape"]) or array.dtype.name != entry["dtype"]:
        raise FileFormatError(
            f"{where} is corrupted: array {entry['name']!r} has shape {array.shape} and "
            f"dtype {array.dtype}, its manifest says {tuple(entry['shape'])} {entry['dtype']}")
    return array
