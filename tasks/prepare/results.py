"""One finished batch on disk: its clips as store chunks and its clip-manifest rows, in one file.

A batch result is a zip (members stored, not deflated) holding ``rows.json`` (the
batch's clip-manifest rows, ``store_index`` still -1), ``chunks.json`` (the store
encoding the chunks were made with and, per kept clip, each array's shape and chunk
sizes) and one ``<clip>.chunks`` member per kept clip: the clip's store chunks
(:mod:`lipflow.tasks.contracts.store_chunks`), every array's in turn, concatenated.

Why store chunks (issue: workers write shards, not loose files): the worker encodes its
clips into the store's final encoding (frame deltas, JPEG, Blosc: the costly part of
packing, done in parallel), so the driver assembles shards by concatenating bytes, decoding nothing
(:func:`lipflow.tasks.contracts.store_chunks.write_store_from_chunks`). Before, a batch
held each clip as a zstd-compressed ``.npy`` record that the driver decoded (~9 ms a
GRID clip) and encoded again into the store, after the worker had spent ~13 ms encoding
it. A result is as large as its clips are in the store (with the default ``delta``
codec ~0.57 MB a GRID clip, against 1.33 MB as a compressed record and 3.0 MB raw).

Stored zip members keep one file per batch that any runner can write with a temp name
and a rename, or send back to the driver as bytes (:func:`result_bytes`), and the
driver reads one clip at a time from it (:class:`BatchClip`).
"""

from __future__ import annotations

import json
import os
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from lipflow.tasks.contracts.clip_record import CLIP_READ_ERRORS
from lipflow.tasks.contracts.store_chunks import ClipChunkEncoder, EncodedArray, EncodedClip
from lipflow.tasks.contracts.store_layout import ARRAY_DTYPES, StoreError
from lipflow.tasks.contracts.store_writer import StoreEncoding
from lipflow.tasks.settings.schema import Store
from lipflow.tasks.settings.validation import typed_section

ROWS_MEMBER = "rows.json"
LAYOUT_MEMBER = "chunks.json"
CLIP_MEMBER_SUFFIX = ".chunks"

#: What a damaged batch result raises when it is read.
RESULT_READ_ERRORS = (*CLIP_READ_ERRORS, RuntimeError, json.JSONDecodeError)


def store_encoding(features: Mapping[str, Any]) -> StoreEncoding:
    """The store encoding a speaker's ``features`` settings ask for (``features.store``)."""
    store = typed_section(Store, (features or {}).get("store"), "features.store")
    return StoreEncoding(store.codec, store.compressor_level, store.frames_per_chunk,
                         store.clips_per_shard,
                         {"face": store.jpeg_face_quality, "mouth": store.jpeg_mouth_quality},
                         {"step": store.delta_step, "slack": store.delta_slack})


@dataclass(frozen=True)
class BatchClip:
    """One kept clip inside a batch result: :meth:`chunks` reads its store chunks.

    Called when the driver assembles the clip's shard
    (a :data:`~lipflow.tasks.contracts.store_chunks.ChunkSource`).
    """

    archive: Path
    member: str
    layout: Mapping[str, Any]

    def __call__(self) -> EncodedClip:
        return self.chunks()

    def chunks(self) -> EncodedClip:
        try:
            with zipfile.ZipFile(self.archive) as archive:
                data = archive.read(self.member)
        except FileNotFoundError as err:
            raise StoreError(f"batch result {self.archive} does not exist") from err
        except RESULT_READ_ERRORS as err:
            raise StoreError(f"{self}: not a readable clip: {err}") from err
        out, offset = {}, 0
        for key in ARRAY_DTYPES:
            entry = self.layout[key]
            chunks = []
            for size in entry["sizes"]:
                chunks.append(None if size < 0 else data[offset : offset + size])
                offset += max(size, 0)
            out[key] = EncodedArray(tuple(entry["shape"]), tuple(chunks))
        if offset != len(data):
            raise StoreError(f"{self}: {len(data)} bytes, but its layout names {offset}")
        return out

    def __str__(self) -> str:
        return f"{self.archive}:{self.member}"


