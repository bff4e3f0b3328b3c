"""``lipflow report``: an HTML page whose every figure exists, from a synthetic dataset."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from lipflow.tasks.contracts.clip_manifest import read_clip_manifest
from lipflow.tasks.ops.report import (
    ReportError,
    build_report,
    quality_summary,
    speaker_summary,
)
from tests.support.clips import build_store

#: Griffin-Lim rounds: enough to test the path, few enough to keep the test fast.
PARAMS = {"grid": {"features_root": "data/features/grid"},
          "features": {"mel": {"griffin_lim_iters": 4}}}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("report_project")
    features = root / "data" / "features" / "grid"
    build_store(features, 5, speaker="s1", splits=["train"] * 3 + ["test"] * 2, rejected=2)
    build_store(features, 3, speaker="s16", seed=1)
    (root / "metrics").mkdir()
    (root / "metrics" / "lip2wav_s1.json").write_text(json.dumps({"stoi": 0.41, "pesq": 1.3}))
    return root


def test_report_page_references_every_figure_and_all_exist(project, tmp_path):
    page = build_report(project, tmp_path / "report", PARAMS)
    assert page == tmp_path / "report" / "index.html"
    text = page.read_text()
    images = re.findall(r'<img src="([^"]+)"', text)
    expected = {"clips_minutes.png", "rejections.png", "detection_rate.png", "av_offset.png",
                "mouths_grid_s1.png", "mouths_grid_s16.png", "mel_resynthesis.png"}
    assert set(images) == expected
    for name in images:
        png = page.parent / name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 1000, name
    assert (page.parent / "griffin_lim.wav").read_bytes()[:4] == b"RIFF"
    assert "stoi" in text and "0.41" in text  # metrics table
    assert "no face detected in 40% of frames" in text  # rejections in the speaker table
    assert "Clip quality signals" in text and "mean_mouth_occluded_frac" in text
    assert not list(page.parent.glob(".*.tmp"))  # no temp leftovers


def test_speaker_summary_counts_match_the_manifests(project):
    features = project / "data" / "features" / "grid"
    import pandas as pd

    clips = pd.concat([read_clip_manifest(features / f"{s}.parquet") for s in ("s1", "s16")])
    summary = speaker_summary(clips).set_index("speaker")
    assert summary.loc["s1", "clips_kept"] == 5 and summary.loc["s1", "clips_rejected"] == 2
    assert summary.loc["s16", "clips_kept"] == 3 and summary.loc["s16", "clips_rejected"] == 0
    assert summary.loc["s1", "minutes"] == pytest.approx(5 * 3 / 60)
    assert summary.loc["s1", "rejected_by_reason"] == {"no face detected in 40% of frames": 2}


def test_report_without_data_is_a_clear_error(tmp_path):
    with pytest.raises(ReportError, match="no clip manifests found"):
        build_report(tmp_path, tmp_path / "out", {})


def test_speaker_table_artifact_is_published_from_a_flow(project, prefect_harness):
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from lipflow.flows.artifacts import publish_speaker_table, speaker_rows

    manifests = sorted((project / "data" / "features" / "grid").glob("*.parquet"))
    rows = speaker_rows(manifests)
    assert publish_speaker_table(rows) is None  # outside a flow run: nothing to attach to

    @flow
    def finish() -> None:
        publish_speaker_table(rows, key="speaker-table-test")

    finish()
    only_ours = ArtifactFilter(key=ArtifactFilterKey(any_=["speaker-table-test"]))
    with get_client(sync_client=True) as client:
        (artifact,) = client.read_artifacts(artifact_filter=only_ours)
    assert artifact.key == "speaker-table-test" and artifact.type == "table"
    table = json.loads(artifact.data) if isinstance(artifact.data, str) else artifact.data
    by_speaker = {r["speaker"]: r for r in table}
    assert by_speaker["s1"]["clips_kept"] == 5 and by_speaker["s1"]["clips_rejected"] == 2
    assert by_speaker["s1"]["rejected_by_reason"] == "no face detected in 40% of frames: 2"
    assert by_speaker["s16"]["minutes"] == pytest.approx(3 * 3 / 60)


def test_quality_summary_shows_the_manifest_signals(project):
    features = project / "data" / "features" / "grid"
    clips = read_clip_manifest(features / "s1.parquet")
    clips.loc[clips["clip_id"] == "s1/bad000/0", "reject_reason"] = "corrupt video stream (x)"
    row = quality_summary(clips).set_index("speaker").loc["s1"]
    # build_store: mouth_occluded_frac 0.5 on even clips (0, 2, 4 of 5), 0 on odd ones
    assert row["mean_mouth_occluded_frac"] == pytest.approx(0.3)
    assert row["mean_duplicate_frame_frac"] == 0.0
    # offsets i % 3 - 1 for i = 0..4: -1, 0, 1, -1, 0
    assert row["median_av_offset_frames"] == 0.0 and row["av_offset_over_1_frame"] == 0.0
    assert row["corrupt_video_clips"] == 1
