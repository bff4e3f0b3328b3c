"""The raw manifest: one row per source video, the contract between download and prepare.

Columns are documented in ``docs/contracts.md`` (section 1). Rows are validated against
:data:`RAW_SCHEMA` before they are written, and written atomically, so a manifest on disk
is always complete and well-typed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa

from lipflow.tasks.contracts.parquet import ManifestError, read_manifest, write_manifest  # noqa: F401 (re-exported: callers catch it from here)

WORD_TIMING = pa.struct(
    [("word", pa.string()), ("start_s", pa.float64()), ("end_s", pa.float64())]
)

RAW_SCHEMA = pa.schema(
    [
        pa.field("corpus", pa.string(), nullable=False),
        pa.field("speaker", pa.string(), nullable=False),
        pa.field("utterance_id", pa.string(), nullable=False),
        pa.field("language", pa.string(), nullable=False),
        pa.field("split", pa.string()),
        pa.field("video_path", pa.string(), nullable=False),
        pa.field("alignment_path", pa.string()),
        pa.field("transcript", pa.string()),
        pa.field("word_timings", pa.list_(WORD_TIMING)),
        pa.field("video_sha256", pa.string(), nullable=False),
        pa.field("source_url", pa.string(), nullable=False),
    ]
)

RAW_COLUMNS: tuple[str, ...] = tuple(RAW_SCHEMA.names)


def write_raw_manifest(rows: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write a raw manifest (see module docstring)."""
    return write_manifest(rows, path, RAW_SCHEMA)


def read_raw_manifest(path: Path) -> pd.DataFrame:
    """Read a raw manifest, checking that it has the documented columns."""
    return read_manifest(path, RAW_SCHEMA, "raw manifest", "lipflow download")


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks so large videos do not load into memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
