"""Registering videos already on disk as a local corpus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.common.executables import ffmpeg_exe
from lipflow.tasks.contracts.raw_manifest import RAW_SCHEMA, file_sha256, read_raw_manifest
from lipflow.tasks.corpora.local import register_local, rejected_path
from tests.support import mp4_server as support
from tests.support.mp4_server import GRID_CLIP, ID_25FPS

mp4_fixtures = support.mp4_fixtures  # pytest fixture (faststart mp4s from the GRID sample)


@pytest.fixture
def src_dir(mp4_fixtures: Path, tmp_path: Path) -> Path:
    """Two real videos (mp4, mpg in a sub-folder) and three files that are not usable videos."""
    src = tmp_path / "my videos"
    (src / "day2").mkdir(parents=True)
    shutil.copy(mp4_fixtures / f"{ID_25FPS}.mp4", src / "take1.mp4")
    shutil.copy(GRID_CLIP, src / "day2" / "take2.MPG")
    (src / "broken.mp4").write_text("this is not a video\n", encoding="utf-8")
    (src / "notes.txt").write_text("recorded in Berlin\n", encoding="utf-8")
    (src / ".DS_Store").write_bytes(b"\0\0")
    subprocess.run(
        [ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-i", str(GRID_CLIP), "-vn",
         "-c:a", "aac", "-t", "0.5", str(src / "voice_only.mp4")],
        check=True,
    )  # fmt: skip
    return src


def test_register_local_writes_manifest_and_rejections(src_dir: Path, tmp_path: Path):
    root = tmp_path / "raw"
    manifest = register_local(src_dir, "anna", "de", root, corpus="interviews")
    assert manifest == root / "manifests" / "anna.parquet"
    assert pq.read_schema(manifest).equals(RAW_SCHEMA, check_metadata=False)

    table = read_raw_manifest(manifest)
    assert list(table["utterance_id"]) == ["take1", "take2"]
    assert list(table["video_path"]) == ["anna/take1.mp4", "anna/take2.mpg"]
    assert set(table["language"]) == {"de"} and set(table["corpus"]) == {"interviews"}
    assert set(table["speaker"]) == {"anna"} and table["split"].isna().all()
    originals = {"take1": src_dir / "take1.mp4", "take2": src_dir / "day2" / "take2.MPG"}
    for row in table.itertuples():
        placed = root / row.video_path
        assert row.video_sha256 == file_sha256(placed) == file_sha256(originals[row.utterance_id])
        assert row.source_url == originals[row.utterance_id].absolute().as_uri()
        assert os.path.samefile(placed, originals[row.utterance_id])  # hard link, same fs

    rejected = json.loads(rejected_path(root, "anna").read_text(encoding="utf-8"))
    reasons = {Path(r["path"]).name: r["reason"] for r in rejected}
    assert set(reasons) == {"broken.mp4", "notes.txt", "voice_only.mp4"}
    assert reasons["broken.mp4"].startswith("not a readable video")
    assert reasons["voice_only.mp4"] == "no video stream"
    assert "'.txt'" in reasons["notes.txt"]
    assert not (root / "anna" / "broken.mp4").exists()


def test_registering_more_keeps_earlier_rows(src_dir: Path, mp4_fixtures: Path, tmp_path: Path):
    root = tmp_path / "raw"
    register_local(src_dir, "anna", "de", root)
    more = tmp_path / "more"
    more.mkdir()
    shutil.copy(mp4_fixtures / f"{ID_25FPS}.mp4", more / "take3.mov")
    table = read_raw_manifest(register_local(more, "anna", "de", root))
    assert list(table["utterance_id"]) == ["take1", "take2", "take3"]
    assert json.loads(rejected_path(root, "anna").read_text()) == []


def test_duplicate_stem_is_rejected(src_dir: Path, tmp_path: Path):
    shutil.copy(src_dir / "take1.mp4", src_dir / "day2" / "take1.mkv")
    root = tmp_path / "raw"
    table = read_raw_manifest(register_local(src_dir, "anna", "de", root))
    assert list(table["utterance_id"]) == ["take1", "take2"]
    rejected = json.loads(rejected_path(root, "anna").read_text())
    assert any("same utterance id" in r["reason"] for r in rejected)


def test_folder_without_videos_is_a_config_error(tmp_path: Path):
    src = tmp_path / "empty"
    src.mkdir()
    (src / "fake.webm").write_bytes(b"\x1aE\xdf\xa3 not really")
    with pytest.raises(ConfigError, match="no usable video") as err:
        register_local(src, "anna", "de", tmp_path / "raw")
    assert "anna.rejected.json" in str(err.value)
    assert not (tmp_path / "raw" / "manifests" / "anna.parquet").exists()


@pytest.mark.parametrize(
    ("speaker", "language"), [("../escape", "de"), ("anna", "Deutsch"), ("", "de")]
)
def test_bad_names_are_config_errors(tmp_path: Path, speaker: str, language: str):
    with pytest.raises(ConfigError):
        register_local(tmp_path, speaker, language, tmp_path / "raw")


def test_missing_source_folder_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="not a folder"):
        register_local(tmp_path / "nowhere", "anna", "de", tmp_path / "raw")
