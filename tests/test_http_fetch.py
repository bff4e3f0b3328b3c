"""fetch.http against a loopback server: resume, retries, 4xx, checksums, idempotence."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from lipflow.tasks.common.errors import DownloadError
from lipflow.tasks.fetch.http import fetch, part_path, sidecar_path
from tests.support.loopback import serve

PAYLOAD = os.urandom(300_000)
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


@pytest.fixture
def served(tmp_path: Path) -> Path:
    folder = tmp_path / "served"
    folder.mkdir()
    (folder / "blob.bin").write_bytes(PAYLOAD)
    return folder


def test_fetch_writes_file_and_sidecar(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "out" / "blob.bin"
    with serve(served) as server:
        result = fetch(server.url("blob.bin?download=1"), dest, expected_sha256=PAYLOAD_SHA)
        assert server.count == 1
    assert result.downloaded and result.path == dest
    assert (result.size, result.sha256) == (len(PAYLOAD), PAYLOAD_SHA)
    assert dest.read_bytes() == PAYLOAD
    record = json.loads(sidecar_path(dest).read_text())
    assert record == {
        "url": server.url("blob.bin?download=1"),
        "size": len(PAYLOAD),
        "sha256": PAYLOAD_SHA,
    }
    assert not part_path(dest).exists()


def test_second_fetch_makes_no_request(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    with serve(served) as server:
        fetch(server.url("blob.bin"), dest)
        mtime = dest.stat().st_mtime_ns
        server.reset_log()
        again = fetch(server.url("blob.bin"), dest, expected_sha256=PAYLOAD_SHA)
        assert server.count == 0
    assert not again.downloaded and again.sha256 == PAYLOAD_SHA
    assert dest.stat().st_mtime_ns == mtime


def test_existing_file_with_other_sha_is_fetched_again(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    with serve(served) as server:
        fetch(server.url("blob.bin"), dest)
        server.reset_log()
        with pytest.raises(DownloadError, match="sha256 mismatch"):
            fetch(server.url("blob.bin"), dest, expected_sha256="0" * 64)
        assert server.count == 1


def test_resume_after_connection_cut(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    with serve(served) as server:
        server.cut_once("blob.bin", after_bytes=100_000)
        result = fetch(server.url("blob.bin"), dest, expected_sha256=PAYLOAD_SHA, backoff_s=0)
        log = server.requests_for("blob.bin")
    assert [r.status for r in log] == [200, 206]
    assert log[0].range is None
    resumed_at = int(log[1].range.removeprefix("bytes=").removesuffix("-"))
    assert 0 < resumed_at <= 100_000  # from the bytes kept in .part, not from zero
    assert result.sha256 == PAYLOAD_SHA and dest.read_bytes() == PAYLOAD


def test_resume_of_leftover_part_file(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes(PAYLOAD[:123_456])
    with serve(served) as server:
        fetch(server.url("blob.bin"), dest, expected_sha256=PAYLOAD_SHA)
        assert [r.range for r in server.log] == ["bytes=123456-"]
    assert dest.read_bytes() == PAYLOAD


def test_server_ignoring_range_restarts_cleanly(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    part_path(dest).write_bytes(b"junk that must not end up in front" * 10)
    with serve(served) as server:
        server.ignore_range = True
        result = fetch(server.url("blob.bin"), dest)
        assert [(r.range is not None, r.status) for r in server.log] == [(True, 200)]
    assert result.sha256 == PAYLOAD_SHA and dest.read_bytes() == PAYLOAD


def test_5xx_once_then_success(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    with serve(served) as server:
        server.fail_once("blob.bin", status=503)
        fetch(server.url("blob.bin"), dest, backoff_s=0.01)
        assert [r.status for r in server.log] == [503, 200]
    assert dest.read_bytes() == PAYLOAD


def test_persistent_5xx_gives_up_naming_url(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    with serve(served) as server:
        server.fail_once("blob.bin", status=500, times=100)
        with pytest.raises(DownloadError, match="giving up after 3 attempts") as err:
            fetch(server.url("blob.bin"), dest, retries=2, backoff_s=0)
        assert server.url("blob.bin") in str(err.value)
        assert server.count == 3
    assert not dest.exists()


def test_404_fails_at_once_naming_url(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "sub" / "missing.bin"
    with serve(served) as server:
        url = server.url("missing.bin")
        with pytest.raises(DownloadError, match="HTTP 404") as err:
            fetch(url, dest, retries=5, backoff_s=10)
        assert url in str(err.value)
        assert server.count == 1
    assert not dest.exists() and not part_path(dest).exists()


def test_checksum_mismatch_removes_bytes(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    with serve(served) as server, pytest.raises(DownloadError, match="sha256 mismatch"):
        fetch(server.url("blob.bin"), dest, expected_sha256="ab" * 32)
    assert list(tmp_path.iterdir()) == [tmp_path / "served"]


def test_size_mismatch_is_an_error(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "blob.bin"
    with serve(served) as server, pytest.raises(DownloadError, match="expected 5"):
        fetch(server.url("blob.bin"), dest, expected_size=5)
    assert not dest.exists() and not part_path(dest).exists()


def test_file_url(served: Path, tmp_path: Path) -> None:
    dest = tmp_path / "copy.bin"
    url = (served / "blob.bin").as_uri()
    result = fetch(url, dest, expected_sha256=PAYLOAD_SHA, expected_size=len(PAYLOAD))
    assert result.downloaded and dest.read_bytes() == PAYLOAD
    assert not fetch(url, dest).downloaded
    with pytest.raises(DownloadError, match="no such file"):
        fetch((served / "nope.bin").as_uri(), tmp_path / "nope.bin")


def test_unsupported_scheme(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="only http"):
        fetch("ftp://example.org/x", tmp_path / "x")
