"""corpora.grid: speakers, the alignment remap, and real downloads from loopback mirrors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lipflow.tasks.common.errors import ArchiveError, ConfigError, DownloadError
from lipflow.tasks.contracts.raw_manifest import (
    RAW_COLUMNS,
    ManifestError,
    file_sha256,
    read_raw_columns,
    read_raw_manifest,
)
from lipflow.tasks.corpora import grid
from lipflow.tasks.corpora.grid import (
    ALIGNMENT_FOLDER,
    SPEAKERS,
    download_grid,
    mirror_urls,
    parse_alignment,
    validate_speakers,
)
from tests.support.grid_archives import evil_tar, evil_zip, sheffield_mirror, zenodo_mirror
from tests.support.loopback import serve


def listing(folder: Path) -> dict[str, int]:
    if not folder.exists():
        return {}
    return {p.relative_to(folder).as_posix(): p.stat().st_mtime_ns for p in folder.rglob("*")}


# --- speakers and the remap table ----------------------------------------------------


def test_speakers_are_s1_to_s34_without_s21() -> None:
    assert len(SPEAKERS) == 33 and "s21" not in SPEAKERS
    assert SPEAKERS[0] == "s1" and SPEAKERS[-1] == "s34"
    assert validate_speakers(["S1", "s16", "s1"]) == ["s1", "s16"]


def test_s21_and_unknown_ids_rejected() -> None:
    with pytest.raises(ConfigError, match="s21 has no video"):
        validate_speakers(["s1", "s21"])
    with pytest.raises(ConfigError, match="unknown GRID speaker 's99'"):
        validate_speakers(["s99"])
    with pytest.raises(ConfigError, match="no GRID speakers"):
        validate_speakers([])


def test_alignment_folder_table() -> None:
    assert set(ALIGNMENT_FOLDER) == set(SPEAKERS)
    assert len(set(ALIGNMENT_FOLDER.values())) == 33  # no two speakers share a folder
    assert ALIGNMENT_FOLDER["s10"] == "s13"
    assert ALIGNMENT_FOLDER["s11"] == "s10"
    assert ALIGNMENT_FOLDER["s12"] == "s11"
    assert ALIGNMENT_FOLDER["s13"] == "s12"
    assert ALIGNMENT_FOLDER["s20"] == "s21"
    swaps = [(5, 6), (14, 15), (18, 19), (22, 23), (26, 27), (28, 29), (32, 33)]
    for a, b in swaps:
        assert ALIGNMENT_FOLDER[f"s{a}"] == f"s{b}" and ALIGNMENT_FOLDER[f"s{b}"] == f"s{a}"
    remapped = {f"s{n}" for pair in swaps for n in pair} | {"s10", "s11", "s12", "s13", "s20"}
    assert {s for s, f in ALIGNMENT_FOLDER.items() if s != f} == remapped
    assert all(grid.SPEAKER_OF_ALIGNMENT_FOLDER[f] == s for s, f in ALIGNMENT_FOLDER.items())


def test_parse_alignment_seconds(sample_grid: Path) -> None:
    words = parse_alignment(sample_grid / "alignments" / "s1" / "bbaf2n.align")
    assert [w for w, _, _ in words] == ["bin", "blue", "at", "f", "two", "now"]
    assert words[0] == ("bin", 0.95, 29500 / 25000)
    assert words[-1][2] == pytest.approx(2.12)


def test_parse_alignment_drops_sp_and_rejects_garbage(tmp_path: Path) -> None:
    path = tmp_path / "x.align"
    path.write_text("0 1000 sil\n1000 26000 lay\n26000 27000 sp\n27000 50000 red\n")
    assert parse_alignment(path) == [("lay", 0.04, 1.04), ("red", 1.08, 2.0)]
    path.write_text("0 1000 sil\nnot an alignment\n")
    with pytest.raises(ArchiveError, match="x.align:2"):
        parse_alignment(path)


def test_mirror_urls() -> None:
    zen = mirror_urls("zenodo", "s2")
    assert zen.video.url == "https://zenodo.org/records/3625687/files/s2.zip?download=1"
    assert zen.alignments.url == (
        "https://zenodo.org/records/3625687/files/alignments.zip?download=1"
    )
    shef = mirror_urls("sheffield", "s3")
    assert shef.video.url == "http://spandh.dcs.shef.ac.uk/gridcorpus/s3/video/s3.mpg_vcd.zip"
    assert shef.alignments.url == "http://spandh.dcs.shef.ac.uk/gridcorpus/s3/align/s3.tar"
    base = mirror_urls("https://example.org/grid/", "s2")
    assert (base.layout, base.video.url) == ("zenodo", "https://example.org/grid/s2.zip")
    assert base.alignments.url == "https://example.org/grid/alignments.zip"
    with pytest.raises(ConfigError, match="unknown GRID mirror 'ftp://x'"):
        mirror_urls("ftp://x", "s2")


# --- downloads from loopback mirrors --------------------------------------------------


@pytest.fixture
def zenodo_dir(tmp_path: Path, sample_grid: Path) -> Path:
    # True s27's alignment sits in folder s26 (Zenodo mislabels it); folder s27 holds s26's.
    s27_align = b"0 20000 sil\n20000 30000 lay\n30000 40000 green\n40000 74500 sil\n"
    decoy = b"0 20000 sil\n20000 30000 wrong\n30000 74500 sil\n"
    return zenodo_mirror(
        sample_grid,
        tmp_path / "zenodo",
        extra_folders={"s26": {"bbbp8n.align": s27_align}, "s27": {"bbbp8n.align": decoy}},
    )


def test_zenodo_shape_download(zenodo_dir: Path, tmp_path: Path, sample_grid: Path) -> None:
    root = tmp_path / "root"
    with serve(zenodo_dir) as server:
        manifests = download_grid(["s1", "s27", "s16"], root, server.base_url + "/")
        paths = [r.path for r in server.log]
    assert sorted(paths) == ["alignments.zip", "s1.zip", "s16.zip", "s27.zip"]  # once each
    assert manifests == [root / "manifests" / f"{s}.parquet" for s in ("s1", "s27", "s16")]
    assert sorted(p.name for p in (root / "s1").iterdir()) == [
        "bbaf2n.mpg",
        "bbal6n.mpg",
        "bbbf8p.mpg",
    ]
    assert (root / "s1" / "bbaf2n.mpg").read_bytes() == (sample_grid / "s1/bbaf2n.mpg").read_bytes()
    # every speaker gets its alignments folder (DVC declares it as an output); s16 has none
    assert sorted((root / "alignments").iterdir()) == [
        root / "alignments" / "s1",
        root / "alignments" / "s16",
        root / "alignments" / "s27",
    ]
    assert not any((root / "alignments" / "s16").iterdir())

    table = read_raw_manifest(manifests[0])
    assert list(table.columns) == list(RAW_COLUMNS)
    assert list(table.utterance_id) == ["bbaf2n", "bbal6n", "bbbf8p"]
    row = table.set_index("utterance_id").loc["bbaf2n"]
    assert (row.corpus, row.speaker, row.language) == ("grid", "s1", "en")
    assert pd.isna(row.split)
    assert (row.video_path, row.alignment_path) == ("s1/bbaf2n.mpg", "alignments/s1/bbaf2n.align")
    assert row.transcript == "bin blue at f two now"
    first = row.word_timings[0]
    assert (first["word"], first["start_s"], first["end_s"]) == ("bin", 0.95, 1.18)
    assert row.video_sha256 == file_sha256(sample_grid / "s1" / "bbaf2n.mpg")
    assert row.source_url == server.url("s1.zip")

    s27 = read_raw_manifest(manifests[1]).iloc[0]
    assert s27.alignment_path == "alignments/s27/bbbp8n.align"
    assert s27.transcript == "lay green"  # from folder s26, not the decoy in folder s27
    s16 = read_raw_manifest(manifests[2]).iloc[0]
    assert pd.isna(s16.alignment_path) and pd.isna(s16.transcript) and s16.word_timings is None


def test_second_run_no_traffic_and_files_untouched(zenodo_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serve(zenodo_dir) as server:
        download_grid(["s1"], root, server.base_url)
        before = listing(root)
        server.reset_log()
        download_grid(["s1"], root, server.base_url)
        assert server.count == 0
        assert listing(root) == before

        # Manifest gone: extraction runs again from the cached archives, still no traffic.
        (root / "manifests" / "s1.parquet").unlink()
        download_grid(["s1"], root, server.base_url)
        assert server.count == 0
        assert read_raw_manifest(root / "manifests" / "s1.parquet").shape[0] == 3

        # A manifest that is not one (garbage, or a Parquet file without the columns) or
        # a listed file gone: the speaker is done again, from the cached archives.
        manifest = root / "manifests" / "s1.parquet"
        for damage in ("garbage", "columns"):
            if damage == "garbage":
                manifest.write_bytes(b"not parquet")
            else:
                pd.DataFrame({"speaker": ["s1"]}).to_parquet(manifest)
            with pytest.raises(ManifestError, match="s1.parquet"):
                read_raw_columns(manifest, ("source_url",))
            download_grid(["s1"], root, server.base_url)
            assert server.count == 0 and listing(root).keys() == before.keys()
        video = root / read_raw_manifest(manifest)["video_path"].iloc[0]
        video.unlink()
        download_grid(["s1"], root, server.base_url)
        assert server.count == 0 and video.is_file()


def test_complete_check_reads_no_pandas(zenodo_dir: Path, tmp_path: Path) -> None:
    """Finding a speaker already in place (every rerun of a download stage) reads three
    columns with pyarrow alone: pandas (~0.3 s to import) stays out of the command."""
    import subprocess
    import sys

    root = tmp_path / "root"
    with serve(zenodo_dir) as server:
        download_grid(["s1"], root, server.base_url)
        probe = ("import sys\n"
                 "from pathlib import Path\n"
                 "from lipflow.tasks.corpora.grid import _speaker_complete, mirror_urls\n"
                 f"url = mirror_urls({server.base_url!r}, 's1').video.url\n"
                 f"print(_speaker_complete(Path({str(root)!r}), 's1', url),\n"
                 "      'pandas' in sys.modules)\n")
        done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "False"]


def test_resume_after_cut_in_speaker_archive(zenodo_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serve(zenodo_dir) as server:
        server.cut_once("s1.zip", after_bytes=400_000)
        download_grid(["s1"], root, server.base_url)
        log = server.requests_for("s1.zip")
    assert [r.status for r in log] == [200, 206]
    assert log[1].range is not None and log[1].range.startswith("bytes=")
    cached = tmp_path / "root" / ".downloads"
    (archive,) = cached.rglob("s1.zip")
    assert file_sha256(archive) == file_sha256(zenodo_dir / "s1.zip")
    assert len(list((root / "s1").glob("*.mpg"))) == 3


def test_5xx_once_then_success(zenodo_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serve(zenodo_dir) as server:
        server.fail_once("alignments.zip", status=502)
        download_grid(["s1"], root, server.base_url)
        assert [r.status for r in server.requests_for("alignments.zip")] == [502, 200]
    assert len(list((root / "alignments" / "s1").glob("*.align"))) == 3


def test_404_names_url_and_leaves_root_unchanged(zenodo_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serve(zenodo_dir) as server:
        download_grid(["s1"], root, server.base_url)
        before = listing(root)
        server.not_found("s16.zip")
        with pytest.raises(DownloadError, match="HTTP 404") as err:
            download_grid(["s16"], root, server.base_url, cache_dir=tmp_path / "cache")
        assert server.url("s16.zip") in str(err.value)
    assert listing(root) == before


def test_s21_and_s99_rejected_before_any_request(zenodo_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "root"
    with serve(zenodo_dir) as server:
        with pytest.raises(ConfigError, match="s21"):
            download_grid(["s1", "s21"], root, server.base_url)
        with pytest.raises(ConfigError, match="s99"):
            download_grid(["s99", "s1"], root, server.base_url)
        assert server.count == 0
    assert not root.exists()


@pytest.mark.parametrize("bad", ["zip", "tar"])
def test_malicious_archive_leaves_root_unchanged(
    tmp_path: Path, sample_grid: Path, bad: str
) -> None:
    root = tmp_path / "root"
    (root / "s1").mkdir(parents=True)
    (root / "s1" / "ok.mpg").write_bytes(b"previous")
    before = listing(root)
    if bad == "zip":
        mirror = zenodo_mirror(sample_grid, tmp_path / "mirror", speakers=["s1"])
        evil_zip(mirror / "s1.zip", "dotdot")
        mirror_value = "{}"
    else:
        mirror = sheffield_mirror(sample_grid, tmp_path / "mirror", speakers=["s1"])
        evil_tar(mirror / "s1" / "align" / "s1.tar", "dotdot")
        mirror_value = "sheffield+{}"
    with serve(mirror) as server, pytest.raises(ArchiveError, match=r"'\.\.' component"):
        download_grid(
            ["s1"], root, mirror_value.format(server.base_url), cache_dir=tmp_path / "cache"
        )
    assert listing(root) == before
    assert not (tmp_path / "evil.mpg").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cache", "mirror", "root"]


def test_sheffield_shape_download(tmp_path: Path, sample_grid: Path) -> None:
    mirror = sheffield_mirror(sample_grid, tmp_path / "sheffield", speakers=["s1", "s25"])
    root = tmp_path / "root"
    with serve(mirror) as server:
        manifests = download_grid(["s1", "s25"], root, f"sheffield+{server.base_url}")
        assert sorted(r.path for r in server.log) == [
            "s1/align/s1.tar",
            "s1/video/s1.mpg_vcd.zip",
            "s25/align/s25.tar",
            "s25/video/s25.mpg_vcd.zip",
        ]
        server.reset_log()
        download_grid(["s1", "s25"], root, f"sheffield+{server.base_url}")
        assert server.count == 0
    assert len(list((root / "s1").glob("*.mpg"))) == 3
    assert sorted(p.name for p in (root / "alignments" / "s1").iterdir()) == [
        "bbaf2n.align",
        "bbal6n.align",
        "bbbf8p.align",
    ]
    s1 = read_raw_manifest(manifests[0]).set_index("utterance_id")
    assert s1.loc["bbaf2n"].transcript == "bin blue at f two now"
    assert s1.loc["bbaf2n"].word_timings[0]["start_s"] == 0.95
    assert s1.loc["bbaf2n"].source_url == server.url("s1/video/s1.mpg_vcd.zip")
    s25 = read_raw_manifest(manifests[1])
    assert list(s25.video_path) == ["s25/bbwx8n.mpg"] and s25.alignment_path.isna().all()


def test_sample_mirror_round_trip(tmp_path: Path, sample_grid: Path) -> None:
    root = tmp_path / "root"
    manifests = download_grid(["s1", "s16", "s25", "s27"], root, "sample")
    for speaker in ("s1", "s16", "s25", "s27"):
        got = sorted(p.name for p in (root / speaker).glob("*.mpg"))
        assert got == sorted(p.name for p in (sample_grid / speaker).glob("*.mpg"))
    rows = {m.stem: read_raw_manifest(m) for m in manifests}
    assert sum(len(r) for r in rows.values()) == 6
    assert all(u.startswith("file://") for r in rows.values() for u in r.source_url)
    s1 = rows["s1"].set_index("utterance_id")
    assert s1.loc["bbaf2n"].transcript == "bin blue at f two now"
    for _, row in s1.iterrows():
        assert (root / row.video_path).read_bytes() == (sample_grid / row.video_path).read_bytes()
        assert file_sha256(root / row.alignment_path) == file_sha256(
            sample_grid / row.alignment_path
        )
    before = listing(root)
    download_grid(["s1", "s16", "s25", "s27"], root, "sample")
    assert listing(root) == before


def test_sample_mirror_unknown_speaker(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="has no speaker s2; it has s1, s16, s25, s27"):
        download_grid(["s2"], tmp_path / "root", "sample")
    assert not (tmp_path / "root").exists()


def test_unknown_mirror_rejected(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="unknown GRID mirror"):
        download_grid(["s1"], tmp_path / "root", "dropbox")
