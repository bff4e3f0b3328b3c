"""One clip's arrays on disk between preprocessing and the store (docs/contracts.md section 2).

A worker writes each kept clip as one ``.npy`` file holding a single structured record
(a field per array: ``face``, ``mouth``, ``wav``, ...), which
:func:`lipflow.tasks.contracts.store_writer.write_store`
later packs into shards. Why not ``.npz``: a zip member carries a CRC32 that is computed on
write and checked on read, and numpy writes members through an extra copy; for ~3 MB a
clip that made saving cost twice the time of writing the bytes. A structured ``.npy`` is
still numpy's own format (``np.load(path)["face"]``), one file per clip, written straight
from memory. Readers accept ``.npz`` files with the same keys too.
"""

from __future__ import annotations

import zipfile
import zlib
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lipflow.tasks.common.atomic import atomic_path

#: Suffix of the per-clip files preprocessing writes.
CLIP_SUFFIX = ".npy"

#: What a damaged or foreign file raises while it is opened or read.
CLIP_READ_ERRORS = (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, KeyError)


def save_clip(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write ``arrays`` as one structured ``.npy`` record at ``path``, via a temp file.

    A packed structured record is its fields' bytes one after another, so the file is
    the ``.npy`` header followed by each array's own buffer: nothing is copied first.
    """
    values = {name: _packed(value) for name, value in arrays.items()}
    dtype = np.dtype([(name, value.dtype, value.shape) for name, value in values.items()])
    header = {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False,
              "shape": ()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, tmp.open("wb") as handle:
        np.lib.format.write_array_header_1_0(handle, header)
        for value in values.values():
            handle.write(value.tobytes() if value.ndim == 0 else value.data)
    return path


def _packed(value: Any) -> np.ndarray:
    """``value`` as a C-contiguous array of its own shape (0-d stays 0-d)."""
    array = np.asarray(value)
    return array if array.flags.c_contiguous else array.copy(order="C")


class ClipFile:
    """A per-clip file opened for reading: ``files`` (array names) and ``clip[name]``.

    Wraps either a structured ``.npy`` record or an ``.npz`` archive behind the same
    two operations; use as a context manager (closes the archive, if any).
    """

    def __init__(self, path: Path) -> None:
        self._take(np.load(path, allow_pickle=False))

    @classmethod
    def from_record(cls, record: np.ndarray) -> ClipFile:
        """A clip already in memory as one structured record (a batch result's member)."""
        clip = cls.__new__(cls)
        clip._take(record)
        return clip

    def _take(self, loaded: Any) -> None:
        if isinstance(loaded, np.lib.npyio.NpzFile):
            self._npz: Any = loaded
            self.files: list[str] = list(loaded.files)
            return
        self._npz = None
        if loaded.dtype.names is None or loaded.shape != ():
            raise ValueError(
                f"expected one structured record, got an array of shape {loaded.shape} "
                f"and dtype {loaded.dtype}"
            )
        self._record = loaded
        self.files = list(loaded.dtype.names)

    def __getitem__(self, name: str) -> np.ndarray:
        if self._npz is not None:
            return np.asarray(self._npz[name])
        if name not in self.files:
            raise KeyError(name)
        return np.asarray(self._record[name])

    def close(self) -> None:
        if self._npz is not None:
            self._npz.close()

    def __enter__(self) -> ClipFile:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def load_clip(path: Path) -> dict[str, np.ndarray]:
    """All arrays of one per-clip file (``.npy`` record or ``.npz``) as a dict."""
    with ClipFile(Path(path)) as clip:
        return {name: clip[name] for name in clip.files}
