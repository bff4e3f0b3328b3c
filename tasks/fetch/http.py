"""Fetch one file over http(s) or from a ``file://`` URL, resumably and verifiably.

Corpus archives are large (a GRID speaker is ~1 GB) and mirrors drop connections, so a
download must survive interruptions without starting over and must never be mistaken for
complete when it is not. :func:`fetch` therefore

* writes into ``DEST.part`` and resumes it with an HTTP ``Range`` request (a server that
  answers ``200`` instead of ``206`` is handled by starting the file again);
* retries 5xx answers and dropped or short connections with exponential backoff, resuming
  from the byte where the connection stopped; a 4xx answer (404 ...) is a
  :class:`~lipflow.tasks.common.errors.DownloadError` naming the URL at once, since retrying cannot
  help;
* checks the size (``Content-Length`` / ``Content-Range`` / ``expected_size``) and, when
  given, the sha256, then records ``{url, size, sha256}`` in ``DEST.sha256.json`` and only
  then renames ``DEST.part`` to ``DEST``: ``DEST`` exists only when it is complete;
* does nothing (no network traffic at all) when ``DEST`` already exists with a matching
  sidecar, which is what makes a second ``lipflow download`` free.

The sidecar is trusted for the size and hash of an existing ``DEST`` (its size is checked
against the file on disk); re-hashing gigabytes on every run would make idempotent runs slow.
"""

from __future__ import annotations

import json
import logging
import os
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from tqdm import tqdm

from lipflow.tasks.common.atomic import write_bytes_atomic
from lipflow.tasks.common.errors import DownloadError
from lipflow.tasks.common.progress import show_progress
from lipflow.tasks.contracts.raw_manifest import file_sha256

log = logging.getLogger(__name__)

# Small enough that a dropped connection loses little of what already arrived (bytes of a
# chunk still in flight when the connection breaks are discarded and fetched again).
CHUNK_BYTES = 1 << 16
# (connect, read) seconds: a stalled mirror is retried rather than waited on forever.
TIMEOUT_S = (15.0, 60.0)
PART_SUFFIX = ".part"
SIDECAR_SUFFIX = ".sha256.json"


@dataclass(frozen=True)
class FetchResult:
    """A complete, verified file on disk; ``downloaded`` is False when it was already there."""

    path: Path
    size: int
    sha256: str
    downloaded: bool


class _Retryable(Exception):
    """A failure worth another attempt (5xx, dropped or short connection)."""


def part_path(dest: Path) -> Path:
    """Where the unfinished bytes of ``dest`` live while it downloads."""
    return dest.with_name(dest.name + PART_SUFFIX)


def sidecar_path(dest: Path) -> Path:
    """Where ``{url, size, sha256}`` of a finished ``dest`` is recorded."""
    return dest.with_name(dest.name + SIDECAR_SUFFIX)


def read_sidecar(dest: Path) -> dict[str, Any] | None:
    """The recorded ``{url, size, sha256}`` of ``dest``, or None when absent or unreadable."""
    try:
        data = json.loads(sidecar_path(dest).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("size"), int):
        return None
    if not isinstance(data.get("sha256"), str):
        return None
    return data


def _already_fetched(
    dest: Path, expected_sha256: str | None, expected_size: int | None
) -> FetchResult | None:
    """A result for ``dest`` if it exists and its sidecar matches; None to (re)fetch."""
    if not dest.is_file():
        return None
    record = read_sidecar(dest)
    if record is None or record["size"] != dest.stat().st_size:
        return None
    if expected_size is not None and record["size"] != expected_size:
        return None
    if expected_sha256 is not None and record["sha256"].lower() != expected_sha256.lower():
        return None
    return FetchResult(dest, record["size"], record["sha256"], downloaded=False)


def _content_range_total(header: str | None) -> tuple[int | None, int | None]:
    """``(start, total)`` from a ``Content-Range: bytes a-b/total`` header."""
    if not header or not header.startswith("bytes "):
        return None, None
    span, _, total = header[len("bytes ") :].partition("/")
    start_text = span.partition("-")[0]
    try:
        start = int(start_text)
    except ValueError:
        start = None
    try:
        return start, int(total)
    except ValueError:
        return start, None


