"""Write a feature store: per-clip records packed into one sharded Zarr v3 group per speaker.

The layout (arrays, chunks, shards, codecs) is :mod:`lipflow.tasks.contracts.store_layout`.

Why shards are written whole: a shard is one file holding many chunks plus an index.
Writing a clip into an existing shard rewrites the whole shard, so clip-by-clip writes
would cost O(clips_per_shard) shard rewrites each. :func:`write_store` assembles one
shard's worth of clips in memory (one array at a time, to bound memory) and writes that
region in a single assignment aligned to shard boundaries.

The store is written to a temp folder beside ``out`` and renamed over it, so an
interrupted run leaves the previous store untouched (at an object-store URL: a temp prefix,
copied over ``out`` and published by a marker written last,
:mod:`lipflow.tasks.contracts.store_publish`); the same inputs and attrs give
byte-identical files (JPEG, zstd and Blosc are deterministic and nothing time-dependent
is stored).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import zarr
from tqdm import tqdm
from zarr.codecs import BloscCodec, ZstdCodec

from lipflow.tasks.common.atomic import atomic_path
from lipflow.tasks.common.object_store import (
    ObjectStoreError,
    describe_error,
    is_url,
    location,
    name_of,
    storage_options,
)
from lipflow.tasks.common.progress import show_progress
from lipflow.tasks.contracts.clip_record import CLIP_READ_ERRORS, ClipFile
from lipflow.tasks.contracts.delta_codec import BLOSC_BLOCKSIZE, LZ4HC_LEVEL, FrameDelta
from lipflow.tasks.contracts.jpeg_codec import JpegFrames
from lipflow.tasks.contracts.store_layout import (
    ARRAY_DTYPES,
    CODECS,
    DEFAULT_CLIPS_PER_SHARD,
    DEFAULT_CODEC,
    DEFAULT_COMPRESSOR_LEVEL,
    DEFAULT_DELTA,
    DEFAULT_FRAMES_PER_CHUNK,
    DEFAULT_JPEG_QUALITY,
    LOSSY_VIDEO_CODECS,
    VIDEO_ARRAYS,
    StoreError,
    encoding_record,
)
from lipflow.tasks.contracts.store_publish import publishing

#: Arrays whose input dtype must match exactly: casting would silently corrupt them
#: (float audio scaled to [-1, 1] cast to int16 is all zeros; float frames wrap).
_EXACT_DTYPES = ("face", "mouth", "wav")
_SCALARS = ("valid_frames", "valid_samples")
_VIDEO = VIDEO_ARRAYS


@runtime_checkable
class ClipSource(Protocol):
    """A clip that is not a file of its own, e.g. a member of a prepare batch result.

    Why: preprocessing keeps its clips compressed, several to a file, until the store is
    written; ``write_store`` opens each through this instead of a path.
    """

    def open_clip(self) -> ClipFile: ...


def _open_clip(path: Path | ClipSource) -> ClipFile:
    if isinstance(path, ClipSource):
        return path.open_clip()
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
    from lipflow.tasks.faces.crops import MOUTH_PRESETS  # cv2: only for an empty store

    preset = MOUTH_PRESETS.get(pre.get("mouth_preset"))
    if preset is not None:
        mouth_h, mouth_w = preset.height_px, preset.width_px
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
    out.setdefault("created_by", "lipflow tasks.contracts.store_writer.write_store")
    try:
        return json.loads(json.dumps(out, default=convert, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise StoreError(f"store attributes cannot be written as JSON: {err}") from err


def write_store(
    clip_paths: Sequence[Path | ClipSource],
    out: Path | str,
    *,
    attrs: Mapping[str, Any],
    clips_per_shard: int = DEFAULT_CLIPS_PER_SHARD,
    compressor_level: int = DEFAULT_COMPRESSOR_LEVEL,
    codec: str = DEFAULT_CODEC,
    frames_per_chunk: int = DEFAULT_FRAMES_PER_CHUNK,
    jpeg_quality: Mapping[str, int] | None = None,
    delta: Mapping[str, int] | None = None,
    progress: bool | None = None,
    mark: bool = True,
) -> Path | str:
    """Pack per-clip files (contract section 2) into a sharded Zarr store at ``out``.

    Clip ``i`` of the store is ``clip_paths[i]`` (a path, or a :class:`ClipSource`); the
    caller writes the matching clip
    manifest (:func:`lipflow.tasks.contracts.clip_manifest.write_clip_manifest`) in the same
    order. Per-clip shapes come from the
    first clip; a clip that differs, lacks a key, or is not a readable clip file raises
    :class:`StoreError` naming the file, and ``out`` is left as it was. An empty list
    gives a valid store with zero-length arrays (shapes from ``attrs['params']``).
    ``codec`` is ``delta`` (near-lossless face at ``delta``'s ``step`` and ``slack``,
    default :data:`DEFAULT_DELTA`, and JPEG mouth; the other arrays lossless, Blosc
    zstd), ``jpeg`` (lossy face / mouth at ``jpeg_quality``'s ``face`` and ``mouth``
    qualities, 1-100, default :data:`DEFAULT_JPEG_QUALITY`; the rest as under ``delta``),
    ``lz4`` (lossless Blosc, fastest to read), ``zstd`` (lossless, smaller) or ``none``,
    with ``compressor_level`` the level of the lossless compressor (ignored for ``none``);
    the group attribute ``encoding`` records all of it.
    ``frames_per_chunk`` splits a
    clip of ``face`` / ``mouth`` into chunks of that many frames inside its shard, so a
    window decodes only the chunks it overlaps (0: one chunk per clip). ``progress=None``
    shows a bar only when stderr is a terminal.

    ``out`` may be an object-store URL (``s3://bucket/prefix/s1.zarr``): the store is then
    written to a temp prefix and published by
    :func:`lipflow.tasks.contracts.store_publish.publishing` (the marker is written last,
    unless ``mark=False``: the caller writes the clip manifest first and then calls
    :func:`~lipflow.tasks.contracts.store_publish.mark_published`).
    """
    paths = [p if isinstance(p, ClipSource) else Path(p) for p in clip_paths]
    out = location(out)
    encoding = StoreEncoding(codec, compressor_level, frames_per_chunk, clips_per_shard,
                             jpeg_quality, delta)
    group_attrs = group_attributes(attrs, encoding)
    n = len(paths)
    shapes = _shapes_from_first_clip(paths[0]) if paths else _shapes_from_params(group_attrs)

    with store_destination(out, mark) as target:
        arrays = create_arrays(target, group_attrs, shapes, n, encoding)
        with tqdm(total=n, unit="clip", desc=f"store {name_of(out)}",
                  disable=not show_progress(progress)) as bar:
            for start in range(0, n, clips_per_shard):
                batch = paths[start : start + clips_per_shard]
                _write_shard(arrays, shapes, batch, start)
                bar.update(len(batch))
    return out


@dataclass(frozen=True)
class StoreEncoding:
    """How a store's arrays are chunked, sharded and encoded (``features.store`` settings).

    Validated on construction (a :class:`StoreError` for a bad value); ``jpeg_quality``
    is completed with :data:`DEFAULT_JPEG_QUALITY` and ``delta`` with
    :data:`DEFAULT_DELTA`. Shared by :func:`write_store` and the prepare workers that
    encode their clips into store chunks
    (:mod:`lipflow.tasks.contracts.store_chunks`), so both encode alike.
    """

    codec: str = DEFAULT_CODEC
    compressor_level: int = DEFAULT_COMPRESSOR_LEVEL
    frames_per_chunk: int = DEFAULT_FRAMES_PER_CHUNK
    clips_per_shard: int = DEFAULT_CLIPS_PER_SHARD
    jpeg_quality: Mapping[str, int] | None = None
    delta: Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        codec, level, frames = self.codec, self.compressor_level, self.frames_per_chunk
        if self.clips_per_shard < 1:
            raise StoreError(f"clips_per_shard must be >= 1, got {self.clips_per_shard}")
        if codec not in CODECS:
            raise StoreError(f"store codec must be one of {sorted(CODECS)}, got {codec!r}")
        low, high = CODECS[codec]
        if not low <= level <= high:
            raise StoreError(f"{codec} compressor_level must be {low}..{high}, got {level}")
        if frames < 0:
            raise StoreError(f"frames_per_chunk must be >= 0 (0 = whole clip), got {frames}")
        unknown = sorted(set(self.quality) - set(_VIDEO))
        if unknown:
            raise StoreError(f"jpeg_quality has keys {unknown}; only {list(_VIDEO)} are video")
        for key, value in self.quality.items():
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 100:
                raise StoreError(f"jpeg_quality of {key} must be an integer 1..100, got {value!r}")
        unknown = sorted(set(self.delta_settings) - set(DEFAULT_DELTA))
        if unknown:
            raise StoreError(f"delta has keys {unknown}; only {list(DEFAULT_DELTA)}")
        for key, value in self.delta_settings.items():
            low = 1 if key == "step" else 0
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 255:
                raise StoreError(f"delta {key} must be an integer {low}..255, got {value!r}")

    @property
    def quality(self) -> dict[str, int]:
        return {**DEFAULT_JPEG_QUALITY, **(self.jpeg_quality or {})}

    @property
    def delta_settings(self) -> dict[str, int]:
        return {**DEFAULT_DELTA, **(self.delta or {})}

    def record(self) -> dict[str, object]:
        """The group attribute ``encoding`` (:func:`encoding_record`)."""
        return encoding_record(self.codec, self.compressor_level, self.frames_per_chunk,
                               self.clips_per_shard, self.quality, self.delta_settings)


def group_attributes(attrs: Mapping[str, Any], encoding: StoreEncoding) -> dict[str, Any]:
    """The store group's attributes: ``attrs`` plus ``encoding``, as plain JSON."""
    return _json_attrs({**attrs, "encoding": encoding.record()})


def create_arrays(folder: Path | str | Any, group_attrs: Mapping[str, Any],
                  shapes: Mapping[str, tuple[int, ...]], n: int,
                  encoding: StoreEncoding) -> dict[str, zarr.Array]:
    """A new Zarr v3 group at ``folder`` (a path or a zarr store) with the store's arrays
    for ``n`` clips of ``shapes``, no chunk written yet."""
    target = str(folder) if isinstance(folder, Path) else folder
    root = zarr.open_group(target, mode="w", attributes=dict(group_attrs), zarr_format=3)
    return {
        key: root.create_array(
            key,
            shape=(n, *shape),
            chunks=_chunk_shape(key, shape, encoding.frames_per_chunk),
            shards=_shard_shape(key, shape, encoding.clips_per_shard, encoding.frames_per_chunk),
            dtype=ARRAY_DTYPES[key],
            **array_codecs(key, encoding),
            fill_value=0,
        )
        for key, shape in shapes.items()
    }


def array_codecs(key: str, encoding: StoreEncoding) -> dict[str, Any]:
    """``serializer`` / ``compressors`` of one array under ``encoding``."""
    return _codecs(key, encoding.codec, encoding.compressor_level, encoding.quality,
                   encoding.delta_settings)


@contextlib.contextmanager
def store_destination(out: Path | str, mark: bool) -> Iterator[Any]:
    """What ``zarr.open_group`` writes to: a temp folder renamed over ``out`` (local), or an
    fsspec store on a temp prefix published over ``out`` (URL; module docstring)."""
    if is_url(out):
        from zarr.storage import FsspecStore

        with publishing(str(out), mark=mark) as tmp:
            try:
                yield FsspecStore.from_url(tmp, storage_options=storage_options(tmp),
                                           read_only=False)
            except (OSError, PermissionError) as err:
                raise ObjectStoreError(describe_error(str(out), err)) from None
        return
    with atomic_path(Path(out)) as tmp:
        yield str(tmp)


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


def _codecs(key: str, codec: str, level: int, quality: Mapping[str, int],
            delta: Mapping[str, int]) -> dict[str, Any]:
    """``filters`` / ``serializer`` / ``compressors`` of one array under ``codec``."""
    if codec == "delta" and key == "face":
        # bitshuffle packs the mostly-zero bit planes of the deltas; LZ4-HC reads at GB/s
        return {"filters": [FrameDelta(step=delta["step"], slack=delta["slack"])],
                "compressors": BloscCodec(cname="lz4hc", clevel=LZ4HC_LEVEL,
                                          shuffle="bitshuffle", blocksize=BLOSC_BLOCKSIZE)}
    if codec in LOSSY_VIDEO_CODECS and key in _VIDEO:
        # faces keep full-resolution chroma: 4:2:0 costs ~5 dB on 96 px GRID faces
        serializer = JpegFrames(level=quality[key], optimize=True,
                                subsampling="444" if key == "face" else None)
        return {"serializer": serializer, "compressors": None}
    if codec in LOSSY_VIDEO_CODECS:
        # lossless audio and features; zstd with shuffle is ~7% smaller than lz4 here, and
        # bit shuffle ~5% smaller again on wav and ~2% on MFEC (byte shuffle suits the mel)
        shuffle = "bitshuffle" if key in ("wav", "mfec") else "shuffle"
        return {"compressors": BloscCodec(cname="zstd", clevel=level, shuffle=shuffle)}
    return {"compressors": _compressors(codec, level)}


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
    batch: Sequence[Path | ClipSource],
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
