"""Download whole videos by YouTube id through yt-dlp (used as a library), once each.

Why this shape:

* Only validated 11-character ids come in (see :mod:`lipflow.tasks.fetch.video_lists`); the URL is
built
  here from ``url_template`` and the output name is the id itself, never a remote title,
  so nothing from a list or from the remote site can become an option or a path.
* Never downloaded twice. lipflow keeps its own done-manifest
  (``out_dir/downloaded.json``: id, path, size, sha256, source URL) and consults it
  *before* yt-dlp is created, so a second run makes no request at all. yt-dlp's own
  ``download_archive`` (``out_dir/ytdlp-archive.txt``) is kept as well, so plain yt-dlp
  runs over the same folder agree; an archive line whose file has gone is dropped so the
  video is fetched again.
* One bad video does not stop a run: HTTP 403/429/5xx are retried with exponential
  backoff (on top of yt-dlp's own ``retries``), anything else (private, removed,
  geo-blocked, 404) is recorded with yt-dlp's reason and the run goes on. The result is a
  :class:`DownloadSummary`, printable with :meth:`DownloadSummary.table`.
* ``url_template`` is the test seam: pointed at ``http://127.0.0.1:PORT/{id}.mp4`` the
  same code downloads from a loopback server through yt-dlp's generic extractor. That
  extractor needs no special option for a loopback URL: it sends a GET, sees a
  ``video/*`` Content-Type and treats the URL as a direct video link
  (``force_generic_extractor`` is only needed when another extractor would claim the URL,
  which none does for 127.0.0.1).
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from tqdm import tqdm

from lipflow.tasks.common.atomic import write_bytes_atomic
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.common.executables import ffmpeg_exe
from lipflow.tasks.common.progress import show_progress
from lipflow.tasks.contracts.raw_manifest import file_sha256
from lipflow.tasks.fetch.video_lists import is_video_id

log = logging.getLogger(__name__)

WATCH_URL_TEMPLATE = "https://www.youtube.com/watch?v={id}"
DONE_MANIFEST_NAME = "downloaded.json"
ARCHIVE_NAME = "ytdlp-archive.txt"
VIDEO_EXT = "mp4"
RETRY_STATUSES = frozenset({403, 429})  # plus every 5xx

Status = Literal["downloaded", "skipped", "failed"]


@dataclass(frozen=True)
class VideoResult:
    """What happened to one video. ``path`` is absolute; size/sha256 set unless failed."""

    video_id: str
    split: str | None
    status: Status
    source_url: str
    path: Path | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    reason: str | None = None
    attempts: int = 0


@dataclass
class DownloadSummary:
    """Per-video results of one :func:`download_videos` call, in input order."""

    results: list[VideoResult] = field(default_factory=list)

    def _with(self, status: Status) -> list[VideoResult]:
        return [r for r in self.results if r.status == status]

    @property
    def downloaded(self) -> list[VideoResult]:
        return self._with("downloaded")

    @property
    def skipped(self) -> list[VideoResult]:
        """Videos already done before this run (nothing was requested for them)."""
        return self._with("skipped")

    @property
    def failed(self) -> list[VideoResult]:
        return self._with("failed")

    @property
    def present(self) -> list[VideoResult]:
        """Videos on disk after the run (downloaded now or earlier)."""
        return [r for r in self.results if r.status != "failed"]

    def counts(self) -> dict[str, int]:
        return {s: len(self._with(s)) for s in ("downloaded", "skipped", "failed")}

    def table(self) -> str:
        """A plain-text table: one row per video, then the totals."""
        header = ("video_id", "split", "status", "MB", "why")
        rows = [
            (
                r.video_id,
                r.split or "-",
                r.status,
                f"{r.size_bytes / 1e6:.1f}" if r.size_bytes is not None else "-",
                r.reason or ("already downloaded" if r.status == "skipped" else ""),
            )
            for r in self.results
        ]
        widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
        widths[-1] = 0  # the reason column is last and not padded
        lines = [
            "  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
            for row in (header, *rows)
        ]
        c = self.counts()
        lines.append(
            f"{c['downloaded']} downloaded, {c['skipped']} skipped (already done), "
            f"{c['failed']} failed"
        )
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.table()


class _YtDlpLogger:
    """Routes yt-dlp's console output to Python logging so a run stays quiet."""

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger

    def debug(self, msg: str) -> None:
        self._log.debug(msg)

    def info(self, msg: str) -> None:
        self._log.debug(msg)

    def warning(self, msg: str) -> None:
        self._log.warning(msg)

    def error(self, msg: str) -> None:
        # Errors are raised to us as DownloadError and land in the summary.
        self._log.info(msg)


