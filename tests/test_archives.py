"""fetch.archives.safe_extract: all-or-nothing extraction that refuses escaping members."""

from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from lipflow.tasks.common.errors import ArchiveError
from lipflow.tasks.fetch.archives import safe_extract
from tests.support.grid_archives import (
    EVIL_NAMES,
    corrupt_zip,
    evil_tar,
    evil_zip,
    truncated_tar,
    truncated_zip,
)


def listing(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes: what "unchanged" is compared on."""
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*") if p.is_file()
    }


@pytest.fixture
def target(tmp_path: Path) -> Path:
    """A target that already holds files, which a failed extraction must not touch."""
    root = tmp_path / "root"
    (root / "s1").mkdir(parents=True)
    (root / "s1" / "ok.mpg").write_bytes(b"previous content")
    (root / "keep.txt").write_text("keep me")
    return root


def siblings(target: Path) -> list[str]:
    return sorted(p.name for p in target.parent.iterdir())


def test_zip_extracts_with_filter_and_rename(tmp_path: Path, target: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("deep/s9/a.mpg", b"a")
        zf.writestr("deep/s9/b.txt", b"b")
        zf.writestr("deep/", b"")
    paths = safe_extract(
        archive,
        target,
        members_filter=lambda name: name.endswith(".mpg"),
        rename=lambda name: "s9/" + name.rsplit("/", 1)[-1],
    )
    assert paths == [target / "s9" / "a.mpg"]
    assert listing(target) == {
        "s1/ok.mpg": b"previous content",
        "keep.txt": b"keep me",
        "s9/a.mpg": b"a",
    }
    assert siblings(target) == ["a.zip", "root"]  # no staging folder left behind


@pytest.mark.parametrize("compression", ["", "gz", "bz2", "xz"])
def test_tar_any_compression(tmp_path: Path, compression: str) -> None:
    archive = tmp_path / f"a.tar.{compression or 'plain'}"
    with tarfile.open(archive, f"w:{compression}") as tf:
        data = b"align text"
        info = tarfile.TarInfo("align/x.align")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    out = tmp_path / "out"
    assert safe_extract(archive, out) == [out / "align" / "x.align"]
    assert (out / "align" / "x.align").read_bytes() == b"align text"


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink"])
def test_unsafe_zip_member_refused(tmp_path: Path, target: Path, kind: str) -> None:
    archive = evil_zip(tmp_path / "evil.zip", kind)
    before = listing(target)
    with pytest.raises(ArchiveError, match="refusing member") as err:
        safe_extract(archive, target)
    message = str(err.value)
    assert str(archive) in message
    assert (EVIL_NAMES.get(kind) or "s1/link.mpg") in message
    assert listing(target) == before
    assert siblings(target) == ["evil.zip", "root"]
    assert not (tmp_path / "evil.mpg").exists()


@pytest.mark.parametrize("kind", ["dotdot", "absolute", "symlink", "hardlink"])
@pytest.mark.parametrize("compression", ["", "gz"])
def test_unsafe_tar_member_refused(
    tmp_path: Path, target: Path, kind: str, compression: str
) -> None:
    archive = evil_tar(tmp_path / "evil.tar", kind, compression)
    before = listing(target)
    with pytest.raises(ArchiveError, match="refusing member") as err:
        safe_extract(archive, target)
    assert str(archive) in str(err.value)
    assert listing(target) == before
    assert siblings(target) == ["evil.tar", "root"]


def test_unsafe_member_refused_even_when_filtered_out(tmp_path: Path, target: Path) -> None:
    archive = evil_zip(tmp_path / "evil.zip", "dotdot")
    before = listing(target)
    with pytest.raises(ArchiveError, match=r"'\.\.' component"):
        safe_extract(archive, target, members_filter=lambda name: name == "s1/ok.mpg")
    assert listing(target) == before


def test_rename_that_escapes_is_refused(tmp_path: Path, target: Path) -> None:
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("a.mpg", b"a")
    before = listing(target)
    with pytest.raises(ArchiveError, match="would be written as"):
        safe_extract(archive, target, rename=lambda name: "../" + name)
    assert listing(target) == before


def test_corrupt_zip_leaves_target_unchanged(tmp_path: Path, target: Path) -> None:
    archive = corrupt_zip(tmp_path / "corrupt.zip")
    before = listing(target)
    with pytest.raises(ArchiveError, match="corrupt") as err:
        safe_extract(archive, target)
    assert "s1/second.mpg" in str(err.value)
    assert listing(target) == before
    assert siblings(target) == ["corrupt.zip", "root"]


def test_truncated_zip_is_an_archive_error(tmp_path: Path, target: Path) -> None:
    archive = truncated_zip(tmp_path / "cut.zip")
    before = listing(target)
    with pytest.raises(ArchiveError, match=str(archive)):
        safe_extract(archive, target)
    assert listing(target) == before


@pytest.mark.parametrize("compression", ["", "gz"])
def test_truncated_tar_leaves_target_unchanged(
    tmp_path: Path, target: Path, compression: str
) -> None:
    archive = truncated_tar(tmp_path / "cut.tar", compression)
    before = listing(target)
    with pytest.raises(ArchiveError, match="truncated"):
        safe_extract(archive, target)
    assert listing(target) == before
    assert siblings(target) == ["cut.tar", "root"]


def test_not_an_archive_and_missing_archive(tmp_path: Path, target: Path) -> None:
    junk = tmp_path / "junk.zip"
    junk.write_bytes(b"this is not an archive at all" * 10)
    with pytest.raises(ArchiveError, match="not a readable zip or tar"):
        safe_extract(junk, target)
    with pytest.raises(ArchiveError, match="no such archive"):
        safe_extract(tmp_path / "absent.tar", target)
