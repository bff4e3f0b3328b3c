"""The clip manifest: one row per clip (kept or rejected), the index into a feature store.

Columns are documented in ``docs/contracts.md`` (section 3). Row order matters: the kept
rows, read top to bottom, are clips ``0..N-1`` of the Zarr store beside the manifest
(``store_index``), so a reader can join a store row to its metadata without a lookup
table. Rejected clips and files stay in the manifest (``kept = false``, a
``reject_reason``, ``store_index = -1``) so a dataset can be audited for what it lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from lipflow.tasks.common.object_store import is_url
from lipflow.tasks.contracts.parquet import ManifestError, read_manifest, write_manifest
from lipflow.tasks.contracts.raw_manifest import WORD_TIMING

CLIP_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("corpus", pa.string(), nullable=False),
        pa.field("speaker", pa.string(), nullable=False),
        pa.field("utterance_id", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("source_path", pa.string(), nullable=False),
        pa.field("start_s", pa.float64()),
        pa.field("end_s", pa.float64()),
        pa.field("fps", pa.float64()),
        pa.field("num_frames", pa.int64()),
        pa.field("num_samples", pa.int64()),
        pa.field("valid_frames", pa.int64()),
        pa.field("valid_samples", pa.int64()),
        pa.field("detection_rate", pa.float64()),
        pa.field("mean_face_px", pa.float64()),
        pa.field("keypoint_jitter", pa.float64()),
        pa.field("mouth_occluded_frac", pa.float64()),
        pa.field("duplicate_frame_frac", pa.float64()),
        pa.field("av_offset_frames", pa.int64()),
        pa.field("av_sync_confidence", pa.float64()),
        pa.field("transcript", pa.string()),
        pa.field("word_timings", pa.list_(WORD_TIMING)),
        pa.field("kept", pa.bool_(), nullable=False),
        pa.field("reject_reason", pa.string()),
        pa.field("store_index", pa.int64(), nullable=False),
        pa.field("sync_score", pa.float64()),
        pa.field("sync_offset_frames", pa.int64()),
    ]
)

CLIP_COLUMNS: tuple[str, ...] = tuple(CLIP_SCHEMA.names)


def check_store_order(rows: Iterable[Mapping[str, Any]]) -> None:
    """Raise :class:`ManifestError` unless kept rows are numbered 0, 1, 2... in row order.

    Why: the store has no clip ids of its own; the manifest's row order *is* the index.
    A kept row out of order (or a rejected row with an index) would silently pair a clip's
    frames with another clip's metadata.
    """
    expected = 0
    for i, row in enumerate(rows):
        index = row.get("store_index")
        if row.get("kept"):
            if index != expected:
                raise ManifestError(
                    f"clip manifest row {i} ({row.get('clip_id')}) is kept with "
                    f"store_index {index}; expected {expected} (kept rows number the store)"
                )
            expected += 1
        elif index != -1:
            raise ManifestError(
                f"clip manifest row {i} ({row.get('clip_id')}) is rejected but has "
                f"store_index {index}; rejected rows must have -1"
            )


def write_clip_manifest(rows: Iterable[Mapping[str, Any]], path: Path | str) -> Path | str:
    """Validate (schema and store order) and write a clip manifest atomically (a local path
    or an object-store URL)."""
    rows = list(rows)
    check_store_order(rows)
    return write_manifest(rows, path if is_url(path) else Path(path), CLIP_SCHEMA)


def read_clip_manifest(path: Path | str) -> pd.DataFrame:
    """Read a clip manifest, checking that it has the documented columns."""
    return read_manifest(path, CLIP_SCHEMA, "clip manifest", "lipflow prepare")
