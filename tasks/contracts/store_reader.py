"""Read a feature store: open and summarise it, and read clips fast with :class:`ClipReader`.

The layout is :mod:`lipflow.tasks.contracts.store_layout`; the store stays plain zarr, so
any zarr v3 reader can open it.

Why a reader of its own: zarr 3's ``array[i]`` costs ~0.7-1 ms of Python and event-loop
overhead per call whatever the size (measured on zarr 3.1), more than decoding a clip with
lz4. A training loader reads several arrays per item, so :class:`ClipReader` reads the
writer's layout directly: it parses the array's ``zarr.json`` once, caches each shard's
index (the sharding spec's ``(offset, nbytes)`` table at the shard's end, crc32c-checked),
and per read does one ``pread`` per chunk (one for all when they lie back to back) and one
numcodecs decode per chunk; at an ``s3://`` URL the same reads are ranged GETs, merged
and sent concurrently (:class:`_RemoteFiles`). It accepts only the layout
:mod:`lipflow.tasks.contracts.store_writer` writes (or any zarr v3 array of the same shape:
sharded along axis 0, chunk one clip or a run of frames, bytes + at most one of zstd /
blosc, ``imagecodecs_jpeg`` alone, or ``lipflow.frame_delta`` + bytes + blosc) and raises
:class:`~lipflow.tasks.contracts.store_layout.StoreError` otherwise, so a caller can fall
back to plain zarr.
"""

from __future__ import annotations

import bisect
import json
import os
from pathlib import Path
from typing import Any

import google_crc32c
import imagecodecs
import numcodecs
import numpy as np
import zarr
from numcodecs import blosc

from lipflow.tasks.common.object_store import filesystem, is_url, storage_options
from lipflow.tasks.contracts import delta_codec, jpeg_codec
from lipflow.tasks.contracts.store_layout import ARRAY_DTYPES, StoreError
from lipflow.tasks.contracts.store_publish import require_published


def open_group(path: Path | str) -> zarr.Group:
    """The store's root group read-only: a local folder, or a *published* store at a URL
    (:func:`lipflow.tasks.contracts.store_publish.require_published`; an unpublished prefix
    is a one-line :class:`StoreError`)."""
    if is_url(path):
        require_published(str(path))
        try:
            return zarr.open_group(str(path), mode="r", zarr_format=3,
                                   storage_options=storage_options(str(path)))
        except (OSError, ValueError) as err:
            raise StoreError(f"cannot open the Zarr store at {path}: {err}") from None
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"no Zarr store at {path}; run `lipflow prepare` first")
    return zarr.open_group(str(path), mode="r", zarr_format=3)


def read_store(path: Path | str) -> zarr.Group:
    """Open a store read-only, checking that it holds every documented array."""
    group = open_group(path)
    missing = [key for key in ARRAY_DTYPES if key not in group]
    if missing:
        raise StoreError(f"{path} is not a lipflow feature store: missing arrays {missing}")
    return group


def store_summary(path: Path | str) -> dict[str, Any]:
    """What a store holds (shapes, dtypes, chunking, attrs, files on disk), as plain data."""
    group = read_store(path)
    if is_url(path):
        fs, key = filesystem(str(path))
        sizes = [int(i.get("size") or 0)
                 for i in fs.find(key, detail=True, withdirs=False).values()]
    else:
        path = Path(path)
        sizes = [p.stat().st_size for p in path.rglob("*") if p.is_file()]
    arrays = {}
    for key in ARRAY_DTYPES:
        array = group[key]
        arrays[key] = {
            "shape": tuple(array.shape),
            "dtype": str(array.dtype),
            "chunks": tuple(array.chunks),
            "shards": tuple(array.shards) if array.shards else None,
            "serializer": type(array.serializer).__name__,
            "compressors": [type(c).__name__ for c in array.compressors],
        }
    return {
        "path": str(path) if is_url(path) else Path(path).as_posix(),
        "num_clips": int(group["valid_frames"].shape[0]),
        "arrays": arrays,
        "attrs": dict(group.attrs),
        "num_files": len(sizes),
        "bytes": sum(sizes),
    }


_EMPTY_CHUNK = 2**64 - 1
#: Byte gap under which a remote read fetches two chunks in one request: at S3's ~50-100
#: MB/s per connection a request's latency (~10-30 ms) costs about as much as 1 MiB.
MERGE_GAP = 1 << 20  # the sharding spec's (offset, nbytes) for a chunk never written