class BatchResultWriter:
    """Writes one batch result: :meth:`add_clip` per kept clip, then :meth:`finish` the rows.

    The file is written at ``partial`` and renamed over ``target`` by :meth:`finish`, so
    a result at its final name is always complete; an interrupted batch leaves only the
    partial file in its run's work folder (removed with it).
    """

    def __init__(self, partial: Path, encoding: StoreEncoding) -> None:
        self.partial = Path(partial)
        self.encoding = encoding
        self._encoder = ClipChunkEncoder(encoding)
        self._zip = zipfile.ZipFile(self.partial, "w", compression=zipfile.ZIP_STORED)
        self._layout: dict[str, Any] = {}

    def add_clip(self, name: str, arrays: Mapping[str, Any]) -> str:
        """Store one clip's arrays as store chunks, member ``<name>.chunks``; return the
        member name."""
        member = f"{name}{CLIP_MEMBER_SUFFIX}"
        if member in self._layout:
            raise ValueError(f"clip {name} is already in {self.partial}")
        encoded = self._encoder.encode(arrays, name)
        self._layout[member] = {
            key: {"shape": list(value.shape),
                  "sizes": [-1 if c is None else len(c) for c in value.chunks]}
            for key, value in encoded.items()}
        self._zip.writestr(member, b"".join(c for v in encoded.values() for c in v.chunks if c))
        return member

    def finish(self, rows: Sequence[Mapping[str, Any]], target: Path) -> Path:
        """Write the rows and the chunk layout, close the file and rename it to ``target``."""
        self._zip.writestr(ROWS_MEMBER, json.dumps(list(rows), default=plain_json))
        self._zip.writestr(LAYOUT_MEMBER, json.dumps(
            {"encoding": _encoding_json(self.encoding), "clips": self._layout}))
        self._zip.close()
        os.replace(self.partial, target)
        return Path(target)

    def close(self) -> None:
        self._zip.close()

    def __enter__(self) -> BatchResultWriter:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def read_rows(path: Path, encoding: StoreEncoding | None = None) -> list[dict[str, Any]]:
    """A batch result's clip rows; a kept row's ``clip_path`` is its :class:`BatchClip`.

    Raises one of :data:`RESULT_READ_ERRORS` for a damaged file, a row naming a member
    the file lacks, or chunks made with another store ``encoding`` than the one given
    (the caller then recomputes the batch).
    """
    path = Path(path)
    with zipfile.ZipFile(path) as archive:
        rows = json.loads(archive.read(ROWS_MEMBER))
        layout = json.loads(archive.read(LAYOUT_MEMBER))
        members = set(archive.namelist())
    if encoding is not None and layout["encoding"] != _encoding_json(encoding):
        raise ValueError(f"{path} holds chunks encoded as {layout['encoding']}, "
                         f"not {_encoding_json(encoding)}")
    for row in rows:
        if row["kept"]:
            member = row["clip_path"]
            if member not in members or member not in layout["clips"]:
                raise KeyError(f"{path} has no member {member}")
            row["clip_path"] = BatchClip(path, member, layout["clips"][member])
    return rows


def save_result(data: bytes, target: Path, work_dir: Path) -> Path:
    """Write a batch result that came back as bytes (:func:`~lipflow.tasks.prepare.batches.
    preprocess_batch_bytes`) to ``target``: in ``work_dir`` first, then renamed, so a
    result at its final name is always complete."""
    partial = Path(work_dir) / f"{Path(target).stem}.received"
    try:
        partial.write_bytes(data)
        os.replace(partial, target)
    finally:
        partial.unlink(missing_ok=True)
    return Path(target)


def _encoding_json(encoding: StoreEncoding) -> dict[str, Any]:
    return json.loads(json.dumps(encoding.record()))


def plain_json(value: Any) -> Any:
    """JSON for the numpy values a row may hold (the rows are otherwise plain)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
