"""yt-dlp downloads from a loopback server: archive skip, 404/403 handling, manifests."""

from __future__ import annotations

import json
from fractions import Fraction

import av
import pyarrow.parquet as pq
import pytest

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.contracts.raw_manifest import RAW_SCHEMA, file_sha256, read_raw_manifest
from lipflow.tasks.corpora.lip2wav import download_lip2wav, download_lip2wav_speaker
from lipflow.tasks.corpora.youtube import download_youtube, download_youtube_speaker
from lipflow.tasks.fetch.video_lists import lip2wav_video_ids
from lipflow.tasks.fetch.youtube import (
    ARCHIVE_NAME,
    download_videos,
    format_selector,
    read_done_manifest,
)
from tests.support import mp4_server as support
from tests.support.mp4_server import ID_25FPS, ID_2997FPS, ID_FORBIDDEN, ID_NOT_FOUND, Mp4Server

mp4_fixtures = support.mp4_fixtures  # pytest fixtures, shared with other test modules
mp4_server = support.mp4_server

FAST = {"retries": 1, "backoff_s": 0.0, "progress": False}
ITEMS = [(ID_25FPS, "test"), (ID_NOT_FOUND, "test"), (ID_FORBIDDEN, "val"), (ID_2997FPS, None)]


def test_format_selector_caps_height_and_falls_back():
    assert format_selector(720) == "bv*[height<=720]+ba/b[height<=720]/bv*+ba/b"


def test_download_records_failures_and_goes_on(mp4_server: Mp4Server, mp4_fixtures, tmp_path):
    waits: list[float] = []
    out = tmp_path / "videos"
    summary = download_videos(
        ITEMS, out, url_template=mp4_server.url_template, sleep=waits.append, **FAST
    )
    assert summary.counts() == {"downloaded": 2, "skipped": 0, "failed": 2}
    assert [r.video_id for r in summary.results] == [v for v, _ in ITEMS]

    for result in summary.downloaded:
        assert result.path == out / f"{result.video_id}.mp4"
        assert result.path.read_bytes() == (mp4_fixtures / result.path.name).read_bytes()
        assert result.sha256 == file_sha256(result.path)
        assert result.size_bytes == result.path.stat().st_size
    assert {r.split for r in summary.downloaded} == {"test", None}

    failed = {r.video_id: r for r in summary.failed}
    assert "HTTP Error 404" in failed[ID_NOT_FOUND].reason
    assert "HTTP Error 403" in failed[ID_FORBIDDEN].reason
    # 404 is final (one request); 403 is retried once after a backoff.
    assert failed[ID_NOT_FOUND].attempts == 1 and mp4_server.count(ID_NOT_FOUND) == 1
    assert failed[ID_FORBIDDEN].attempts == 2 and mp4_server.count(ID_FORBIDDEN) == 2
    assert waits == [0.0]
    assert not list(out.glob(f"{ID_NOT_FOUND}*")) and not list(out.glob(f"{ID_FORBIDDEN}*"))

    done = read_done_manifest(out)
    assert sorted(done) == sorted([ID_25FPS, ID_2997FPS])
    assert done[ID_25FPS]["sha256"] == file_sha256(out / f"{ID_25FPS}.mp4")
    assert done[ID_25FPS]["source_url"] == mp4_server.url_template.format(id=ID_25FPS)
    archive = (out / ARCHIVE_NAME).read_text().split()
    assert ID_25FPS in archive and ID_2997FPS in archive and ID_NOT_FOUND not in archive

    table = summary.table()
    assert "2 downloaded, 0 skipped (already done), 2 failed" in table
    assert "HTTP Error 403" in table.splitlines()[3]


