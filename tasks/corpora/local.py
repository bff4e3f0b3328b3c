"""Local corpora: register videos already on disk as one speaker, in any language.

For recordings you made yourself or obtained elsewhere. Every file under ``src_dir``
(recursively, hidden files skipped) with a video extension (:data:`VIDEO_EXTENSIONS`) is
opened with PyAV; one that holds a video stream is hard-linked (or copied, across
filesystems) to ``ROOT/<speaker>/<stem><ext>`` and becomes a raw-manifest row
(``docs/contracts.md`` section 1) with ``utterance_id`` = file stem, ``split`` null and
``source_url`` the ``file://`` URI of the original. Anything else is not a crash but a
recorded rejection in ``ROOT/manifests/<speaker>.rejected.json`` (path and reason): a
non-video extension, a file PyAV cannot open, a container without video, one without
audio (unless ``require_audio`` is false: ``preprocess.require_audio``, or ``lipflow
download local --no-audio``, for silent videos that ``lipflow synthesize`` or a silent
``prepare`` will read), a second file with the same stem. Registering again (more files,
the same folder) keeps the earlier rows whose files are still there.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from lipflow.tasks.common.atomic import atomic_path, write_bytes_atomic
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.contracts.raw_manifest import RAW_COLUMNS, file_sha256, write_raw_manifest
from lipflow.tasks.corpora.youtube import check_language, check_name, manifest_path
from lipflow.tasks.settings.paths import MANIFESTS_DIR

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS: frozenset[str] = frozenset({".mp4", ".mkv", ".webm", ".avi", ".mpg", ".mov"})


def rejected_path(root: Path, speaker: str) -> Path:
    """Where the files refused by the last :func:`register_local` run are listed."""
    return Path(root) / MANIFESTS_DIR / f"{speaker}.rejected.json"


def probe_video(path: Path, require_audio: bool = False) -> str | None:
    """Return None if PyAV opens ``path`` and finds a video stream (and an audio stream,
    when ``require_audio``), else the reason why not."""
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                return "no video stream"
            if require_audio and not container.streams.audio:
                return "no audio stream (--no-audio registers silent videos)"
    except (av.FFmpegError, OSError, ValueError, UnicodeDecodeError) as err:
        return f"not a readable video: {err}"
    return None


def _place(src: Path, dst: Path) -> None:
    """Hard-link ``src`` at ``dst`` (copy if linking fails), replacing ``dst`` atomically."""
    if dst.exists() and dst.samefile(src):
        return
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copy2(src, tmp)


def _candidates(src_dir: Path) -> list[Path]:
    return sorted(
        p
        for p in src_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(src_dir).parts)
    )


def register_local(
    src_dir: Path,
    speaker: str,
    language: str,
    root: Path,
    corpus: str = "local",
    require_audio: bool = True,
) -> Path:
    """Register the videos under ``src_dir`` as ``speaker``; return the raw manifest path.

    ``require_audio``: a video without an audio stream is rejected (else registered).

    Raises :class:`ConfigError` when ``src_dir`` is not a folder or holds no usable video
    (after writing the rejection list, so the user sees why).
    """
    check_name(speaker, "speaker")
    check_name(corpus, "corpus")
    check_language(language)
    src_dir = Path(src_dir)
    if not src_dir.is_dir():
        raise ConfigError(f"{src_dir} is not a folder of videos")
    root = Path(root).absolute()
    out_dir = root / speaker

    rows: dict[str, dict[str, Any]] = {}
    rejected: list[dict[str, str]] = []
    sources: dict[str, Path] = {}
    for path in _candidates(src_dir):
        ext = path.suffix.lower()
        if ext not in VIDEO_EXTENSIONS:
            why = f"extension {path.suffix or '(none)'!r} is not one of "
            rejected.append({"path": str(path), "reason": why + " ".join(sorted(VIDEO_EXTENSIONS))})
            continue
        if path.stem in sources:
            rejected.append(
                {"path": str(path), "reason": f"same utterance id as {sources[path.stem]}"}
            )
            continue
        why = probe_video(path, require_audio)
        if why is not None:
            rejected.append({"path": str(path), "reason": why})
            continue
        sources[path.stem] = path
        target = out_dir / f"{path.stem}{ext}"
        _place(path, target)
        rows[path.stem] = {
            "corpus": corpus,
            "speaker": speaker,
            "utterance_id": path.stem,
            "language": language,
            "split": None,
            "video_path": target.relative_to(root).as_posix(),
            "alignment_path": None,
            "transcript": None,
            "word_timings": None,
            "video_sha256": file_sha256(target),
            "source_url": path.absolute().as_uri(),
        }

    manifest = manifest_path(root, speaker)
    for row in _earlier_rows(manifest, root):
        rows.setdefault(row["utterance_id"], row)
    reject_file = rejected_path(root, speaker)
    write_bytes_atomic(reject_file, (json.dumps(rejected, indent=1) + "\n").encode("utf-8"))
    for item in rejected:
        log.info("rejected %s: %s", item["path"], item["reason"])
    if not rows:
        raise ConfigError(
            f"no usable video under {src_dir} ({len(rejected)} files rejected, see {reject_file})"
        )
    write_raw_manifest([rows[k] for k in sorted(rows)], manifest)
    return manifest


def _earlier_rows(manifest: Path, root: Path) -> list[dict[str, Any]]:
    """Rows of an existing manifest whose video is still on disk."""
    if not manifest.is_file():
        return []
    try:
        records = pq.read_table(manifest, columns=list(RAW_COLUMNS)).to_pylist()
    except (OSError, ValueError, KeyError, pa.ArrowException) as err:
        log.warning("ignoring unreadable manifest %s: %s", manifest, err)
        return []
    return [r for r in records if (root / r["video_path"]).is_file()]
