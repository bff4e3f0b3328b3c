"""User YouTube corpora: one speaker's videos, in any language, from a list of ids or URLs.

A user corpus is built exactly like Lip2Wav (:mod:`lipflow.tasks.corpora.lip2wav` calls
:func:`download_speaker_videos` too), so any language goes through the same pipeline; the
language is only a manifest column. Layout under ``ROOT``:

* ``ROOT/<speaker>/<video_id>.mp4`` plus the downloader's bookkeeping there
  (``downloaded.json``, ``ytdlp-archive.txt``; see :mod:`lipflow.tasks.fetch.youtube`);
* ``ROOT/manifests/<speaker>.parquet``: the raw manifest (``docs/contracts.md`` section 1)
  of every video of the speaker that is on disk, this run's and earlier runs';
* ``ROOT/manifests/<speaker>.failures.json``: this run's failed videos with yt-dlp's
  reason (an empty list when none failed).

The list file holds one bare id or YouTube URL a line (``#`` starts a comment); see
:func:`lipflow.tasks.fetch.video_lists.read_user_list`. Respect the rights of the people in the
videos
and YouTube's terms; lipflow only automates what you are entitled to download.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lipflow.tasks.common.atomic import write_bytes_atomic
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.contracts.raw_manifest import write_raw_manifest
from lipflow.tasks.fetch.video_lists import read_user_list
from lipflow.tasks.fetch.youtube import (
    DownloadSummary,
    VideoResult,
    download_videos,
    read_done_manifest,
)
from lipflow.tasks.settings.paths import MANIFESTS_DIR, raw_manifest_path

log = logging.getLogger(__name__)

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# BCP-47 shape (en, de, pt-BR, zh-Hant-TW, yue); not a registry lookup.
_LANGUAGE_RE = re.compile(r"^[A-Za-z]{2,3}(?:-[A-Za-z0-9]{1,8})*$")


def check_name(value: str, what: str) -> str:
    """Return ``value`` if it is safe as a folder name (speaker, corpus), else ConfigError."""
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value) or value == MANIFESTS_DIR:
        raise ConfigError(
            f"{what} {value!r} must be 1-64 letters, digits, '_', '-' or '.', starting with "
            f"a letter or digit (and not '{MANIFESTS_DIR}')"
        )
    return value


def check_language(code: str) -> str:
    """Return ``code`` if shaped like a BCP-47 / ISO 639 tag (``en``, ``de``, ``pt-BR``)."""
    if not isinstance(code, str) or not _LANGUAGE_RE.fullmatch(code):
        raise ConfigError(f"language {code!r} is not a language code such as en, de or pt-BR")
    return code


def manifest_path(root: Path, speaker: str) -> Path:
    """Where the raw manifest of ``speaker`` lives under ``root``."""
    return raw_manifest_path(root, speaker)


def failures_path(root: Path, speaker: str) -> Path:
    """Where the failed downloads of the last run for ``speaker`` are listed."""
    return Path(root) / MANIFESTS_DIR / f"{speaker}.failures.json"


@dataclass(frozen=True)
class SpeakerDownload:
    """Outcome for one speaker: the manifest written, the failures file, the summary."""

    speaker: str
    manifest: Path
    failures: Path
    summary: DownloadSummary


def _row(
    corpus: str, speaker: str, language: str, split: str | None, video_id: str,
    rel_path: str, sha256: str, source_url: str,
) -> dict[str, Any]:  # fmt: skip
    return {
        "corpus": corpus,
        "speaker": speaker,
        "utterance_id": video_id,
        "language": language,
        "split": split,
        "video_path": rel_path,
        "alignment_path": None,
        "transcript": None,
        "word_timings": None,
        "video_sha256": sha256,
        "source_url": source_url,
    }


def _write_failures(path: Path, failed: list[VideoResult]) -> None:
    records = [
        {
            "video_id": r.video_id,
            "split": r.split,
            "source_url": r.source_url,
            "reason": r.reason,
            "attempts": r.attempts,
        }
        for r in failed
    ]
    write_bytes_atomic(path, (json.dumps(records, indent=1) + "\n").encode("utf-8"))


def download_speaker_videos(
    items: Sequence[tuple[str, str | None]],
    speaker: str,
    language: str,
    root: Path,
    *,
    corpus: str,
    split_of: Callable[[str], str | None] | None = None,
    **download_options: Any,
) -> SpeakerDownload:
    """Download ``(video_id, split)`` items for one speaker and write its manifest.

    The manifest lists every video of the speaker present on disk, including those of
    earlier runs (found in the downloader's done-manifest), so the manifest always
    describes the whole ``ROOT/<speaker>`` folder; ``split_of(video_id)`` gives the split
    of such earlier videos (None when unknown). Failed videos are not rows; they are in
    the summary and in ``ROOT/manifests/<speaker>.failures.json``. ``download_options``
    (URL template, height, cookies, rate limit, sleep, retries, progress) are those of
    :func:`lipflow.tasks.fetch.youtube.download_videos`, which checks them.
    """
    check_name(speaker, "speaker")
    check_name(corpus, "corpus")
    check_language(language)
    root = Path(root).absolute()
    out_dir = root / speaker
    summary = download_videos(items, out_dir, **download_options)
    rows: dict[str, dict[str, Any]] = {}
    for r in summary.present:
        assert r.path is not None and r.sha256 is not None
        rows[r.video_id] = _row(
            corpus, speaker, language, r.split, r.video_id,
            r.path.relative_to(root).as_posix(), r.sha256, r.source_url,
        )  # fmt: skip
    for video_id, entry in read_done_manifest(out_dir).items():
        if video_id in rows or not (out_dir / entry["path"]).is_file():
            continue
        split = split_of(video_id) if split_of else None
        rel = f"{speaker}/{entry['path']}"
        rows[video_id] = _row(
            corpus, speaker, language, split, video_id, rel, entry["sha256"],
            entry["source_url"],
        )  # fmt: skip
    manifest = write_raw_manifest([rows[k] for k in sorted(rows)], manifest_path(root, speaker))
    failures = failures_path(root, speaker)
    _write_failures(failures, summary.failed)
    log.info("%s %s: %d videos in the manifest\n%s", corpus, speaker, len(rows), summary.table())
    return SpeakerDownload(speaker, manifest, failures, summary)


def download_youtube_speaker(
    list_file: Path,
    speaker: str,
    language: str,
    root: Path,
    corpus: str = "youtube",
    **download_options: Any,
) -> SpeakerDownload:
    """Like :func:`download_youtube`, returning the summary as well (for the CLI's table)."""
    video_ids = read_user_list(Path(list_file))
    return download_speaker_videos(
        [(v, None) for v in video_ids], speaker, language, root, corpus=corpus,
        **download_options,
    )  # fmt: skip


def download_youtube(
    list_file: Path,
    speaker: str,
    language: str,
    root: Path,
    corpus: str = "youtube",
    **download_options: Any,
) -> Path:
    """Download the videos named in ``list_file`` as ``speaker``; return the raw manifest.

    ``language`` (``de``, ``pt-BR``, ...) goes into every manifest row. Splits are null:
    a user list does not define them. Options as in
    :func:`lipflow.tasks.fetch.youtube.download_videos`.
    """
    return download_youtube_speaker(
        list_file, speaker, language, root, corpus, **download_options
    ).manifest
