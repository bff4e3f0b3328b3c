"""The sync-score file: where it goes by default, its schema, and the filter built on it.

Scoring itself runs in tests/test_dvc_pipeline.py (it needs a trained avsync model).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lipflow.models.sync_scores import (
    SYNC_SCHEMA,
    in_sync,
    read_sync_scores,
    sync_scores_path,
)
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.contracts.parquet import ManifestError, write_manifest

PARAMS = {"grid": {"features_root": "data/features/grid"},
          "lip2wav": {"features_root": "elsewhere/l2w"}}


@pytest.fixture
def root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("LIPFLOW_ROOT", str(tmp_path))
    return tmp_path


def test_default_path_takes_the_corpus_from_params(root: Path) -> None:
    assert sync_scores_path(PARAMS, root / "data/features/grid/s1.zarr") == (
        root / "data/sync/grid/s1.parquet")
    assert sync_scores_path(PARAMS, root / "elsewhere/l2w/chem.zarr") == (
        root / "data/sync/lip2wav/chem.parquet")
    assert sync_scores_path(PARAMS, root / "data/features/mine/anna.zarr") == (
        root / "data/sync/mine/anna.parquet")  # a user corpus without a section


def test_a_store_outside_every_corpus_needs_out(root: Path) -> None:
    with pytest.raises(ConfigError, match="pass --out"):
        sync_scores_path(PARAMS, root / "tmp/s1.zarr")


def test_in_sync_keeps_clips_within_the_offset(tmp_path: Path) -> None:
    path = write_manifest([
        {"clip_id": "s1/a/0", "store_index": 0, "sync_score": 2.0, "sync_offset_frames": 0},
        {"clip_id": "s1/b/0", "store_index": 1, "sync_score": 1.5, "sync_offset_frames": -1},
        {"clip_id": "s1/c/0", "store_index": 2, "sync_score": 0.2, "sync_offset_frames": 7},
    ], tmp_path / "s1.parquet", SYNC_SCHEMA)
    manifest = pd.DataFrame({"clip_id": ["s1/a/0", "s1/b/0", "s1/c/0", "s2/x/0"]})
    assert list(in_sync([path], max_offset_frames=1)(manifest)) == [True, True, False, False]
    assert list(read_sync_scores(path).columns) == list(SYNC_SCHEMA.names)


def test_reading_a_missing_or_foreign_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(ManifestError, match="run `lipflow sync-score` first"):
        read_sync_scores(tmp_path / "none.parquet")
    pd.DataFrame({"clip_id": ["x"]}).to_parquet(tmp_path / "other.parquet")
    with pytest.raises(ManifestError, match="missing columns"):
        read_sync_scores(tmp_path / "other.parquet")
