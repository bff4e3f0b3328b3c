"""Feature stores: per-clip records packed into one sharded Zarr v3 group per speaker.

Layout (``docs/contracts.md`` section 4): arrays ``face``, ``mouth``, ``wav``, ``mel``,
``mfec``, ``valid_frames``, ``valid_samples``, all with first axis N (kept clips). A
chunk holds one clip along N (full extent on the other axes) so a reader decompresses
only the clip it asked for; ``face`` and ``mouth`` clips are further cut along T into
chunks of ``frames_per_chunk`` frames (``features.store.frames_per_chunk``, default 5),
because a training window (Lip2Wav: 25 of 75 frames) would otherwise decode three times
the frames it uses, and decoding is most of a window's cost. Chunks are grouped into
shards of ``clips_per_shard`` clips so that a store is a handful of large files (what DVC
and file systems handle well) rather than one file per clip. Chunks are compressed with
``codec`` (``features.store.codec``):

- ``lz4`` (the default): Blosc lz4 with byte shuffle. Decodes a 2 MB ``face`` clip in
  ~0.2 ms, ~10x faster than zstd, which is what lets a loader beat a folder of JPEGs by
  an order of magnitude (``benchmarks/loader.py``); it compresses video frames less
  (~1.05x against zstd's ~1.25x on GRID faces: camera noise leaves little to find).
- ``zstd``: smaller stores (~15% on faces), ~2.3 ms to decode a ``face`` clip.
- ``none``: raw bytes; the largest store, and a window can be read without the rest of
  its clip (:class:`ClipReader` reads just the window's frames).

Why shards are written whole: a shard is one file holding many chunks plus an index.
Writing a clip into an existing shard rewrites the whole shard, so clip-by-clip writes
would cost O(clips_per_shard) shard rewrites each. :func:`write_store` assembles one
shard's worth of clips in memory (one array at a time, to bound memory) and writes that
region in a single assignment aligned to shard boundaries.

Why the default shard is 64 clips: a GRID clip is 3 s at 25 fps, so ``face`` is
75 x 96 x 96 x 3 = 2.07 MB and ``mouth`` (96 x 96) 0.69 MB uncompressed; all arrays
together are ~3.0 MB per clip. 64 clips make a ``face`` shard of ~133 MB uncompressed
(~126 MB after lz4, ~106 MB after zstd, on real frames), inside the 100 MB-1 GB aim,
while assembling a shard needs at most ~133 MB of memory (one array at a time). A
1000-clip GRID speaker becomes 16 shards per array.

The store is written to a temp folder beside ``out`` and renamed over it, so an
interrupted run leaves the previous store untouched; the same inputs and attrs give
byte-identical files (zstd and Blosc are deterministic and nothing time-dependent is stored).

Reading: zarr 3's ``array[i]`` costs ~0.7-1 ms of Python and event-loop overhead per call
whatever the size (measured on zarr 3.1), more than decoding a clip with lz4. A training
loader reads several arrays per item, so :class:`ClipReader` reads this writer's layout
directly: it parses the array's ``zarr.json`` once, caches each shard's index (the
sharding spec's ``(offset, nbytes)`` table at the shard's end, crc32c-checked), and per
read does one ``pread`` (a clip's chunks lie back to back) and one numcodecs decode per
chunk. It accepts only the layout written here
(or any zarr v3 array of the same shape: sharded along axis 0, chunk one clip or a run of
frames, bytes + at most one of zstd / blosc) and raises :class:`StoreError` otherwise, so
a caller can fall back to plain zarr. The store itself stays plain zarr.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import google_crc32c
import numcodecs
import numpy as np
import zarr
from numcodecs import blosc
from tqdm import tqdm
from zarr.codecs import BloscCodec, ZstdCodec

from lipflow.tasks.common.atomic import atomic_path
from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.contracts.clip_manifest import (
    CLIP_SCHEMA,
    read_clip_manifest,
    write_clip_manifest,
)
from lipflow.tasks.contracts.clip_record import CLIP_READ_ERRORS, ClipFile

__all__ = [
    "ARRAY_DTYPES",
    "CLIP_SCHEMA",
    "CODECS",
    "ClipReader",
    "DEFAULT_CLIPS_PER_SHARD",
    "DEFAULT_CODEC",
    "DEFAULT_FRAMES_PER_CHUNK",
    "StoreError",
    "manifest_path_for",
    "read_clip_manifest",
    "read_store",
    "store_summary",
    "write_clip_manifest",
    "write_store",
]

DEFAULT_CLIPS_PER_SHARD = 64
DEFAULT_CODEC = "lz4"
DEFAULT_FRAMES_PER_CHUNK = 5
#: ``features.store.codec`` values and the level range each accepts.
CODECS: dict[str, tuple[int, int]] = {"lz4": (1, 9), "zstd": (1, 22), "none": (0, 22)}

#: The arrays of a store, in write order, with their on-disk dtype.
ARRAY_DTYPES: dict[str, np.dtype] = {
    "face": np.dtype("uint8"),
    "mouth": np.dtype("uint8"),
    "wav": np.dtype("int16"),
    "mel": np.dtype("float32"),
    "mfec": np.dtype("float32"),
    "valid_frames": np.dtype("int32"),
    "valid_samples": np.dtype("int32"),
}

#: Arrays whose input dtype must match exactly: casting would silently corrupt them
#: (float audio scaled to [-1, 1] cast to int16 is all zeros; float frames wrap).
_EXACT_DTYPES = ("face", "mouth", "wav")
_SCALARS = ("valid_frames", "valid_samples")
_VIDEO = ("face", "mouth")


class StoreError(LipflowError):
    """A per-clip file cannot go into a store, or a store is missing or malformed."""


def manifest_path_for(store: Path) -> Path:
    """The clip manifest beside a store: ``<stem>.parquet`` next to ``<stem>.zarr``."""
    store = Path(store)
    return store.with_name(store.stem + ".parquet")


def _open_clip(path: Path) -> ClipFile:
    try:
        return ClipFile(path)
    except FileNotFoundError as err:
        raise StoreError(f"per-clip file {path} does not exist") from err
    except CLIP_READ_ERRORS as err:
        raise StoreError(
            f"per-clip file {path} is not a readable clip record (.npy) or .npz: {err}"
        ) from err


def _read_key(clip: ClipFile, key: str, path: Path) -> np.ndarray:
    if key not in clip.files:
        raise StoreError(f"per-clip file {path} has no '{key}' array (has {sorted(clip.files)})")
    try:
        return np.asarray(clip[key])
    except CLIP_READ_ERRORS as err:
        raise StoreError(f"per-clip file {path}: '{key}' cannot be read: {err}") from err


def _checked(value: np.ndarray, key: str, shape: tuple[int, ...], path: Path) -> np.ndarray:
    """Return ``value`` in the store dtype, or raise naming the file if it does not fit."""
    if value.shape != shape:
        raise StoreError(
            f"per-clip file {path}: '{key}' has shape {value.shape}, but the store's clips "
            f"have {shape} (taken from the first clip); all clips of a store must match"
        )
    want = ARRAY_DTYPES[key]
    if key in _EXACT_DTYPES and value.dtype != want:
        raise StoreError(f"per-clip file {path}: '{key}' is {value.dtype}, expected {want}")
    if key in _SCALARS and value.dtype.kind not in "iu":
        raise StoreError(f"per-clip file {path}: '{key}' is {value.dtype}, expected an integer")
    if key in ("mel", "mfec") and value.dtype.kind != "f":
        raise StoreError(f"per-clip file {path}: '{key}' is {value.dtype}, expected float32")
    return value.astype(want, copy=False)


def _shapes_from_first_clip(path: Path) -> dict[str, tuple[int, ...]]:
    with _open_clip(path) as clip:
        return {key: _read_key(clip, key, path).shape for key in ARRAY_DTYPES}


def _shapes_from_params(attrs: Mapping[str, Any]) -> dict[str, tuple[int, ...]]:
    """Per-clip shapes implied by ``attrs['params']``; used only for an empty store.

    Why: with no clips there is no first clip to copy shapes from, but readers still
    expect the documented ranks (and, where the params say, sizes). Unknown sizes are 0.
    """
    params = attrs.get("params") or {}
    pre = params.get("preprocess") or {}
    mel = (params.get("features") or {}).get("mel") or {}
    mfec = (params.get("features") or {}).get("mfec") or {}
    fps, seconds = attrs.get("fps"), pre.get("clip_seconds")
    sr = pre.get("sample_rate_hz") or mel.get("sample_rate_hz")
    frames = int(round(fps * seconds)) if fps and seconds else 0
    samples = int(round(sr * seconds)) if sr and seconds else 0
    face = int(pre.get("face_size_px") or 0)
    if pre.get("mouth_preset") == "cnn3d":
        mouth_h, mouth_w = 60, 100
    else:
        mouth_h = int(pre.get("mouth_height_px") or 0)
        mouth_w = int(pre.get("mouth_width_px") or 0)
    hop = mel.get("hop_samples")
    mel_frames = samples // hop + 1 if samples and hop else 0
    frame_s, stride_s = mfec.get("frame_seconds"), mfec.get("stride_seconds")
    mfec_frames = 0
    if samples and sr and frame_s and stride_s:
        frame_len, stride = round(frame_s * sr), round(stride_s * sr)
        mfec_frames = max(0, -(-(samples - frame_len) // stride))  # speechpy: ceil
    return {
        "face": (frames, face, face, 3),
        "mouth": (frames, mouth_h, mouth_w),
        "wav": (samples,),
        "mel": (mel_frames, int(mel.get("n_mels") or 0)),
        "mfec": (mfec_frames, int(mfec.get("n_filters") or 0), 3),
        "valid_frames": (),
        "valid_samples": (),
    }


def _json_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attrs as plain JSON values (numpy scalars and paths converted), or a clear error."""

    def convert(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, Path):
            return value.as_posix()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    out = dict(attrs)
    out.setdefault("created_by", "lipflow tasks.contracts.store.write_store")
    try:
        return json.loads(json.dumps(out, default=convert, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise StoreError(f"store attributes cannot be written as JSON: {err}") from err


def _show_progress(progress: bool | None) -> bool:
    return sys.stderr.isatty() if progress is None else progress


def write_store(
    clip_paths: Sequence[Path],
    out: Path,
    *,
    attrs: Mapping[str, Any],
    clips_per_shard: int = DEFAULT_CLIPS_PER_SHARD,
    compressor_level: int = 3,
    codec: str = DEFAULT_CODEC,
    frames_per_chunk: int = DEFAULT_FRAMES_PER_CHUNK,
    progress: bool | None = None,
) -> Path:
    """Pack per-clip files (contract section 2) into a sharded Zarr store at ``out``.

    Clip ``i`` of the store is ``clip_paths[i]``; the caller writes the matching clip
    manifest (:func:`write_clip_manifest`) in the same order. Per-clip shapes come from the
    first clip; a clip that differs, lacks a key, or is not a readable clip file raises
    :class:`StoreError` naming the file, and ``out`` is left as it was. An empty list
    gives a valid store with zero-length arrays (shapes from ``attrs['params']``).
    ``codec`` is ``lz4`` (Blosc, fast to read), ``zstd`` (smaller) or ``none``, with
    ``compressor_level`` its level (ignored for ``none``). ``frames_per_chunk`` splits a
    clip of ``face`` / ``mouth`` into chunks of that many frames inside its shard, so a
    window decodes only the chunks it overlaps (0: one chunk per clip). ``progress=None``
    shows a bar only when stderr is a terminal.
    """
    paths = [Path(p) for p in clip_paths]
    out = Path(out)
    if clips_per_shard < 1:
        raise StoreError(f"clips_per_shard must be >= 1, got {clips_per_shard}")
    if codec not in CODECS:
        raise StoreError(f"store codec must be one of {sorted(CODECS)}, got {codec!r}")
    low, high = CODECS[codec]
    if not low <= compressor_level <= high:
        raise StoreError(
            f"{codec} compressor_level must be {low}..{high}, got {compressor_level}"
        )
    if frames_per_chunk < 0:
        raise StoreError(f"frames_per_chunk must be >= 0 (0 = whole clip), got {frames_per_chunk}")
    group_attrs = _json_attrs(attrs)
    n = len(paths)
    shapes = _shapes_from_first_clip(paths[0]) if paths else _shapes_from_params(group_attrs)

    with atomic_path(out) as tmp:
        root = zarr.open_group(str(tmp), mode="w", attributes=group_attrs, zarr_format=3)
        arrays = {
            key: root.create_array(
                key,
                shape=(n, *shape),
                chunks=_chunk_shape(key, shape, frames_per_chunk),
                shards=_shard_shape(key, shape, clips_per_shard, frames_per_chunk),
                dtype=ARRAY_DTYPES[key],
                compressors=_compressors(codec, compressor_level),
                fill_value=0,
            )
            for key, shape in shapes.items()
        }
        with tqdm(total=n, unit="clip", desc=f"store {out.name}",
                  disable=not _show_progress(progress)) as bar:
            for start in range(0, n, clips_per_shard):
                batch = paths[start : start + clips_per_shard]
                _write_shard(arrays, shapes, batch, start)
                bar.update(len(batch))
    return out


def _chunk_shape(key: str, shape: tuple[int, ...], frames_per_chunk: int) -> tuple[int, ...]:
    """One clip (full extent on every other axis), cut along T for the video arrays."""
    full = tuple(max(1, d) for d in shape)
    if key in _VIDEO and frames_per_chunk:
        return (1, min(frames_per_chunk, full[0]), *full[1:])
    return (1, *full)


def _shard_shape(key: str, shape: tuple[int, ...], clips: int,
                 frames_per_chunk: int) -> tuple[int, ...]:
    """``clips`` whole clips; along T rounded up to whole chunks (zarr needs a shard to be
    a multiple of its chunks: 90 frames at 30 fps in chunks of 25 make a 100-frame shard,
    whose last chunk runs past the array's edge and is read back clipped)."""
    chunk = _chunk_shape(key, shape, frames_per_chunk)
    frames = -(-max(1, shape[0]) // chunk[1]) * chunk[1] if shape else None
    return (clips, *(() if frames is None else (frames,)), *chunk[2:])


def _compressors(codec: str, level: int) -> Any:
    if codec == "lz4":
        # shuffle regroups the bytes of multi-byte values (float32 mel, int16 wav); for
        # uint8 frames it is a no-op, so it costs nothing there
        return BloscCodec(cname="lz4", clevel=level, shuffle="shuffle")
    if codec == "zstd":
        return ZstdCodec(level=level)
    return None


def _write_shard(
    arrays: Mapping[str, zarr.Array],
    shapes: Mapping[str, tuple[int, ...]],
    batch: Sequence[Path],
    start: int,
) -> None:
    """Write clips ``start..start+len(batch)`` (one shard) array by array, each in one go."""
    handles = []
    try:
        for path in batch:
            handles.append(_open_clip(path))
        for key, array in arrays.items():
            block = np.empty((len(batch), *shapes[key]), dtype=ARRAY_DTYPES[key])
            for j, (path, clip) in enumerate(zip(batch, handles, strict=True)):
                block[j] = _checked(_read_key(clip, key, path), key, shapes[key], path)
            array[start : start + len(batch)] = block
    finally:
        for clip in handles:
            clip.close()


def read_store(path: Path) -> zarr.Group:
    """Open a store read-only, checking that it holds every documented array."""
    path = Path(path)
    if not (path / "zarr.json").is_file():
        raise StoreError(f"no Zarr store at {path}; run `lipflow prepare` first")
    group = zarr.open_group(str(path), mode="r", zarr_format=3)
    missing = [key for key in ARRAY_DTYPES if key not in group]
    if missing:
        raise StoreError(f"{path} is not a lipflow feature store: missing arrays {missing}")
    return group


def store_summary(path: Path) -> dict[str, Any]:
    """What a store holds (shapes, dtypes, chunking, attrs, files on disk), as plain data."""
    path = Path(path)
    group = read_store(path)
    files = [p for p in path.rglob("*") if p.is_file()]
    arrays = {}
    for key in ARRAY_DTYPES:
        array = group[key]
        arrays[key] = {
            "shape": tuple(array.shape),
            "dtype": str(array.dtype),
            "chunks": tuple(array.chunks),
            "shards": tuple(array.shards) if array.shards else None,
            "compressors": [type(c).__name__ for c in array.compressors],
        }
    return {
        "path": path.as_posix(),
        "num_clips": int(group["valid_frames"].shape[0]),
        "arrays": arrays,
        "attrs": dict(group.attrs),
        "num_files": len(files),
        "bytes": sum(p.stat().st_size for p in files),
    }


_EMPTY_CHUNK = 2**64 - 1  # the sharding spec's (offset, nbytes) for a chunk never written


class ClipReader:
    """Frames ``[first, stop)`` of clip ``i`` of one store array, read from its shard files.

    Why not ``zarr.Array`` here: see the module docstring (per-call overhead). Open one per
    array per process (it keeps file descriptors and shard indexes, so it is not meant to
    be pickled, nor shared between threads); :meth:`read` returns a fresh, writable array equal to
    ``zarr.open_array(path)[i, first:stop]``.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
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
            and inner[0].get("name") == "bytes"
            and (endian == "little" or self.dtype.itemsize == 1)
            and len(inner) <= 2
            and all(c.get("name") in ("zstd", "blosc") for c in inner[1:])
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
        self.compressor = inner[1]["name"] if len(inner) == 2 else None
        self.fill_value = meta.get("fill_value", 0)
        # the default key encoding: "c/<shard>/0/0..." (or "c.<shard>.0.0..." in one file)
        self._key = separator.join(["c", "{}", *["0"] * (ndim - 1)])
        self._files: dict[int, tuple[int, list[tuple[int, int]]]] = {}
        self._zstd = numcodecs.Zstd()
        self._scratch: np.ndarray | None = None

    @staticmethod
    def _metadata(path: Path) -> dict[str, Any]:
        try:
            return json.loads((path / "zarr.json").read_text())
        except (OSError, ValueError) as err:
            raise StoreError(f"cannot read array metadata {path / 'zarr.json'}: {err}") from err

    def _shard(self, shard: int) -> tuple[int, list[tuple[int, int]]]:
        """(file descriptor, (offset, nbytes) per chunk) for a shard, cached."""
        cached = self._files.get(shard)
        if cached is not None:
            return cached
        path = self.path / self._key.format(shard)
        chunks = self.clips_per_shard * self.chunks_per_clip
        index_bytes = chunks * 16 + 4
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            fd, index = -1, [(_EMPTY_CHUNK, _EMPTY_CHUNK)] * chunks
        else:
            size = os.fstat(fd).st_size
            raw = os.pread(fd, index_bytes, size - index_bytes)
            checksum = int.from_bytes(raw[-4:], "little")
            if len(raw) != index_bytes or google_crc32c.value(raw[:-4]) != checksum:
                os.close(fd)
                raise StoreError(f"shard {path} has a missing or corrupt index")
            rows = np.frombuffer(raw[:-4], dtype="<u8").reshape(chunks, 2)
            index = [(int(o), int(n)) for o, n in rows.tolist()]
        self._files[shard] = (fd, index)
        return fd, index

    def close(self) -> None:
        """Close the shard files (reads after this reopen them)."""
        for fd, _ in self._files.values():
            if fd >= 0:
                os.close(fd)
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
        if self.compressor is not None and len(entries) > 1:
            # a clip's chunks lie back to back in its shard: one pread for all of them
            ends = [o + n for o, n in entries]
            if all(o == e for (o, _), e in zip(entries[1:], ends, strict=False)):
                base = entries[0][0]
                data = memoryview(os.pread(fd, ends[-1] - base, base))
        for c, (offset, nbytes) in zip(chunks, entries, strict=True):
            lo, hi = max(first, c * per), min(stop, (c + 1) * per)
            part = None if data is None else data[offset - base : offset - base + nbytes]
            self._read_chunk(fd, offset, nbytes, out[lo - first : hi - first], lo - c * per,
                             part)
        return out

    def _read_chunk(self, fd: int, offset: int, nbytes: int, dest: np.ndarray, skip: int,
                    data: memoryview | None) -> None:
        """Frames ``skip .. skip+len(dest)`` of one chunk into ``dest`` (``data``: its bytes,
        when already read)."""
        if offset == _EMPTY_CHUNK and nbytes == _EMPTY_CHUNK:
            dest[...] = self.fill_value
            return
        if self.compressor is None:  # raw bytes: read only the frames asked for
            view = memoryview(dest.reshape(-1).view(np.uint8))
            got = os.preadv(fd, [view], offset + skip * self.frame_bytes)
            if got != dest.nbytes:
                raise StoreError(f"{self.path}: short read of a chunk")
            return
        if data is None:
            data = os.pread(fd, nbytes, offset)
        whole = skip == 0 and len(dest) == self.frames_per_chunk
        if whole:
            target = dest
        else:  # decode the whole chunk into a reused buffer (no fresh 2 MB per window)
            if self._scratch is None:
                self._scratch = np.empty((self.frames_per_chunk, *self.frame_shape), self.dtype)
            target = self._scratch
        if self.compressor == "blosc":
            blosc.decompress(data, target)
        else:
            self._zstd.decode(data, target)
        if not whole:
            dest[...] = target[skip : skip + len(dest)]
