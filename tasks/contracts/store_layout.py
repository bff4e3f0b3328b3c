"""Feature store layout: what a per-speaker Zarr store holds, shared by writer and reader.

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
  its clip (:class:`lipflow.tasks.contracts.store_reader.ClipReader` reads just the
  window's frames).

Why the default shard is 64 clips: a GRID clip is 3 s at 25 fps, so ``face`` is
75 x 96 x 96 x 3 = 2.07 MB and ``mouth`` (96 x 96) 0.69 MB uncompressed; all arrays
together are ~3.0 MB per clip. 64 clips make a ``face`` shard of ~133 MB uncompressed
(~126 MB after lz4, ~106 MB after zstd, on real frames), inside the 100 MB-1 GB aim,
while assembling a shard needs at most ~133 MB of memory (one array at a time). A
1000-clip GRID speaker becomes 16 shards per array.

Writing is :mod:`lipflow.tasks.contracts.store_writer`, reading
:mod:`lipflow.tasks.contracts.store_reader`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from lipflow.tasks.common.errors import LipflowError

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


class StoreError(LipflowError):
    """A per-clip file cannot go into a store, or a store is missing or malformed."""


def manifest_path_for(store: Path) -> Path:
    """The clip manifest beside a store: ``<stem>.parquet`` next to ``<stem>.zarr``."""
    store = Path(store)
    return store.with_name(store.stem + ".parquet")