def test_second_run_makes_no_request(mp4_server: Mp4Server, tmp_path):
    items = [(ID_25FPS, "test"), (ID_2997FPS, "test")]
    out = tmp_path / "videos"
    first = download_videos(items, out, url_template=mp4_server.url_template, **FAST)
    assert first.counts()["downloaded"] == 2
    before = {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")}

    mp4_server.reset_counts()
    second = download_videos(items, out, url_template=mp4_server.url_template, **FAST)
    assert mp4_server.total == 0
    assert second.counts() == {"downloaded": 0, "skipped": 2, "failed": 0}
    assert [r.sha256 for r in second.results] == [r.sha256 for r in first.results]
    assert {p.name: p.stat().st_mtime_ns for p in out.glob("*.mp4")} == before


def test_deleted_video_is_fetched_again(mp4_server: Mp4Server, tmp_path):
    out = tmp_path / "videos"
    download_videos([(ID_25FPS, None)], out, url_template=mp4_server.url_template, **FAST)
    (out / f"{ID_25FPS}.mp4").unlink()
    mp4_server.reset_counts()
    again = download_videos([(ID_25FPS, None)], out, url_template=mp4_server.url_template, **FAST)
    assert again.counts()["downloaded"] == 1  # not blocked by the yt-dlp archive
    assert mp4_server.count(ID_25FPS) >= 1
    assert (out / f"{ID_25FPS}.mp4").is_file()


def test_transient_503_is_retried_with_backoff(mp4_fixtures, tmp_path):
    server = Mp4Server(mp4_fixtures, flaky_by_id={ID_25FPS: (503, 2)}).start()
    waits: list[float] = []
    try:
        summary = download_videos(
            [(ID_25FPS, None)], tmp_path, url_template=server.url_template,
            retries=3, backoff_s=0.5, progress=False, sleep=waits.append,
        )  # fmt: skip
    finally:
        server.stop()
    [result] = summary.results
    assert result.status == "downloaded" and result.attempts == 3
    assert waits == [0.5, 1.0]  # exponential backoff between whole attempts


def test_tampered_done_manifest_entry_is_not_trusted(mp4_server: Mp4Server, tmp_path):
    out = tmp_path / "videos"
    download_videos([(ID_25FPS, None)], out, url_template=mp4_server.url_template, **FAST)
    done_file = out / "downloaded.json"
    data = json.loads(done_file.read_text())
    data["videos"][ID_25FPS]["path"] = "../../etc/passwd"
    done_file.write_text(json.dumps(data))
    assert read_done_manifest(out) == {}
    mp4_server.reset_counts()
    again = download_videos([(ID_25FPS, None)], out, url_template=mp4_server.url_template, **FAST)
    # The file on disk is adopted (hashed again), not fetched, and the entry is rewritten.
    assert mp4_server.total == 0 and again.results[0].status == "skipped"
    assert read_done_manifest(out)[ID_25FPS]["path"] == f"{ID_25FPS}.mp4"


def test_downloaded_2997fps_fixture_keeps_its_rate(mp4_server: Mp4Server, tmp_path):
    summary = download_videos(
        [(ID_2997FPS, None)], tmp_path, url_template=mp4_server.url_template, **FAST
    )
    with av.open(str(summary.downloaded[0].path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == Fraction(30000, 1001)
        assert container.streams.audio


@pytest.mark.parametrize("bad", ["--exec=rm", "../../etc/pw", "abcdefghijkl"])
def test_invalid_ids_never_reach_yt_dlp(mp4_server: Mp4Server, tmp_path, bad):
    with pytest.raises(ConfigError, match="not YouTube video ids"):
        download_videos([(bad, None)], tmp_path, url_template=mp4_server.url_template, **FAST)
    assert mp4_server.total == 0


@pytest.mark.parametrize(
    "template", ["http://127.0.0.1/video.mp4", "file:///tmp/{id}.mp4", "http://x/{id}/{name}"]
)
def test_bad_url_template_is_a_config_error(tmp_path, template):
    with pytest.raises(ConfigError, match="url_template"):
        download_videos([(ID_25FPS, None)], tmp_path, url_template=template, **FAST)


def test_bad_rate_limit_and_cookies_are_config_errors(tmp_path):
    with pytest.raises(ConfigError, match="rate limit"):
        download_videos([(ID_25FPS, None)], tmp_path, rate_limit="fast", **FAST)
    with pytest.raises(ConfigError, match="cookies"):
        download_videos([(ID_25FPS, None)], tmp_path, cookies=tmp_path / "none.txt", **FAST)


@pytest.fixture
def lip2wav_server(mp4_fixtures, tmp_path):
    """Serves the fixture under the first three ``chem`` test ids; the third answers 404."""
    ids = [v for v, _ in lip2wav_video_ids("chem", "test", limit=3)]
    folder = tmp_path / "served"
    folder.mkdir()
    for vid in ids[:2]:
        (folder / f"{vid}.mp4").write_bytes((mp4_fixtures / f"{ID_25FPS}.mp4").read_bytes())
    server = Mp4Server(folder, status_by_id={ids[2]: 404}).start()
    try:
        yield server, ids
    finally:
        server.stop()


def test_lip2wav_manifest_lists_present_videos(lip2wav_server, tmp_path):
    server, ids = lip2wav_server
    root = tmp_path / "lip2wav"
    [manifest] = download_lip2wav(
        ["chem"], root, split="test", limit=3, url_template=server.url_template, **FAST
    )
    assert manifest == root / "manifests" / "chem.parquet"
    assert pq.read_schema(manifest).equals(RAW_SCHEMA, check_metadata=False)
    table = read_raw_manifest(manifest)
    assert sorted(table["utterance_id"]) == sorted(ids[:2])
    assert set(table["corpus"]) == {"lip2wav"} and set(table["language"]) == {"en"}
    assert set(table["split"]) == {"test"} and set(table["speaker"]) == {"chem"}
    assert table["alignment_path"].isna().all() and table["transcript"].isna().all()
    for row in table.itertuples():
        assert row.video_path == f"chem/{row.utterance_id}.mp4"
        assert row.video_sha256 == file_sha256(root / row.video_path)
        assert row.source_url == server.url_template.format(id=row.utterance_id)

    failures = json.loads((root / "manifests" / "chem.failures.json").read_text())
    assert [f["video_id"] for f in failures] == [ids[2]]
    assert "404" in failures[0]["reason"] and failures[0]["split"] == "test"

    # Second run: nothing requested, same manifest rows.
    server.reset_counts()
    again = download_lip2wav_speaker(
        "chem", root, split="test", limit=2, url_template=server.url_template, **FAST
    )
    assert server.total == 0
    assert again.summary.counts() == {"downloaded": 0, "skipped": 2, "failed": 0}
    assert read_raw_manifest(again.manifest).equals(table)
    assert json.loads(again.failures.read_text()) == []


def test_lip2wav_rejects_unknown_speaker_before_any_download(tmp_path):
    with pytest.raises(ConfigError, match="chem, chess, dl, eh, hs"):
        download_lip2wav(["chem", "bio"], tmp_path)
    assert not (tmp_path / "chem").exists()


def test_user_youtube_corpus_in_german(mp4_server: Mp4Server, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"# mein Sprecher\n{ID_25FPS}\nhttps://youtu.be/{ID_NOT_FOUND}?si=x\n"
        f"https://www.youtube.com/watch?v={ID_2997FPS}&t=5s",
        encoding="utf-8",
    )
    root = tmp_path / "corpus"
    result = download_youtube_speaker(
        listing, "anna", "de", root, corpus="vlog",
        url_template=mp4_server.url_template, **FAST,
    )  # fmt: skip
    table = read_raw_manifest(result.manifest)
    assert sorted(table["utterance_id"]) == sorted([ID_25FPS, ID_2997FPS])
    assert set(table["language"]) == {"de"} and set(table["corpus"]) == {"vlog"}
    assert table["split"].isna().all()
    assert all(row.video_sha256 == file_sha256(root / row.video_path) for row in table.itertuples())
    assert [r.video_id for r in result.summary.failed] == [ID_NOT_FOUND]
    # The plain API returns the same manifest path.
    assert (
        download_youtube(
            listing, "anna", "de", root, "vlog", url_template=mp4_server.url_template, **FAST
        )
        == result.manifest
    )


def test_user_list_with_foreign_host_stops_before_downloading(mp4_server: Mp4Server, tmp_path):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{ID_25FPS}\nhttps://evil.example.com/watch?v={ID_2997FPS}\n")
    with pytest.raises(ConfigError, match=r"list\.txt:2:"):
        download_youtube(listing, "anna", "de", tmp_path, url_template=mp4_server.url_template)
    assert mp4_server.total == 0


@pytest.mark.parametrize(
    ("speaker", "language"), [("../x", "de"), ("manifests", "de"), ("anna", "german!")]
)
def test_user_corpus_names_are_checked(tmp_path, speaker, language):
    listing = tmp_path / "list.txt"
    listing.write_text(f"{ID_25FPS}\n")
    with pytest.raises(ConfigError):
        download_youtube(listing, speaker, language, tmp_path)
