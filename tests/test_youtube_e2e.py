"""Lip2Wav and user YouTube corpora end to end on a loopback server: `lipflow download`
through yt-dlp, then `lipflow prepare` into stores (issue 5's code path, offline)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import zarr
from typer.testing import CliRunner

from lipflow.flows.cli import app
from lipflow.tasks.fetch.video_lists import lip2wav_video_ids
from tests.support.mp4_server import GRID_CLIP, Mp4Server, make_faststart_mp4
from tests.support.synthetic_media import run_ffmpeg

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("prefect_harness")]

runner = CliRunner()


def cli(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("youtube")
    long_id, short_id = (vid for vid, _ in lip2wav_video_ids("chem", "test", limit=2))
    # ~9 s of a talking face at 29.97 fps: three whole 90-frame windows at 30 fps
    run_ffmpeg(["-stream_loop", "2", "-i", str(GRID_CLIP), "-r", "30000/1001",
                "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
                "-c:a", "aac", "-movflags", "+faststart", str(folder / f"{long_id}.mp4")])
    make_faststart_mp4(GRID_CLIP, folder / f"{short_id}.mp4", fps="30000/1001")
    (chess_id, _), = lip2wav_video_ids("chess", "test", limit=1)
    make_faststart_mp4(GRID_CLIP, folder / f"{chess_id}.mp4", fps="30000/1001")
    server = Mp4Server(folder).start()
    server.ids = (long_id, short_id)
    yield server
    server.stop()


def test_lip2wav_download_then_prepare_cuts_exact_90_frame_windows(
        server: Mp4Server, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "features"
    cli("download", "lip2wav", "chem", "--split", "test", "--limit", "2", "--root", str(raw),
        "--url-template", server.url_template, "--no-progress")
    manifest = pd.read_parquet(raw / "manifests/chem.parquet")
    assert sorted(manifest["utterance_id"]) == sorted(server.ids)
    assert set(manifest["split"]) == {"test"} and set(manifest["corpus"]) == {"lip2wav"}

    before = server.total
    cli("download", "lip2wav", "chem", "--split", "test", "--limit", "2", "--root", str(raw),
        "--url-template", server.url_template, "--no-progress")
    assert server.total == before, "a second run must not fetch anything"

    cli("prepare", "lip2wav", "chem", "--root", str(raw), "--out", str(out),
        "--runner", "thread", "--no-progress")
    clips = pd.read_parquet(out / "chem.parquet")
    long_id = server.ids[0]
    windows = clips[clips["utterance_id"] == long_id].sort_values("start_s")
    assert list(windows["start_s"])[:3] == [0.0, 3.0, 6.0]
    assert (windows["num_frames"] == 90).all() and (windows["fps"] == 30.0).all()
    assert (windows["num_samples"] == 48000).all()
    assert set(clips["split"]) == {"test"}  # a clip's split is its video's split
    kept = clips[clips["kept"]]
    assert len(kept) >= 3, clips[["clip_id", "reject_reason"]]
    store = zarr.open_group(out / "chem.zarr", mode="r")
    assert store["face"].shape == (len(kept), 90, 96, 96, 3)  # chem preset: 96 px faces
    assert store.attrs["params"]["lip2wav"]["preset"]["fps"] == 30


def test_each_store_records_its_own_speakers_preset(server: Mp4Server, tmp_path: Path) -> None:
    """`prepare lip2wav chem chess` in one call: chem's store says 96 px, chess's 48 px."""
    import json

    raw, out = tmp_path / "raw", tmp_path / "features"
    for speaker, limit in (("chem", "1"), ("chess", "1")):
        cli("download", "lip2wav", speaker, "--split", "test", "--limit", limit, "--root",
            str(raw), "--url-template", server.url_template, "--no-progress")
    cli("prepare", "lip2wav", "chem", "chess", "--root", str(raw), "--out", str(out),
        "--runner", "thread", "--no-progress")
    for speaker, face_px in (("chem", 96), ("chess", 48)):
        report = json.loads(cli("audit", str(out / f"{speaker}.zarr"), "--format", "json"))
        assert report["speaker"] == speaker
        assert report["params"]["preprocess"]["face_size_px"] == face_px
        assert report["params"]["lip2wav"]["preset"]["face_size_px"] == face_px
        assert report["arrays"]["face"][2:4] == [face_px, face_px]


def test_user_corpus_in_another_language_goes_through_unchanged(
        server: Mp4Server, tmp_path: Path) -> None:
    raw, out = tmp_path / "raw", tmp_path / "features"
    ids = tmp_path / "ids.txt"
    ids.write_text(f"https://www.youtube.com/watch?v={server.ids[1]}&t=3s\n")
    cli("download", "youtube", "--list", str(ids), "--speaker", "anna", "--language", "de",
        "--corpus", "vlog", "--root", str(raw), "--url-template", server.url_template,
        "--no-progress")
    cli("prepare", "vlog", "anna", "--root", str(raw), "--out", str(out), "--fps", "25",
        "--runner", "thread", "--no-progress")
    clips = pd.read_parquet(out / "anna.parquet")
    assert set(clips["language"]) == {"de"} and set(clips["corpus"]) == {"vlog"}
    assert clips["kept"].all()
    assert zarr.open_group(out / "anna.zarr", mode="r")["mouth"].shape[1] == 75