def _file_url_path(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    return Path(urllib.request.url2pathname(parsed.path))


def _copy_file_url(url: str, part: Path, bar: tqdm) -> int:
    """Copy a ``file://`` URL into ``part`` (resuming at its size); return the total size."""
    source = _file_url_path(url)
    if not source.is_file():
        raise DownloadError(f"{url}: no such file ({source})")
    total = source.stat().st_size
    offset = part.stat().st_size if part.exists() else 0
    if offset > total:
        offset = 0
    bar.reset(total=total)
    bar.update(offset)
    with source.open("rb") as src, part.open("r+b" if offset else "wb") as out:
        out.truncate(offset)
        out.seek(offset)
        src.seek(offset)
        while block := src.read(CHUNK_BYTES):
            out.write(block)
            bar.update(len(block))
    return total


def _http_attempt(url: str, part: Path, session: requests.Session, bar: tqdm) -> int | None:
    """One GET of ``url`` into ``part``, resuming if it has bytes; return the total size.

    Raises :class:`_Retryable` for failures another attempt may fix and
    :class:`DownloadError` for those it cannot (4xx).
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = session.get(url, stream=True, timeout=TIMEOUT_S, headers=headers)
    except (requests.ConnectionError, requests.Timeout) as err:
        raise _Retryable(f"cannot connect: {err}") from err
    with response:
        status = response.status_code
        if status == 416 and offset:
            # The part is at least as long as the file (or stale): start again.
            part.unlink()
            raise _Retryable("server refused to resume (416); restarting")
        if 400 <= status < 500:
            raise DownloadError(f"{url}: HTTP {status} {response.reason or ''}".rstrip())
        if status >= 500:
            raise _Retryable(f"HTTP {status}")
        if status == 206:
            start, total = _content_range_total(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink(missing_ok=True)
                raise _Retryable(f"server resumed at byte {start}, not {offset}; restarting")
            mode = "ab"
        elif status == 200:
            if offset:
                log.info("%s: server ignored the Range request; starting the file again", url)
            offset = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            mode = "wb"
        else:
            raise _Retryable(f"unexpected HTTP {status}")
        bar.reset(total=total)
        bar.update(offset)
        try:
            with part.open(mode) as out:
                for block in response.iter_content(CHUNK_BYTES):
                    out.write(block)
                    bar.update(len(block))
        except (requests.RequestException, ConnectionError) as err:
            raise _Retryable(f"connection dropped: {err}") from err
        except OSError as err:  # the disk, not the network: retrying will not help
            raise DownloadError(f"{url}: cannot write {part}: {err}") from err
    size = part.stat().st_size
    if total is not None and size < total:
        raise _Retryable(f"connection ended after {size} of {total} bytes")
    if total is not None and size > total:
        part.unlink()
        raise _Retryable(f"received {size} bytes, more than the {total} announced; restarting")
    return total


def fetch(
    url: str,
    dest: Path,
    *,
    expected_sha256: str | None = None,
    expected_size: int | None = None,
    retries: int = 5,
    backoff_s: float = 0.5,
    progress: bool | None = None,
    session: requests.Session | None = None,
) -> FetchResult:
    """Download ``url`` to ``dest`` resumably and verified (see module docstring).

    ``retries`` is how many failed attempts (5xx, dropped connection) are retried, waiting
    ``backoff_s * 2**k`` seconds before retry ``k``. Raises :class:`DownloadError` naming
    the URL on a 4xx answer, after the last retry, or when size or sha256 do not match (the
    bad bytes are deleted and ``dest`` is not created).
    """
    dest = Path(dest)
    done = _already_fetched(dest, expected_sha256, expected_size)
    if done is not None:
        log.debug("%s: already fetched (%d bytes)", dest, done.size)
        return done

    scheme = urllib.parse.urlparse(url).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise DownloadError(f"{url}: only http(s) and file:// URLs can be fetched")
    part = part_path(dest)
    own_session = session is None and scheme != "file"
    if own_session:
        session = requests.Session()
    bar = tqdm(
        total=expected_size,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=dest.name,
        disable=not show_progress(progress),
        leave=False,
    )
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        failures = 0
        while True:
            try:
                if scheme == "file":
                    total = _copy_file_url(url, part, bar)
                else:
                    assert session is not None
                    total = _http_attempt(url, part, session, bar)
                break
            except _Retryable as err:
                failures += 1
                if failures > retries:
                    raise DownloadError(
                        f"{url}: giving up after {failures} attempts ({err})"
                    ) from err
                wait_s = backoff_s * 2 ** (failures - 1)
                log.warning("%s: %s; retry %d/%d in %.1f s", url, err, failures, retries, wait_s)
                time.sleep(wait_s)
    finally:
        bar.close()
        if own_session and session is not None:
            session.close()

    size = part.stat().st_size
    if expected_size is not None and size != expected_size:
        part.unlink()
        raise DownloadError(f"{url}: got {size} bytes, expected {expected_size}; removed")
    if total is not None and size != total:  # pragma: no cover - _http_attempt ensures this
        part.unlink()
        raise DownloadError(f"{url}: got {size} bytes, server announced {total}; removed")
    sha256 = file_sha256(part)
    if expected_sha256 is not None and sha256 != expected_sha256.lower():
        part.unlink()
        raise DownloadError(
            f"{url}: sha256 mismatch (got {sha256}, expected {expected_sha256.lower()}); "
            "the downloaded bytes were removed"
        )
    sidecar_path(dest).unlink(missing_ok=True)
    os.replace(part, dest)
    record = {"url": url, "size": size, "sha256": sha256}
    write_bytes_atomic(sidecar_path(dest), (json.dumps(record, indent=2) + "\n").encode())
    log.info("fetched %s (%d bytes)", url, size)
    return FetchResult(dest, size, sha256, downloaded=True)