def format_selector(max_height_px: int) -> str:
    """yt-dlp format: best video up to the height cap plus best audio, else best single file."""
    h = int(max_height_px)
    return f"bv*[height<={h}]+ba/b[height<={h}]/bv*+ba/b"


def done_manifest_path(out_dir: Path) -> Path:
    return Path(out_dir) / DONE_MANIFEST_NAME


def read_done_manifest(out_dir: Path) -> dict[str, dict[str, Any]]:
    """Return ``{video_id: {path, size_bytes, sha256, source_url}}`` (empty if none yet)."""
    path = done_manifest_path(out_dir)
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        videos = data["videos"]
        if not isinstance(videos, dict):
            raise TypeError("'videos' is not a mapping")
    except (ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path} is not a lipflow download manifest ({err}); delete it") from err
    # An entry that is not exactly what we write (hand-edited, another tool) counts as not
    # done: the video is fetched again rather than trusted, and no path in it is followed.
    return {
        vid: entry
        for vid, entry in videos.items()
        if is_video_id(vid)
        and isinstance(entry, dict)
        and entry.get("path") == f"{vid}.{VIDEO_EXT}"
        and isinstance(entry.get("size_bytes"), int)
        and isinstance(entry.get("sha256"), str)
        and isinstance(entry.get("source_url"), str)
    }


def _write_done_manifest(out_dir: Path, videos: dict[str, dict[str, Any]]) -> None:
    payload = {"version": 1, "videos": dict(sorted(videos.items()))}
    write_bytes_atomic(
        done_manifest_path(out_dir), (json.dumps(payload, indent=1) + "\n").encode("utf-8")
    )


def _forget_in_archive(archive: Path, video_id: str) -> None:
    """Drop ``<extractor> <video_id>`` lines so yt-dlp fetches the video again."""
    if not archive.is_file():
        return
    lines = archive.read_text(encoding="utf-8").splitlines()
    kept = [ln for ln in lines if ln.split()[-1:] != [video_id]]
    if len(kept) != len(lines):
        write_bytes_atomic(archive, "".join(f"{ln}\n" for ln in kept).encode("utf-8"))


def _http_status(err: BaseException) -> int | None:
    """The HTTP status behind a yt-dlp error, if any (walks exc_info, cause, __cause__)."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [err]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        status = getattr(e, "status", None)
        if status is None:
            status = getattr(e, "code", None)  # urllib.error.HTTPError
        if isinstance(status, int) and 100 <= status < 600:
            return status
        exc_info = getattr(e, "exc_info", None)
        if isinstance(exc_info, tuple) and len(exc_info) > 1:
            stack.append(exc_info[1])
        cause = getattr(e, "cause", None)
        stack.extend(c for c in (cause, e.__cause__, e.__context__) if isinstance(c, BaseException))
    match = re.search(r"HTTP Error (\d{3})", str(err))
    return int(match.group(1)) if match else None


def _is_retryable(status: int | None) -> bool:
    return status is not None and (status in RETRY_STATUSES or 500 <= status < 600)


_ANSI_RE = re.compile(r"\x1b\[[0-9;]*m")


def _reason(err: BaseException) -> str:
    """yt-dlp's message without the ``ERROR:`` prefix and colour codes."""
    text = _ANSI_RE.sub("", str(err)).strip()
    return text.removeprefix("ERROR:").strip() or type(err).__name__