class ClipReader:
    """Frames ``[first, stop)`` of clip ``i`` of one store array, read from its shard files.

    Why not ``zarr.Array`` here: see the module docstring (per-call overhead). Open one per
    array per process (it keeps file descriptors and shard indexes, so it is not meant to
    be pickled, nor shared between threads); :meth:`read` returns a fresh, writable array equal to
    ``zarr.open_array(path)[i, first:stop]``.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = path if is_url(path) else Path(path)
        self._io: _LocalFiles | _RemoteFiles = (
            _RemoteFiles(str(path)) if is_url(path) else _LocalFiles())
        meta = self._metadata(self.path)
        try:
            self.shape = tuple(int(d) for d in meta["shape"])
            self.dtype = np.dtype(meta["data_type"])
            shard_shape = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
            codecs = meta["codecs"]
            sharding = codecs[0] if len(codecs) == 1 else {}
            conf = sharding.get("configuration", {})
            chunk_shape = tuple(int(d) for d in conf.get("chunk_shape", ()))
            inner = conf.get("codecs", [])
            index_codecs = [c["name"] for c in conf.get("index_codecs", [])]
            location = conf.get("index_location", "end")
            encoding = meta["chunk_key_encoding"]
            separator = encoding.get("configuration", {}).get("separator", "/")
        except (KeyError, TypeError, ValueError) as err:
            raise StoreError(f"{self.path} is not a sharded zarr v3 array: {err}") from err
        ndim = len(self.shape)
        endian = inner[0].get("configuration", {}).get("endian", "little") if inner else None
        jpeg = bool(inner) and inner[0].get("name") == jpeg_codec.NAME
        delta = bool(inner) and inner[0].get("name") == delta_codec.NAME
        ok = (
            meta.get("zarr_format") == 3
            and sharding.get("name") == "sharding_indexed"
            and ndim >= 2
            and len(shard_shape) == len(chunk_shape) == ndim
            and shard_shape[1] >= self.shape[1]
            and shard_shape[2:] == self.shape[2:]
            and chunk_shape[0] == 1
            and chunk_shape[1] >= 1
            and shard_shape[1] % chunk_shape[1] == 0
            and chunk_shape[2:] == self.shape[2:]
            and index_codecs == ["bytes", "crc32c"]
            and location == "end"
            and encoding.get("name") == "default"
            and inner
            and (
                (jpeg and len(inner) == 1 and self.dtype == np.uint8 and ndim in (4, 5))
                or (delta and [c.get("name") for c in inner[1:]] == ["bytes", "blosc"]
                    and self.dtype == np.uint8 and ndim in (4, 5))
                or (
                    inner[0].get("name") == "bytes"
                    and (endian == "little" or self.dtype.itemsize == 1)
                    and len(inner) <= 2
                    and all(c.get("name") in ("zstd", "blosc") for c in inner[1:])
                )
            )
        )
        if not ok:
            raise StoreError(
                f"{self.path} does not have the layout ClipReader reads (zarr v3, one "
                "sharding codec, shards of whole clips, chunks of one clip or of frames)"
            )
        self.dtype = self.dtype.newbyteorder("<")
        self.clips_per_shard = int(shard_shape[0])
        self.frames_per_chunk = int(chunk_shape[1])
        self.chunks_per_clip = int(shard_shape[1]) // self.frames_per_chunk
        self.frame_shape = self.shape[2:]
        self.frame_bytes = int(np.prod(self.frame_shape, dtype=np.int64)) * self.dtype.itemsize
        self._step = 0
        if jpeg:
            self.compressor: str | None = "jpeg"
        elif delta:
            self.compressor = "delta"
            self._step = int(inner[0].get("configuration", {}).get("step",
                                                                    delta_codec.DEFAULT_STEP))
        else:
            self.compressor = inner[1]["name"] if len(inner) == 2 else None
        self._colour = jpeg_codec.is_colour(chunk_shape)
        self.fill_value = meta.get("fill_value", 0)
        # the default key encoding: "c/<shard>/0/0..." (or "c.<shard>.0.0..." in one file)
        self._key = separator.join(["c", "{}", *["0"] * (ndim - 1)])
        self._files: dict[int, tuple[Any, list[tuple[int, int]]]] = {}
        self._zstd = numcodecs.Zstd()
        self._scratch: np.ndarray | None = None
        self._deltas: np.ndarray | None = None

    def _metadata(self, path: Path | str) -> dict[str, Any]:
        where = f"{path}/zarr.json"
        try:
            return json.loads(self._io.whole(where))
        except (OSError, ValueError) as err:
            raise StoreError(f"cannot read array metadata {where}: {err}") from err

    def _shard(self, shard: int) -> tuple[Any, list[tuple[int, int]]]:
        """(open file, (offset, nbytes) per chunk) for a shard, cached."""
        cached = self._files.get(shard)
        if cached is not None:
            return cached
        path = f"{self.path}/{self._key.format(shard)}"
        chunks = self.clips_per_shard * self.chunks_per_clip
        index_bytes = chunks * 16 + 4
        try:
            fd, size = self._io.open(path)
        except FileNotFoundError:
            fd, index = None, [(_EMPTY_CHUNK, _EMPTY_CHUNK)] * chunks
        else:
            raw = self._io.pread(fd, index_bytes, size - index_bytes)
            checksum = int.from_bytes(raw[-4:], "little")
            if len(raw) != index_bytes or google_crc32c.value(raw[:-4]) != checksum:
                self._io.close(fd)
                raise StoreError(f"shard {path} has a missing or corrupt index")
            rows = np.frombuffer(raw[:-4], dtype="<u8").reshape(chunks, 2)
            index = [(int(o), int(n)) for o, n in rows.tolist()]
        self._files[shard] = (fd, index)
        return fd, index

    def close(self) -> None:
        """Close the shard files (reads after this reopen them)."""
        for fd, _ in self._files.values():
            if fd is not None:
                self._io.close(fd)
        self._files.clear()

    def __del__(self) -> None:
        if hasattr(self, "_files"):  # not when __init__ raised
            self.close()

    def read(self, clip: int, first: int = 0, stop: int | None = None) -> np.ndarray:
        """``array[clip, first:stop]`` (``stop`` clipped to the clip's length)."""
        if not 0 <= clip < self.shape[0]:
            raise IndexError(f"clip {clip} out of range for {self.path} ({self.shape[0]} clips)")
        stop = self.shape[1] if stop is None else min(stop, self.shape[1])
        first = min(max(first, 0), stop)
        out = np.empty((stop - first, *self.frame_shape), dtype=self.dtype)
        if stop == first:
            return out
        fd, index = self._shard(clip // self.clips_per_shard)
        per = self.frames_per_chunk
        row = (clip % self.clips_per_shard) * self.chunks_per_clip
        chunks = range(first // per, (stop - 1) // per + 1)
        entries = index[row + chunks.start : row + chunks.stop]
        data, base = None, 0
        parts: list[bytes | None] | None = None
        if self.compressor is not None and len(entries) > 1:
            # chunks back to back (one-clip shards): one pread for all of them; zarr writes a
            # shard of several clips in Morton order, which interleaves their chunks
            ends = [o + n for o, n in entries]
            if all(o == e for (o, _), e in zip(entries[1:], ends, strict=False)):
                base = entries[0][0]
                data = memoryview(self._io.pread(fd, ends[-1] - base, base))
            elif fd is not None and self._io.batched:  # remote: all chunks' requests at once
                parts = self._io.pread_many(fd, entries)
        for k, (c, (offset, nbytes)) in enumerate(zip(chunks, entries, strict=True)):
            lo, hi = max(first, c * per), min(stop, (c + 1) * per)
            part = None if data is None else data[offset - base : offset - base + nbytes]
            if parts is not None:
                part = parts[k]
            self._read_chunk(fd, offset, nbytes, out[lo - first : hi - first], lo - c * per,
                             part)
        return out

    def _read_chunk(self, fd: Any, offset: int, nbytes: int, dest: np.ndarray, skip: int,
                    data: memoryview | bytes | None) -> None:
        """Frames ``skip .. skip+len(dest)`` of one chunk into ``dest`` (``data``: its bytes,
        when already read)."""
        if offset == _EMPTY_CHUNK and nbytes == _EMPTY_CHUNK:
            dest[...] = self.fill_value
            return
        if self.compressor is None:  # raw bytes: read only the frames asked for
            view = memoryview(dest.reshape(-1).view(np.uint8))
            got = self._io.readinto(fd, view, offset + skip * self.frame_bytes)
            if got != dest.nbytes:
                raise StoreError(f"{self.path}: short read of a chunk")
            return
        if data is None:
            data = self._io.pread(fd, nbytes, offset)
        whole = skip == 0 and len(dest) == self.frames_per_chunk
        if whole:
            target = dest
        else:  # decode the whole chunk into a reused buffer (no fresh 2 MB per window)
            if self._scratch is None:
                self._scratch = np.empty((self.frames_per_chunk, *self.frame_shape), self.dtype)
            target = self._scratch
        if self.compressor == "jpeg":
            imagecodecs.jpeg8_decode(data, out=jpeg_codec.as_image(target, self._colour))
        elif self.compressor == "delta":
            if self._deltas is None:
                self._deltas = np.empty((2, self.frames_per_chunk, *self.frame_shape), np.uint8)
            blosc.decompress(data, self._deltas[0])
            need = skip + len(dest)  # frames decode in order: the ones after are not needed
            delta_codec.decode_frames(self._deltas[0, :need], target[:need], self._step,
                                      self._deltas[1, :need])
        elif self.compressor == "blosc":
            blosc.decompress(data, target)
        else:
            self._zstd.decode(data, target)
        if not whole:
            dest[...] = target[skip : skip + len(dest)]


class _LocalFiles:
    """Shard files on a local file system: ``pread`` on a file descriptor."""

    batched = False  # a pread costs microseconds: no need to gather them

    @staticmethod
    def whole(path: str) -> bytes:
        return Path(path).read_bytes()

    @staticmethod
    def open(path: str) -> tuple[int, int]:
        fd = os.open(path, os.O_RDONLY)
        return fd, os.fstat(fd).st_size

    @staticmethod
    def pread(fd: int, nbytes: int, offset: int) -> bytes:
        return os.pread(fd, nbytes, offset)

    @staticmethod
    def readinto(fd: int, view: memoryview, offset: int) -> int:
        return os.preadv(fd, [view], offset)

    @staticmethod
    def close(fd: int) -> None:
        os.close(fd)


class _RemoteFiles:
    """Shard objects at a URL: ranged GETs (fsspec ``cat_file`` / ``cat_ranges``).

    Why: the shard index (read once per shard) says where each chunk is, so a read asks for
    exactly its chunks' bytes: one request when they lie back to back, else one per chunk
    sent concurrently, so a window costs about one round trip per array.
    Refuses an array of an unpublished store (:mod:`lipflow.tasks.contracts.store_publish`).
    """

    def __init__(self, array_url: str) -> None:
        require_published(array_url.rstrip("/").rsplit("/", 1)[0])
        self.fs, _ = filesystem(array_url)

    @staticmethod
    def _key(url: str) -> str:
        return url.split("://", 1)[1]

    def whole(self, url: str) -> bytes:
        return self.fs.cat_file(self._key(url))

    def open(self, url: str) -> tuple[str, int]:
        key = self._key(url)
        return key, int(self.fs.size(key))

    def pread(self, key: str, nbytes: int, offset: int) -> bytes:
        return self.fs.cat_file(key, start=offset, end=offset + nbytes)

    batched = True  # a request costs milliseconds: send a read's requests concurrently

    def pread_many(self, key: str, entries: list[tuple[int, int]]) -> list[bytes | None]:
        """The bytes of each ``(offset, nbytes)`` (``None`` for a chunk never written).

        Ranges less than :data:`MERGE_GAP` apart are merged into one ranged GET (zarr
        writes a shard's chunks in Morton order, so a clip's chunks are interleaved with
        its neighbours'; a window's 6 chunks span ~3x their bytes), and the merged GETs are
        sent concurrently (fsspec ``cat_ranges``).
        """
        from fsspec.utils import merge_offset_ranges

        wanted = [(o, o + n) for o, n in entries if (o, n) != (_EMPTY_CHUNK, _EMPTY_CHUNK)]
        if not wanted:
            return [None] * len(entries)
        _, starts, stops = merge_offset_ranges([key] * len(wanted), [a for a, _ in wanted],
                                               [b for _, b in wanted], max_gap=MERGE_GAP,
                                               sort=True)
        blocks = self.fs.cat_ranges([key] * len(starts), starts, stops)
        out: list[bytes | None] = []
        for o, n in entries:
            if (o, n) == (_EMPTY_CHUNK, _EMPTY_CHUNK):
                out.append(None)
                continue
            k = bisect.bisect_right(starts, o) - 1
            out.append(memoryview(blocks[k])[o - starts[k] : o - starts[k] + n])
        return out

    def readinto(self, key: str, view: memoryview, offset: int) -> int:
        data = self.pread(key, len(view), offset)
        view[: len(data)] = data
        return len(data)

    @staticmethod
    def close(key: str) -> None:
        """Nothing to close: each read is its own request."""
