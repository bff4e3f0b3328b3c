"""Clips encoded as store chunks by the workers; shards assembled from them without decoding.

Why: the prepare workers used to hand their clips to the driver in an intermediate
format (a compressed ``.npy`` record), and the driver decoded every clip again and
encoded it into the store: ~13 ms to encode and ~9 ms to decode a GRID clip on top of the
store's own encoding, all of it in the one driver process while the workers sat idle. A
store chunk is one clip along N (``store_layout``), so a chunk's bytes depend only on
its clip: a worker can encode its clips into the store's final chunk encoding
(:class:`ClipChunkEncoder`, the JPEG / Blosc work done in parallel) and the driver only
concatenates those bytes into shard files and writes each shard's index
(:func:`write_store_from_chunks`): no pixel is decoded or re-encoded on the way.

Byte-identity with :func:`lipflow.tasks.contracts.store_writer.write_store`: the chunks
are encoded by zarr's own codec pipeline for the store array's chunk shape and codecs
(a chunk that holds only the fill value is left out, as zarr leaves it out of a shard,
and a chunk past the end of a clip is padded with the fill value, as zarr pads it), and
a shard is laid out by zarr's own sharding codec (chunks in Morton
order, then the index with its CRC32C). ``tests/test_store_chunks.py`` compares the two
file by file, for every codec, a partial last shard and a clip length that is not a
multiple of ``frames_per_chunk``. Both steps call zarr internals (the sharding codec's
``_encode_shard_dict``, an array's ``codec_pipeline``) rather than re-implement them; zarr
is pinned in ``requirements.lock``, and that test fails on a release that changes them.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import zarr
from tqdm import tqdm
from zarr.core.buffer import default_buffer_prototype
from zarr.core.sync import sync
from zarr.storage import MemoryStore

from lipflow.tasks.common.object_store import location, name_of
from lipflow.tasks.common.progress import show_progress
from lipflow.tasks.contracts.store_layout import ARRAY_DTYPES, StoreError
from lipflow.tasks.contracts.store_writer import (
    StoreEncoding,
    _checked,
    _chunk_shape,
    _shapes_from_params,
    array_codecs,
    create_arrays,
    group_attributes,
    store_destination,
)


@dataclass(frozen=True)
class EncodedArray:
    """One array of one clip as store chunks: its per-clip ``shape`` and, in order along
    T (one entry for the arrays not cut along T), each chunk's bytes or ``None`` for a
    chunk zarr would not write (all fill value)."""

    shape: tuple[int, ...]
    chunks: tuple[bytes | None, ...]


#: One clip as store chunks, by array name (every key of :data:`ARRAY_DTYPES`).
EncodedClip = Mapping[str, EncodedArray]
#: Opens one clip's chunks (e.g. from a batch result) when its shard is assembled.
ChunkSource = Callable[[], EncodedClip]


class ClipChunkEncoder:
    """Encodes clips into the chunks of a store with ``encoding`` (one per worker/batch).

    Per array name and shape it keeps a single-clip zarr array (in memory, never written)
    for its chunk spec and codec pipeline, and encodes all of a clip's chunks of that
    array in one pipeline call: a chunk past the clip's end is padded with the fill
    value and a chunk holding only the fill value is left out, as zarr's own write does
    (``write_empty_chunks`` off). Going through ``Array.__setitem__`` instead cost
    ~14 ms a GRID clip in zarr's indexing and event-loop hops, as much as the JPEG work.
    """

    def __init__(self, encoding: StoreEncoding) -> None:
        self.encoding = encoding
        self._arrays: dict[tuple[str, tuple[int, ...]], tuple[Any, Any, Any]] = {}

    def _pipeline(self, key: str, shape: tuple[int, ...]) -> tuple[Any, Any, Any]:
        """(zarr codec pipeline, chunk spec, direct encoder or None) of one array."""
        found = self._arrays.get((key, shape))
        if found is None:
            array = zarr.create_array(
                MemoryStore({}), shape=(1, *shape),
                chunks=_chunk_shape(key, shape, self.encoding.frames_per_chunk),
                dtype=ARRAY_DTYPES[key], fill_value=0, zarr_format=3,
                **array_codecs(key, self.encoding))._async_array
            spec = array.metadata.get_chunk_spec((0,) * array.ndim, array.config,
                                                 default_buffer_prototype())
            found = self._arrays[(key, shape)] = (array.codec_pipeline, spec,
                                                  _direct_encoder(array.metadata.codecs))
        return found

    def encode(self, arrays: Mapping[str, Any], name: str = "clip") -> dict[str, EncodedArray]:
        """``arrays`` (one clip, contract section 2) as store chunks; ``name`` for errors."""
        missing = sorted(set(ARRAY_DTYPES) - set(arrays))
        if missing:
            raise StoreError(f"clip {name} has no {missing} array(s) (has {sorted(arrays)})")
        out = {}
        for key in ARRAY_DTYPES:
            value = np.asarray(arrays[key])
            value = _checked(value, key, value.shape, Path(name))
            pipeline, spec, direct = self._pipeline(key, value.shape)
            chunks = [None if not chunk.any() else chunk
                      for chunk in _split(value[None], spec.shape)]
            if direct is not None:
                out[key] = EncodedArray(value.shape, tuple(
                    None if c is None else direct(c) for c in chunks))
                continue
            buffers = iter(sync(pipeline.encode(
                [(spec.prototype.nd_buffer.from_numpy_array(c), spec)
                 for c in chunks if c is not None])))
            out[key] = EncodedArray(value.shape, tuple(
                None if c is None else next(buffers).to_bytes() for c in chunks))
        return out


def _direct_encoder(codecs: Sequence[Any]) -> Callable[[np.ndarray], bytes] | None:
    """For the ``delta`` face chain (``lipflow.frame_delta``, ``bytes``, ``blosc``), the same
    bytes as zarr's pipeline without its per-chunk thread and buffer hops (~100 us a
    frame, as much as the filter itself); None for every other chain."""
    from zarr.codecs import BloscCodec, BytesCodec

    from lipflow.tasks.contracts.delta_codec import FrameDelta, encode_frames

    if (len(codecs) != 3 or not isinstance(codecs[0], FrameDelta)
            or not isinstance(codecs[1], BytesCodec) or not isinstance(codecs[2], BloscCodec)):
        return None
    step, slack = codecs[0].step, codecs[0].slack
    blosc = codecs[2]._blosc_codec  # the numcodecs object zarr's codec calls

    def encode(chunk: np.ndarray) -> bytes:
        return bytes(blosc.encode(encode_frames(chunk[0], step, slack)))

    return encode


def _split(value: np.ndarray, chunk: tuple[int, ...]) -> Iterator[np.ndarray]:
    """``value``'s chunks of shape ``chunk`` in C order, the last ones padded with zeros."""
    grid = [-(-s // c) for s, c in zip(value.shape, chunk, strict=True)]
    for coords in np.ndindex(*grid):
        region = tuple(slice(i * c, (i + 1) * c) for i, c in zip(coords, chunk, strict=True))
        part = value[region]
        if part.shape != chunk:
            padded = np.zeros(chunk, dtype=value.dtype)
            padded[tuple(slice(0, s) for s in part.shape)] = part
            part = padded
        yield np.ascontiguousarray(part)


def check_shapes(clips: Sequence[EncodedClip], shapes: Mapping[str, Sequence[int]],
                 first_index: int) -> None:
    """Every clip of ``clips`` (store clips ``first_index``, ...) has the store's shapes;
    else a :class:`StoreError` naming the clip and array."""
    for offset, clip in enumerate(clips):
        for key, want in shapes.items():
            if tuple(clip[key].shape) != tuple(want):
                raise StoreError(
                    f"clip {first_index + offset} of the store: '{key}' has shape "
                    f"{clip[key].shape}, but the store's clips have {tuple(want)} "
                    "(taken from the first clip); all clips of a store must match")


def _chunk_coords(shape: tuple[int, ...], index: int, t: int) -> tuple[int, ...]:
    """Inner-chunk coordinates within a shard of clip ``index``'s ``t``-th chunk."""
    return (index, *((t,) if shape else ()), *((0,) * max(0, len(shape) - 1)))


def write_store_from_chunks(
    clips: Sequence[ChunkSource],
    out: Path | str,
    *,
    attrs: Mapping[str, Any],
    encoding: StoreEncoding,
    shapes: Mapping[str, tuple[int, ...]] | None = None,
    progress: bool | None = None,
    mark: bool = True,
) -> Path | str:
    """Assemble a store at ``out`` from clips already encoded as chunks (module docstring).

    Clip ``i`` of the store is ``clips[i]()``. Per-clip shapes come from the first clip
    (or ``shapes`` for an empty store); a clip whose shapes differ raises
    :class:`StoreError` and ``out`` is left as it was. The result is byte-identical to
    :func:`~lipflow.tasks.contracts.store_writer.write_store` of the same clips. ``out``
    may be an object-store URL, published as ``write_store`` publishes (``mark``).
    """
    out = location(out)
    group_attrs = group_attributes(attrs, encoding)
    n = len(clips)
    per_shard = encoding.clips_per_shard
    with store_destination(out, mark) as tmp:
        first = clips[0]() if clips else None
        if first is not None:
            shapes = {key: first[key].shape for key in ARRAY_DTYPES}
        elif shapes is None:
            shapes = _shapes_from_params(group_attrs)
        arrays = create_arrays(tmp, group_attrs, shapes, n, encoding)
        with tqdm(total=n, unit="clip", desc=f"store {name_of(out)}",
                  disable=not show_progress(progress)) as bar:
            for start in range(0, n, per_shard):
                block = [first if i == 0 and first is not None else clips[i]()
                         for i in range(start, min(n, start + per_shard))]
                check_shapes(block, shapes, start)
                for key, array in arrays.items():
                    _write_shard(array, [clip[key] for clip in block], start // per_shard)
                bar.update(len(block))
    return out


def _write_shard(array: zarr.Array, clips: Sequence[EncodedArray], shard: int) -> None:
    """Concatenate ``clips``' chunk bytes into shard number ``shard`` of ``array`` (with
    zarr's sharding codec, so chunk order and index are zarr's own)."""
    encoded = encode_shard(array, clips, shard)
    if encoded is not None:
        key, data = encoded
        sync((array.store_path / key).set(default_buffer_prototype().buffer.from_bytes(data)))


def encode_shard(array: zarr.Array, clips: Sequence[EncodedArray],
                 shard: int) -> tuple[str, bytes] | None:
    """Shard number ``shard`` of ``array`` made of ``clips``' chunk bytes: its key inside
    the array (``c/3/0/0/0``) and its bytes, or None when every chunk is the fill value
    (zarr writes no shard file then). Only the array's metadata is read, so a template
    array of any length gives the same bytes (:class:`ShardTemplates`)."""
    sharding = array.metadata.codecs[0]
    shard_shape = array.metadata.chunk_grid.chunk_shape
    per_shard = tuple(s // c for s, c in zip(shard_shape, sharding.chunk_shape, strict=True))
    prototype = default_buffer_prototype()
    chunks = {}
    for index, clip in enumerate(clips):
        for t, data in enumerate(clip.chunks):
            if data is not None:
                chunks[_chunk_coords(clip.shape, index, t)] = prototype.buffer.from_bytes(data)
    encoded = sync(sharding._encode_shard_dict(chunks, chunks_per_shard=per_shard,
                                               buffer_prototype=prototype))
    if encoded is None:  # every chunk is fill value: zarr writes no shard file
        return None
    key = array.metadata.encode_chunk_key((shard, *((0,) * (len(shard_shape) - 1))))
    return key, encoded.to_bytes()


class ShardTemplates:
    """In-memory arrays with a store's metadata (codecs, chunk and shard shapes) for
    :func:`encode_shard`, for shards made before the store's length is known."""

    def __init__(self, encoding: StoreEncoding, shapes: Mapping[str, tuple[int, ...]],
                 attrs: Mapping[str, Any]) -> None:
        self.arrays = create_arrays(MemoryStore({}), group_attributes(attrs, encoding),
                                    {k: tuple(v) for k, v in shapes.items()},
                                    encoding.clips_per_shard, encoding)

    def encode(self, clips: Sequence[EncodedClip], shard: int) -> dict[str, tuple[str, bytes]]:
        """Every array's shard ``shard`` of ``clips`` (arrays with only fill values left out)."""
        out = {}
        for key, array in self.arrays.items():
            encoded = encode_shard(array, [clip[key] for clip in clips], shard)
            if encoded is not None:
                out[key] = encoded
        return out


def write_store_from_shards(
    shard_files: Mapping[tuple[str, str], Path],
    n: int,
    out: Path | str,
    *,
    attrs: Mapping[str, Any],
    encoding: StoreEncoding,
    shapes: Mapping[str, tuple[int, ...]] | None,
    mark: bool = True,
) -> Path | str:
    """A store of ``n`` clips at ``out`` from shard files made earlier (by
    :class:`ShardTemplates`): ``shard_files[(array, key)]`` is the file of that array's
    shard ``key``. Local files are moved into the store (a rename, no copy); at a URL they
    are uploaded. Byte-identical to :func:`write_store_from_chunks` of the same clips."""
    out = location(out)
    group_attrs = group_attributes(attrs, encoding)
    if shapes is None:
        shapes = _shapes_from_params(group_attrs)
    with store_destination(out, mark) as tmp:
        arrays = create_arrays(tmp, group_attrs, {k: tuple(v) for k, v in shapes.items()}, n,
                               encoding)
        for (key, chunk_key), path in shard_files.items():
            if isinstance(tmp, str):  # a local folder: move the file in
                target = Path(tmp) / key / chunk_key
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, target)
            else:
                data = default_buffer_prototype().buffer.from_bytes(Path(path).read_bytes())
                sync((arrays[key].store_path / chunk_key).set(data))
    return out
