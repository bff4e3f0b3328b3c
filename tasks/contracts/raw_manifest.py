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
import pyarrow.parquet as pq

from lipflow.tasks.common.atomic import atomic_path
from lipflow.tasks.common.errors import LipflowError

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


class ManifestError(LipflowError):
    """A manifest row is missing a required value or has the wrong type."""


def validate_rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema = RAW_SCHEMA) -> pa.Table:
    """Return rows as a typed Arrow table, or raise :class:`ManifestError` naming the row."""
    rows = list(rows)
    for i, row in enumerate(rows):
        extra = set(row) - set(schema.names)
        if extra:
            raise ManifestError(f"manifest row {i} has unknown columns {sorted(extra)}")
        for field in schema:
            if not field.nullable and row.get(field.name) in (None, ""):
                raise ManifestError(f"manifest row {i} has no value for '{field.name}'")
    try:
        return pa.Table.from_pylist([dict(r) for r in rows], schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError) as err:
        raise ManifestError(f"manifest rows do not match the schema: {err}") from err


def write_manifest(rows: Iterable[Mapping[str, Any]], path: Path, schema: pa.Schema) -> Path:
    """Validate and write rows as Parquet at ``path`` through a temp file."""
    table = validate_rows(rows, schema)
    with atomic_path(Path(path)) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def write_raw_manifest(rows: Iterable[Mapping[str, Any]], path: Path) -> Path:
    """Write a raw manifest (see module docstring)."""
    return write_manifest(rows, path, RAW_SCHEMA)


def read_raw_manifest(path: Path) -> pd.DataFrame:
    """Read a raw manifest, checking that it has the documented columns."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(f"no raw manifest at {path}; run `lipflow download` first")
    table = pq.read_table(path)
    missing = [c for c in RAW_COLUMNS if c not in table.column_names]
    if missing:
        raise ManifestError(f"{path} is not a raw manifest: missing columns {missing}")
    return table.to_pandas()


def file_sha256(path: Path, chunk_bytes: int = 1 << 20) -> str:
    """sha256 of a file, read in chunks so large videos do not load into memory."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
