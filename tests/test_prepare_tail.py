"""A video's last window shorter than ``min_clip_seconds`` gets a manifest row with its reason."""

from __future__ import annotations

from pathlib import Path

from lipflow.tasks.contracts.clip_manifest import read_clip_manifest, write_clip_manifest
from lipflow.tasks.prepare.settings import speaker_settings
from lipflow.tasks.prepare.summary import summarise
from lipflow.tasks.prepare.video import SHORT_TAIL, order_rows, preprocess_video
from lipflow.tasks.settings.project import load_params
from tests.conftest import SAMPLE_GRID
from tests.support.synthetic_media import run_ffmpeg


def _record(name: str) -> dict:
    return {"corpus": "local", "speaker": "anna", "utterance_id": name, "language": "en",
            "split": None, "video_path": f"anna/{name}.mp4", "word_timings": None}


def test_short_tail_gets_a_rejected_row_that_the_manifest_and_summary_count(tmp_path: Path):
    raw = tmp_path / "raw"
    (raw / "anna").mkdir(parents=True)
    # 3.48 s: one 3-s clip and a 0.48-s tail (12 frames at 25 fps)
    run_ffmpeg(["-stream_loop", "1", "-i", str(SAMPLE_GRID / "s1/bbaf2n.mpg"), "-t", "3.48",
                "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac",
                str(raw / "anna" / "long.mp4")])
    settings, _ = speaker_settings(load_params(), "local", "anna")
    assert settings.fps == 25.0  # user_corpus.fps, no --fps needed
    rows = preprocess_video(_record("long"), raw, tmp_path / "work", settings)
    assert [r["kept"] for r in rows] == [True, False]
    tail = rows[1]
    assert tail["clip_id"] == "anna/long/75"
    assert tail["reject_reason"] == (f"{SHORT_TAIL} 1 s (0.48 s from frame 75, 3.00 s)")
    assert (tail["start_s"], tail["end_s"]) == (3.0, 3.48)
    assert (tail["num_frames"], tail["valid_frames"]) == (75, 12)
    assert tail["num_samples"] == 48000 and 0 < tail["valid_samples"] <= 48000

    ordered = order_rows(rows)
    for row in ordered:
        row.pop("clip_path", None)
    manifest = write_clip_manifest(ordered, tmp_path / "anna.parquet")  # the contract holds
    assert read_clip_manifest(manifest)["reject_reason"].iloc[1].startswith(SHORT_TAIL)
    line = summarise("anna", 1, rows, 3.48, 1.0).line()
    assert "1 clip kept, 1 rejected (tail shorter than 1 s: 1)" in line


def test_a_video_shorter_than_the_minimum_is_still_one_file_row(tmp_path: Path):
    raw = tmp_path / "raw"
    (raw / "anna").mkdir(parents=True)
    run_ffmpeg(["-i", str(SAMPLE_GRID / "s1/bbaf2n.mpg"), "-t", "0.6", "-c:v", "libx264",
                "-pix_fmt", "yuv420p", "-c:a", "aac", str(raw / "anna" / "short.mp4")])
    settings, _ = speaker_settings(load_params(), "local", "anna")
    (row,) = preprocess_video(_record("short"), raw, tmp_path / "work", settings)
    assert row["clip_id"] == "anna/short/file" and not row["kept"]
    assert "shorter than 1 s of video" in row["reject_reason"]
