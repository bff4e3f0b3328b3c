"""Parquet files of the data contracts: validated on write, checked on read, one way.

The raw manifest, the clip manifest and the sync-score file are all Parquet tables with a
documented Arrow schema (docs/contracts.md). They are written through
:func:`write_manifest` (rows validated against the schema, then a temp file and a rename)
and read through :func:`read_manifest` (missing file or missing columns are one clear
error naming the command that makes the file).
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq

from lipflow.tasks.common.atomic import atomic_path
from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.common.object_store import (
    ObjectStoreError,
    describe_error,
    filesystem,
    is_url,
)

if TYPE_CHECKING:  # pandas costs ~0.3 s to import: only readers pay it (to_pandas)
    import pandas as pd


class ManifestError(LipflowError):
    """A manifest row is missing a required value or has the wrong type."""


def validate_rows(rows: Iterable[Mapping[str, Any]], schema: pa.Schema) -> pa.Table:
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


def write_manifest(rows: Iterable[Mapping[str, Any]], path: Path | str,
                   schema: pa.Schema) -> Path | str:
    """Validate and write rows as Parquet at ``path`` through a temp file (at a URL: one PUT
    of the whole file, which an object store makes visible at once or not at all)."""
    table = validate_rows(rows, schema)
    if is_url(path):
        buffer = io.BytesIO()
        pq.write_table(table, buffer)
        fs, key = filesystem(str(path))
        try:
            fs.pipe_file(key, buffer.getvalue())
        except Exception as err:  # noqa: BLE001 - botocore raises many kinds; one line each
            raise ObjectStoreError(describe_error(str(path), err)) from None
        return path
    with atomic_path(Path(path)) as tmp:
        pq.write_table(table, tmp)
    return Path(path)


def read_manifest(path: Path | str, schema: pa.Schema, kind: str, made_by: str) -> pd.DataFrame:
    """Read a ``kind`` file at ``path`` that must hold ``schema``'s columns.

    ``made_by`` is the command that writes it, named in the error when the file is absent.
    """
    if is_url(path):
        fs, key = filesystem(str(path))
        try:
            data = fs.cat_file(key)
        except FileNotFoundError:
            raise ManifestError(f"no {kind} at {path}; run `{made_by}` first") from None
        except Exception as err:  # noqa: BLE001 - botocore raises many kinds; one line each
            raise ObjectStoreError(describe_error(str(path), err)) from None
        table = pq.read_table(io.BytesIO(data))
    else:
        path = Path(path)
        if not path.is_file():
            raise ManifestError(f"no {kind} at {path}; run `{made_by}` first")
        table = pq.read_table(path)
    missing = [c for c in schema.names if c not in table.column_names]
    if missing:
        raise ManifestError(f"{path} is not a {kind}: missing columns {missing}")
    return table.to_pandas()
