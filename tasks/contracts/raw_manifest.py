"""The raw manifest: one row per source video, the contract between download and prepare.

Columns are documented in ``docs/contracts.md`` (section 1). Rows are validated against
:data:`RAW_SCHEMA` before they are written, and written atomically, so a manifest on disk
is always complete and well-typed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lipflow.tasks.contracts.parquet import ManifestError, read_manifest, write_manifest  # noqa: F401 (re-exported: callers catch it from here)

if TYPE_CHECKING:  # pandas costs ~0.3 s to import: only readers pay it (to_pandas)
    import pandas as pd

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


def read_raw_columns(path: Path, columns: Sequence[str]) -> dict[str, list[Any]]:
    """Some columns of a local raw manifest as lists, without pandas.

    Why not :func:`read_raw_manifest`: ``pq.read_table`` goes through ``pyarrow.dataset``,
    which imports pandas (~0.3 s), and a download that finds everything in place (every
    ``dvc repro`` of a download stage) only needs three columns to say so. A file that
    is not a raw manifest (missing columns, not Parquet) raises ``ManifestError``."""
    try:
        parquet = pq.ParquetFile(path)
        missing = [c for c in columns if c not in parquet.schema_arrow.names]
        if missing:
            raise ManifestError(f"{path} is not a raw manifest: missing columns {missing}")
        return parquet.read(columns=list(columns)).to_pydict()
    except (pa.ArrowException, OSError) as err:
        raise ManifestError(f"cannot read raw manifest {path}: {err}") from None


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks so large videos do not load into memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