def _check_template(url_template: str) -> None:
    try:
        probe = url_template.format(id="xxxxxxxxxxx")
    except (KeyError, IndexError, ValueError) as err:
        raise ConfigError(f"url_template {url_template!r} must use only '{{id}}'") from err
    if "{id}" not in url_template or urlsplit(probe).scheme not in ("http", "https"):
        raise ConfigError(f"url_template {url_template!r} must be an http(s) URL with '{{id}}'")


def _rate_limit_bytes(rate_limit: int | str | None) -> int | None:
    """``rate_limit`` as bytes/s: an int, or a string such as ``'2M'`` or ``'500K'``."""
    if rate_limit is None:
        return None
    if isinstance(rate_limit, int):
        value: int | None = rate_limit
    else:
        from yt_dlp.utils import parse_bytes

        value = parse_bytes(str(rate_limit).strip())
    if not value or value <= 0:
        raise ConfigError(f"rate limit {rate_limit!r} is not a positive rate like 2M or 500K")
    return int(value)


def download_videos(
    items: Sequence[tuple[str, str | None]],
    out_dir: Path,
    *,
    url_template: str = WATCH_URL_TEMPLATE,
    max_height_px: int = 720,
    cookies: Path | None = None,
    rate_limit: int | str | None = None,
    sleep_s: float | None = None,
    retries: int = 3,
    backoff_s: float = 5.0,
    progress: bool | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DownloadSummary:
    """Download ``(video_id, split)`` items to ``out_dir/<video_id>.mp4``; see module doc.

    ``cookies`` is a Netscape cookies.txt (for age- or bot-gated videos), ``rate_limit``
    caps bandwidth (bytes/s or ``'2M'``), ``sleep_s`` pauses before each download (polite
    to YouTube), ``retries`` is both yt-dlp's per-request retries and the number of extra
    whole attempts after a 403/429/5xx, spaced ``backoff_s * 2**k`` seconds. ``progress``
    None shows a bar only when stderr is a terminal.
    """
    out_dir = Path(out_dir)
    bad = [vid for vid, _ in items if not isinstance(vid, str) or not is_video_id(vid)]
    if bad:
        raise ConfigError(f"not YouTube video ids: {bad[:5]!r}")
    _check_template(url_template)
    if int(max_height_px) <= 0:
        raise ConfigError(f"max_height_px must be positive, got {max_height_px}")
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    if cookies is not None and not Path(cookies).is_file():
        raise ConfigError(f"cookies file {cookies} does not exist")
    ratelimit = _rate_limit_bytes(rate_limit)
    out_dir.mkdir(parents=True, exist_ok=True)
    archive = out_dir / ARCHIVE_NAME
    done = read_done_manifest(out_dir)

    base_opts: dict[str, Any] = {
        "format": format_selector(max_height_px),
        "merge_output_format": VIDEO_EXT,
        # A best single file in another container (webm) is remuxed, not re-encoded.
        "postprocessors": [{"key": "FFmpegVideoRemuxer", "preferedformat": VIDEO_EXT}],
        "ffmpeg_location": ffmpeg_exe(),
        "paths": {"home": str(out_dir), "temp": str(out_dir)},
        "download_archive": str(archive),
        "noplaylist": True,
        "overwrites": False,
        "retries": retries,
        "fragment_retries": retries,
        "extractor_retries": retries,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "color": {"stdout": "no_color", "stderr": "no_color"},
        "logger": _YtDlpLogger(logging.getLogger(f"{__name__}.yt_dlp")),
        # YouTube's player challenges need a JavaScript runtime (yt-dlp >= 2025.11); its
        # default is deno only, so also accept node or bun when those are what is installed.
        "js_runtimes": {"deno": {}, "node": {}, "bun": {}},
    }
    if cookies is not None:
        base_opts["cookiefile"] = str(cookies)
    if ratelimit is not None:
        base_opts["ratelimit"] = ratelimit
    if sleep_s:
        base_opts["sleep_interval"] = float(sleep_s)

    summary = DownloadSummary()
    bar = tqdm(
        total=len(items), unit="video", desc="download", disable=not show_progress(progress)
    )
    try:
        for video_id, split in items:
            bar.set_postfix_str(video_id)
            result = _one_video(
                video_id, split, out_dir, done, archive, url_template.format(id=video_id),
                base_opts, retries, backoff_s, sleep,
                bar.set_postfix_str if not bar.disable else None,
            )  # fmt: skip
            summary.results.append(result)
            if result.status == "failed":
                log.info("video %s failed: %s", video_id, result.reason)
            bar.update(1)
    finally:
        bar.close()
    return summary


def _record(
    out_dir: Path,
    done: dict[str, dict[str, Any]],
    video_id: str,
    split: str | None,
    target: Path,
    source_url: str,
    status: Status,
    attempts: int,
) -> VideoResult:
    size, digest = target.stat().st_size, file_sha256(target)
    done[video_id] = {
        "path": target.name,
        "size_bytes": size,
        "sha256": digest,
        "source_url": source_url,
    }
    _write_done_manifest(out_dir, done)
    return VideoResult(video_id, split, status, source_url, target, size, digest, None, attempts)


def _percent_hook(video_id: str, show: Callable[[str], None]) -> Callable[[dict], None]:
    """A yt-dlp progress hook that reports ``<id> 42%`` (hour-long lectures take a while)."""

    def hook(status: dict) -> None:
        total = status.get("total_bytes") or status.get("total_bytes_estimate")
        done = status.get("downloaded_bytes")
        if status.get("status") == "downloading" and total and done is not None:
            show(f"{video_id} {100 * done / total:.0f}%")

    return hook


def _one_video(
    video_id: str,
    split: str | None,
    out_dir: Path,
    done: dict[str, dict[str, Any]],
    archive: Path,
    url: str,
    base_opts: dict[str, Any],
    retries: int,
    backoff_s: float,
    sleep: Callable[[float], None],
    on_progress: Callable[[str], None] | None = None,
) -> VideoResult:
    target = out_dir / f"{video_id}.{VIDEO_EXT}"
    entry = done.get(video_id)
    if entry and target.is_file() and target.stat().st_size == entry.get("size_bytes"):
        return VideoResult(
            video_id, split, "skipped", entry.get("source_url", url), target,
            entry["size_bytes"], entry["sha256"],
        )  # fmt: skip
    if target.is_file() and not entry:
        # yt-dlp renames ``.part`` files only when complete, so a file here is whole
        # (e.g. a run interrupted between download and bookkeeping): adopt it.
        return _record(out_dir, done, video_id, split, target, url, "skipped", 0)
    if target.is_file():
        log.warning("%s differs from the recorded size; downloading it again", target)
        target.unlink()
    done.pop(video_id, None)
    _forget_in_archive(archive, video_id)

    import yt_dlp

    opts = dict(base_opts, outtmpl={"default": f"{video_id}.%(ext)s"})
    if on_progress is not None:
        opts["progress_hooks"] = [_percent_hook(video_id, on_progress)]
    attempts = 0
    while True:
        attempts += 1
        try:
            with yt_dlp.YoutubeDL(opts) as ydl:
                ydl.extract_info(url, download=True)
        except yt_dlp.utils.DownloadError as err:
            status = _http_status(err)
            if _is_retryable(status) and attempts <= retries:
                wait_s = backoff_s * 2 ** (attempts - 1)
                log.info(
                    "HTTP %s for %s; retry %d/%d in %.1fs",
                    status,
                    video_id,
                    attempts,
                    retries,
                    wait_s,
                )
                sleep(wait_s)
                continue
            return VideoResult(
                video_id, split, "failed", url, reason=_reason(err), attempts=attempts
            )
        break
    if not target.is_file():
        others = sorted(p.name for p in out_dir.glob(f"{video_id}.*"))
        why = f"yt-dlp finished but {target.name} is missing" + (
            f" (found {', '.join(others)})" if others else ""
        )
        return VideoResult(video_id, split, "failed", url, reason=why, attempts=attempts)
    return _record(out_dir, done, video_id, split, target, url, "downloaded", attempts)
