"""Feature store layout: what a per-speaker Zarr store holds, shared by writer and reader.

Layout (``docs/contracts.md`` section 4): arrays ``face``, ``mouth``, ``wav``, ``mel``,
``mfec``, ``valid_frames``, ``valid_samples``, all with first axis N (kept clips). A
chunk holds one clip along N (full extent on the other axes) so a reader decompresses
only the clip it asked for; ``face`` and ``mouth`` clips are further cut along T into
chunks of ``frames_per_chunk`` frames (``features.store.frames_per_chunk``, default 5),
because a training window (Lip2Wav: 25 of 75 frames) would otherwise decode three times
the frames it uses, and decoding is most of a window's cost. Chunks are grouped into
shards of ``clips_per_shard`` clips so that a store is a handful of large files (what DVC
and file systems handle well) rather than one file per clip. Chunks are encoded with
``codec`` (``features.store.codec``; the choice was measured on GRID s1 by
``benchmarks/store_encoding.py``, table in the README's storage section):

- ``delta`` (the default, lossy video): ``face`` chunks are near-lossless (samples on a
  lattice of ``delta_step``, held while within ``delta_slack`` of the previous frame,
  coded as deltas by :mod:`lipflow.tasks.contracts.delta_codec`, zarr filter
  ``lipflow.frame_delta``), then bit-shuffled and LZ4-HC-compressed by zarr's ``blosc``
  codec; ``mouth`` chunks are JPEG as under ``jpeg`` (grey, ``jpeg_mouth_quality``); every
  other array stays lossless, Blosc zstd (bit shuffle for ``wav`` and ``mfec``, byte
  shuffle for the rest) at ``compressor_level``. 0.70 GB per hour of video on GRID s1,
  face 40.65 dB (max error 5) and mouth 46.4 dB PSNR; a face frame decodes in ~25 us
  against ~60 us for a JPEG one, so the loader reads ~3x as fast as Lip2Wav's JPEG
  folders.
- ``jpeg`` (lossy video, the default before ``delta``): each ``face`` / ``mouth`` chunk is
  one JPEG of its frames stacked vertically (:mod:`lipflow.tasks.contracts.jpeg_codec`,
  zarr codec ``imagecodecs_jpeg``), at ``jpeg_face_quality`` (4:4:4 chroma) and
  ``jpeg_mouth_quality`` (grey); the other arrays as under ``delta``. 0.68 GB per hour on
  GRID s1, face 40.5 dB (JPEG at Lip2Wav's settings: 37.9 dB on the same faces); readable
  by imagecodecs' own zarr codec, but read only ~1.3x as fast as the JPEG folders (the
  JPEG decode is most of both).
- ``lz4`` (lossless): Blosc lz4 with byte shuffle on every array. Decodes a 2 MB
  ``face`` clip in ~0.2 ms, which is what lets a loader beat a folder of JPEGs by an
  order of magnitude (``benchmarks/loader.py``); 3.35 GB per hour of video (camera noise
  leaves lossless codecs little to find).
- ``zstd`` (lossless): ~15% smaller than ``lz4`` on faces, ~10x slower to decode.
- ``none``: raw bytes; the largest store, and a window can be read without the rest of
  its clip (:class:`lipflow.tasks.contracts.store_reader.ClipReader` reads just the
  window's frames).

The group attribute ``encoding`` records what was used (:func:`encoding_record`), so a
reader can tell a lossy store from a lossless one without parsing array metadata.

Why the default shard is 64 clips: a GRID clip is 3 s at 25 fps, so ``face`` is
75 x 96 x 96 x 3 = 2.07 MB and ``mouth`` (96 x 96) 0.69 MB uncompressed; all arrays
together are ~3.0 MB per clip. 64 clips make a ``face`` shard of ~133 MB uncompressed
(~126 MB after lz4, ~106 MB after zstd, ~20 MB as JPEG, on real frames), while
assembling a shard needs at most ~133 MB of memory (one array at a time). A 1000-clip
GRID speaker becomes 16 shards per array.

Writing is :mod:`lipflow.tasks.contracts.store_writer`, reading
:mod:`lipflow.tasks.contracts.store_reader`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.contracts import (
    delta_codec,  # noqa: F401 - registers lipflow.frame_delta
    jpeg_codec,  # noqa: F401 - registers imagecodecs_jpeg
)

DEFAULT_CLIPS_PER_SHARD = 64
DEFAULT_CODEC = "delta"
DEFAULT_FRAMES_PER_CHUNK = 5
DEFAULT_COMPRESSOR_LEVEL = 3
#: JPEG quality of the video arrays under ``codec: jpeg`` (``features.store.jpeg_*_quality``;
#: ``mouth`` also under ``delta``).
DEFAULT_JPEG_QUALITY: dict[str, int] = {"face": 92, "mouth": 85}
#: Lattice step and hold threshold of ``face`` under ``codec: delta``
#: (``features.store.delta_step`` / ``delta_slack``).
DEFAULT_DELTA: dict[str, int] = {"step": delta_codec.DEFAULT_STEP,
                                 "slack": delta_codec.DEFAULT_SLACK}
#: ``features.store.codec`` values and the ``compressor_level`` range each accepts (for
#: ``delta`` and ``jpeg``, the level of the Blosc zstd that compresses the arrays other
#: than video).
CODECS: dict[str, tuple[int, int]] = {"delta": (1, 9), "jpeg": (1, 9), "lz4": (1, 9),
                                      "zstd": (1, 22), "none": (0, 22)}
#: Codecs that encode the video arrays lossily (the rest of the store stays lossless).
LOSSY_VIDEO_CODECS = ("delta", "jpeg")
#: Codecs that keep every array bit-exact.
LOSSLESS_CODECS = ("lz4", "zstd", "none")
VIDEO_ARRAYS = ("face", "mouth")

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


class StoreError(LipflowError):
    """A per-clip file cannot go into a store, or a store is missing or malformed."""


def encoding_record(codec: str, compressor_level: int, frames_per_chunk: int,
                    clips_per_shard: int, jpeg_quality: dict[str, int],
                    delta: dict[str, int] | None = None) -> dict[str, object]:
    """The group attribute ``encoding``: how the arrays were encoded, in plain JSON."""
    record: dict[str, object] = {
        "codec": codec,
        "lossless": codec in LOSSLESS_CODECS,
        "compressor_level": compressor_level,
        "frames_per_chunk": frames_per_chunk,
        "clips_per_shard": clips_per_shard,
    }
    if codec == "jpeg":
        record["jpeg_quality"] = {key: int(jpeg_quality[key]) for key in VIDEO_ARRAYS}
    if codec == "delta":
        settings = {**DEFAULT_DELTA, **(delta or {})}
        record["delta"] = {"array": "face", "filter": delta_codec.NAME,
                           "step": int(settings["step"]), "slack": int(settings["slack"]),
                           "compressor": f"blosc lz4hc {delta_codec.LZ4HC_LEVEL} bitshuffle, "
                                         "one block"}
        record["jpeg_quality"] = {"mouth": int(jpeg_quality["mouth"])}
    return record


def manifest_path_for(store: Path | str) -> Path | str:
    """The clip manifest beside a store: ``<stem>.parquet`` next to ``<stem>.zarr`` (a URL
    for a store at a URL)."""
    from lipflow.tasks.common.object_store import is_url, name_of, with_name

    if is_url(store):
        name = name_of(store)
        return with_name(store, (name[:-5] if name.endswith(".zarr") else name) + ".parquet")
    store = Path(store)
    return store.with_name(store.stem + ".parquet")

