"""YouTube video-id lists: the committed Lip2Wav lists and a user's own ``--list FILE``.

Every line becomes a validated 11-character YouTube id (``^[A-Za-z0-9_-]{11}$``) or a
:class:`~lipflow.tasks.common.errors.ConfigError` naming the file and line. Nothing else leaves this
module, so no list line can turn into a yt-dlp option (``--exec=...``), a path
(``../../x``) or a URL of a host we did not choose: the downloader builds the URL itself
from the id.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from lipflow.tasks.common.errors import ConfigError

LISTS_DIR = Path(__file__).resolve().parents[1] / "corpora" / "lip2wav_lists"
LIP2WAV_SPEAKERS: tuple[str, ...] = ("chem", "chess", "dl", "eh", "hs")
LIP2WAV_SPLITS: tuple[str, ...] = ("train", "val", "test")

VIDEO_ID_RE = re.compile(r"^[A-Za-z0-9_-]{11}$")

# Hosts whose URLs name a YouTube video; anything else in a user list is an error.
_YOUTUBE_HOSTS = frozenset({"youtube.com", "www.youtube.com", "m.youtube.com", "music.youtube.com"})
_SHORT_HOSTS = frozenset({"youtu.be", "www.youtu.be"})
# Path prefixes on youtube.com that carry the id as the next path segment.
_PATH_ID_PREFIXES = ("shorts", "embed", "live", "v")


def is_video_id(text: str) -> bool:
    """True when ``text`` is exactly an 11-character YouTube id."""
    return bool(VIDEO_ID_RE.fullmatch(text))


def _lines(path: Path) -> list[tuple[int, str]]:
    """Return ``(line_number, stripped_text)`` for the non-blank lines of ``path``.

    ``utf-8-sig`` drops a byte-order mark that an editor on Windows may have written;
    ``splitlines`` copes with CRLF and a missing final newline.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError as err:
        raise ConfigError(f"video list {path} does not exist") from err
    except UnicodeDecodeError as err:
        raise ConfigError(f"video list {path} is not UTF-8 text: {err}") from err
    except OSError as err:
        raise ConfigError(f"cannot read video list {path}: {err}") from err
    return [(n, line.strip()) for n, line in enumerate(text.splitlines(), 1) if line.strip()]


def _bad_line(path: Path, number: int, line: str, why: str) -> ConfigError:
    shown = line if len(line) <= 80 else line[:77] + "..."
    return ConfigError(f"{path}:{number}: {why}: {shown!r}")


def read_id_list(path: Path) -> list[str]:
    """Read a list of bare video ids (the Lip2Wav format), one a line, blanks skipped."""
    ids = []
    for number, line in _lines(path):
        if not is_video_id(line):
            raise _bad_line(path, number, line, "not an 11-character YouTube video id")
        ids.append(line)
    return _dedupe(ids)


def video_id_from_text(text: str) -> str | None:
    """Return the video id named by a bare id or a YouTube URL, or None if it names none.

    Accepted: ``ID``, ``youtube.com/watch?v=ID`` (any extra query params, ``www.``/``m.``
    hosts, with or without scheme), ``youtu.be/ID``, ``youtube.com/shorts/ID`` (also
    ``/embed/``, ``/live/``, ``/v/``).
    """
    text = text.strip()
    if is_video_id(text):
        return text
    candidate = text if "://" in text else "https://" + text
    try:
        parts = urlsplit(candidate)
        host = (parts.hostname or "").lower()
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or parts.username or parts.password:
        return None
    if port not in (None, 80, 443):
        return None
    segments = [s for s in parts.path.split("/") if s]
    found: str | None = None
    if host in _SHORT_HOSTS:
        found = segments[0] if len(segments) == 1 else None
    elif host in _YOUTUBE_HOSTS:
        if segments == ["watch"]:
            values = parse_qs(parts.query).get("v", [])
            found = values[0] if len(values) == 1 else None
        elif len(segments) == 2 and segments[0] in _PATH_ID_PREFIXES:
            found = segments[1]
    return found if found is not None and is_video_id(found) else None


def read_user_list(path: Path) -> list[str]:
    """Read a user's ``--list FILE``: bare ids or YouTube URLs, one a line.

    Lines starting with ``#`` are comments. Any other line that does not name exactly one
    YouTube video is a :class:`ConfigError` naming the file and line.
    """
    ids = []
    for number, line in _lines(path):
        if line.startswith("#"):
            continue
        video_id = video_id_from_text(line)
        if video_id is None:
            raise _bad_line(
                path,
                number,
                line,
                "not a YouTube video id or a youtube.com / youtu.be video URL",
            )
        ids.append(video_id)
    if not ids:
        raise ConfigError(f"video list {path} names no videos")
    return _dedupe(ids)


def _dedupe(ids: list[str]) -> list[str]:
    """Keep the first occurrence of each id, in order (a video is downloaded once)."""
    return list(dict.fromkeys(ids))


def check_lip2wav_speaker(speaker: str) -> str:
    """Return ``speaker`` if it is a Lip2Wav speaker, else raise listing the valid ones."""
    if speaker not in LIP2WAV_SPEAKERS:
        raise ConfigError(
            f"unknown Lip2Wav speaker {speaker!r}; choose from {', '.join(LIP2WAV_SPEAKERS)}"
        )
    return speaker


def lip2wav_list_path(speaker: str, split: str) -> Path:
    """Path of the committed list for one speaker and one split."""
    check_lip2wav_speaker(speaker)
    if split not in LIP2WAV_SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose from {', '.join(LIP2WAV_SPLITS)}")
    return LISTS_DIR / speaker / f"{split}.txt"


def lip2wav_video_ids(
    speaker: str, split: str = "test", limit: int | None = None
) -> list[tuple[str, str]]:
    """Return ``(video_id, split)`` pairs of a Lip2Wav speaker, in list order.

    ``split='all'`` concatenates train, val and test. ``limit`` (None or 0 = no limit)
    keeps the first N pairs, which is how a quick run takes a couple of videos.
    """
    check_lip2wav_speaker(speaker)
    splits = LIP2WAV_SPLITS if split == "all" else (split,)
    if split != "all" and split not in LIP2WAV_SPLITS:
        raise ConfigError(
            f"unknown split {split!r}; choose from {', '.join((*LIP2WAV_SPLITS, 'all'))}"
        )
    if limit is not None and limit < 0:
        raise ConfigError(f"limit must be >= 0 (0 = every video), got {limit}")
    pairs = [
        (video_id, name)
        for name in splits
        for video_id in read_id_list(lip2wav_list_path(speaker, name))
    ]
    return pairs[:limit] if limit else pairs
