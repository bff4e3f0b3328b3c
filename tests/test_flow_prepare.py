"""The prepare flow on a batch with bad files: it finishes, keeps the good clips, and
records a reason for every bad file (issue 3, "Bad input")."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import zarr

from lipflow.flows.prepare import prepare_flow
from lipflow.tasks.contracts.raw_manifest import file_sha256, write_raw_manifest
from lipflow.tasks.prepare.speaker import speaker_jobs
from lipflow.tasks.settings.project import load_params
from tests.support.synthetic_media import (
    make_empty,
    make_text_as_mp4,
    make_truncated_copy,
    make_video,
    run_ffmpeg,
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

GOOD = "good"
EXPECTED_REASONS = {
    "empty": "empty",
    "notmedia": "not a media file",
    "noaudio": "no audio stream",
    "noface": "no face detected",
    "twofaces": "two faces",
    "missing": "missing",
}


@pytest.fixture(scope="module")
def bad_batch(tmp_path_factory: pytest.TempPathFactory, sample_grid: Path) -> Path:
    root = tmp_path_factory.mktemp("raw")
    spk = root / "s1"
    spk.mkdir()
    shutil.copy(sample_grid / "s1/bbaf2n.mpg", spk / f"{GOOD}.mpg")
    run_ffmpeg(["-i", str(sample_grid / "s1/bbaf2n.mpg"), "-i", str(sample_grid / "s16/bgal9n.mpg"),
                "-filter_complex", "[0:v][1:v]hstack", "-map", "0:a", "-c:v", "libx264",
                "-pix_fmt", "yuv420p", "-c:a", "aac", str(spk / "twofaces.mp4")])
    # 29.97 fps with a header that claims more frames than decode
    full = spk / "ntsc_full.mp4"
    run_ffmpeg(["-i", str(sample_grid / "s1/bbal6n.mpg"), "-r", "30000/1001", "-c:v", "libx264",
                "-pix_fmt", "yuv420p", "-c:a", "aac", "-movflags", "+faststart", str(full)])
    make_truncated_copy(full, spk / "ntsc.mp4", fraction=0.85)
    full.unlink()
    make_truncated_copy(sample_grid / "s1/bbbf8p.mpg", spk / "truncated.mpg", fraction=0.6)
    make_video(spk / "noface.mp4", fps="25", duration_s=3.0, size="320x240")
    make_video(spk / "noaudio.mp4", fps="25", duration_s=3.0, audio=False)
    make_empty(spk / "empty.mpg")
    make_text_as_mp4(spk / "notmedia.mp4")
    rows = []
    names = [GOOD, "twofaces", "ntsc", "truncated", "noface", "noaudio", "empty", "notmedia",
             "missing"]
    for name in names:
        found = list(spk.glob(f"{name}.*"))
        video = found[0] if found else spk / f"{name}.mpg"
        rows.append({
            "corpus": "grid", "speaker": "s1", "utterance_id": name, "language": "en",
            "split": None, "video_path": f"s1/{video.name}", "alignment_path": None,
            "transcript": "bin blue" if name == GOOD else None,
            "word_timings": [{"word": "bin", "start_s": 0.95, "end_s": 1.2},
                             {"word": "blue", "start_s": 1.2, "end_s": 1.5}]
            if name == GOOD else None,
            "video_sha256": file_sha256(video) if video.exists() else "0" * 64,
            "source_url": f"file://{video}",
        })
    write_raw_manifest(rows, root / "manifests" / "s1.parquet")
    return root


@pytest.fixture(scope="module")
def prepared_speaker(bad_batch: Path, tmp_path_factory: pytest.TempPathFactory):
    from prefect.task_runners import ThreadPoolTaskRunner

    params = load_params()
    out = tmp_path_factory.mktemp("features")
    jobs = speaker_jobs(params, "grid", ["s1"], bad_batch, out)
    flow = prepare_flow.with_options(task_runner=ThreadPoolTaskRunner(max_workers=2))
    (prepared,) = flow(jobs, bad_batch, False, 6.0)  # bad files share batches with good ones
    return prepared


@pytest.fixture(scope="module")
def prepared(prepared_speaker) -> Path:
    return prepared_speaker.store


def test_summary_counts_videos_kept_clips_and_rejections_by_kind(prepared_speaker) -> None:
    summary = prepared_speaker.summary
    assert summary.videos == 9 and summary.kept == 3
    assert summary.batches > 1
    assert sum(summary.rejected.values()) == 6
    assert not any("/" in reason for reason in summary.rejected), summary.rejected
    line = summary.line()
    assert line.startswith("s1: 9 videos, 3 clips kept, 6 rejected (") and "realtime)" in line


def test_every_bad_file_has_a_reason(prepared: Path) -> None:
    clips = pd.read_parquet(prepared.with_suffix(".parquet"))
    by_utt = clips.set_index("utterance_id")
    for name, phrase in EXPECTED_REASONS.items():
        row = by_utt.loc[name]
        assert not row["kept"], name
        assert phrase in row["reject_reason"].lower(), (name, row["reject_reason"])
        assert row["store_index"] == -1


def test_good_clips_are_kept_with_aligned_counts(prepared: Path) -> None:
    clips = pd.read_parquet(prepared.with_suffix(".parquet"))
    kept = clips[clips["kept"]]
    assert set(kept["utterance_id"]) == {GOOD, "ntsc", "truncated"}
    assert list(kept["store_index"]) == list(range(len(kept)))
    assert list(clips.index[: len(kept)]) == list(range(len(kept)))  # row i is clip i
    assert (kept["num_frames"] == 75).all() and (kept["num_samples"] == 48000).all()
    good = kept.set_index("utterance_id").loc[GOOD]
    assert good["valid_frames"] == 75 and good["transcript"] == "bin blue"
    assert good["detection_rate"] == pytest.approx(1.0)
    truncated = kept.set_index("utterance_id").loc["truncated"]
    assert 25 <= truncated["valid_frames"] < 75  # padded to 75, valid length recorded

    store = zarr.open_group(prepared, mode="r")
    n = len(kept)
    assert store["face"].shape == (n, 75, 96, 96, 3)
    assert store["wav"].shape == (n, 48000)
    assert list(store["valid_frames"][:]) == list(kept["valid_frames"])
    wav = store["wav"][int(truncated["store_index"])]
    assert not np.any(wav[int(truncated["valid_samples"]):])  # padding is silence
