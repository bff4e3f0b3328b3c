"""GRID: download speakers into one layout and write a raw manifest per speaker.

GRID is an audio-visual English sentence corpus: 34 speakers (18 male, 16 female) each
read 1000 six-word command sentences such as "bin blue at f two now" in front of a camera
(360x288, 25 fps, MPEG-1) with word alignments from forced alignment. Speaker s21 has no
video. Cite it as

    Martin Cooke, Jon Barker, Stuart Cunningham and Xu Shao, "An audio-visual corpus for
    speech perception and automatic speech recognition", J. Acoust. Soc. Am. 120(5),
    2421-2424 (2006). Zenodo: DOI 10.5281/zenodo.3625687 (CC BY 4.0).

Mirrors (``mirror=``):

* ``zenodo`` (default): record 3625687, per speaker ``s{N}.zip`` (holds ``s{N}/*.mpg``)
  plus one ``alignments.zip`` (holds ``alignments/s{N}/*.align``) shared by all speakers.
  Some alignment folders in that zip are mislabelled; :data:`ALIGNMENT_FOLDER` says which
  folder holds each true speaker's alignments and extraction applies it.
* ``sheffield``: the original site, per speaker ``s{i}/video/s{i}.mpg_vcd.zip`` and
  ``s{i}/align/s{i}.tar`` (labelled correctly). ``sheffield+URL`` reads the same layout
  under another base URL (a local copy of the site).
* any ``http(s)://`` or ``file://`` URL: a base under which the Zenodo file names live
  (``URL/s2.zip``, ``URL/alignments.zip``), mislabelled like Zenodo.
* ``sample``: the bundled sample corpus (``data/samples/grid``: s1, s16, s25, s27), packed
  into Zenodo-shaped archives and fetched through the same code with a ``file://`` URL.

Whatever the mirror, the result is the Zenodo layout (which lhotse also reads):
``ROOT/s{N}/*.mpg``, ``ROOT/alignments/s{N}/*.align``, plus ``ROOT/manifests/s{N}.parquet``
(raw manifest, ``docs/contracts.md`` section 1). Archives are kept in ``cache_dir``
(default ``ROOT/.downloads/<mirror>``) so that a second run fetches nothing, and a speaker
whose manifest and files are complete is not extracted again.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import shutil
import tempfile
import urllib.parse
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import requests

from lipflow.tasks.common.atomic import atomic_path
from lipflow.tasks.common.errors import ArchiveError, ConfigError, LipflowError
from lipflow.tasks.contracts.raw_manifest import (
    file_sha256,
    read_raw_columns,
    write_raw_manifest,
)
from lipflow.tasks.fetch.archives import safe_extract
from lipflow.tasks.fetch.http import fetch
from lipflow.tasks.settings.paths import raw_manifest_path
from lipflow.tasks.settings.project import project_root

log = logging.getLogger(__name__)

CORPUS = "grid"
LANGUAGE = "en"

SPEAKERS: tuple[str, ...] = tuple(f"s{n}" for n in range(1, 35) if n != 21)
"""Speakers with video: s1..s34 without s21 (whose video was never released)."""

ZENODO_FILES_URL = "https://zenodo.org/records/3625687/files"
SHEFFIELD_URL = "http://spandh.dcs.shef.ac.uk/gridcorpus"
ALIGNMENTS_ARCHIVE = "alignments.zip"

ALIGN_UNITS_PER_S = 25000
"""GRID alignment times are in 1/25000 s (1000 units per 25-fps video frame)."""

NON_WORDS = frozenset({"sil", "sp"})
"""Alignment labels for silence and short pause: kept out of transcripts and word timings."""

# The one table of Zenodo's mislabelled alignment folders: true speaker -> folder holding
# its alignments in alignments.zip. Speakers not listed are in their own folder.
_ZENODO_MISLABELLED: dict[str, str] = {
    "s5": "s6", "s6": "s5",
    "s14": "s15", "s15": "s14",
    "s18": "s19", "s19": "s18",
    "s22": "s23", "s23": "s22",
    "s26": "s27", "s27": "s26",
    "s28": "s29", "s29": "s28",
    "s32": "s33", "s33": "s32",
    "s10": "s13", "s11": "s10", "s12": "s11", "s13": "s12",
    "s20": "s21",
}  # fmt: skip

ALIGNMENT_FOLDER: dict[str, str] = {s: _ZENODO_MISLABELLED.get(s, s) for s in SPEAKERS}
"""True speaker -> folder name of its alignments inside Zenodo's ``alignments.zip``."""

SPEAKER_OF_ALIGNMENT_FOLDER: dict[str, str] = {f: s for s, f in ALIGNMENT_FOLDER.items()}
"""Inverse of :data:`ALIGNMENT_FOLDER`: Zenodo folder name -> true speaker."""

Layout = Literal["zenodo", "sheffield"]


@dataclass(frozen=True)
class Remote:
    """One archive to fetch: its URL and the file name it gets in the download cache."""

    url: str
    filename: str


@dataclass(frozen=True)
class SpeakerSources:
    """Where one speaker's video and alignment archives are, and how they are laid out."""

    speaker: str
    layout: Layout
    video: Remote
    alignments: Remote  # shared by all speakers in the zenodo layout


def validate_speakers(ids: Iterable[str]) -> list[str]:
    """Normalise speaker ids (``S1`` -> ``s1``, duplicates dropped) or raise ConfigError.

    Called before anything touches the network, so a typo costs nothing.
    """
    result: list[str] = []
    for raw in ids:
        speaker = str(raw).strip().lower()
        if speaker == "s21":
            raise ConfigError("GRID speaker s21 has no video in GRID; choose another speaker")
        if speaker not in SPEAKERS:
            raise ConfigError(
                f"unknown GRID speaker {str(raw)!r}: speakers are s1..s34 (without s21)"
            )
        if speaker not in result:
            result.append(speaker)
    if not result:
        raise ConfigError("no GRID speakers given: name at least one of s1..s34 (without s21)")
    return result


def _parse_mirror(mirror: str) -> tuple[str, str | None]:
    """``(kind, base_url)`` for a mirror value; kind is zenodo, zenodo-url, sheffield, sample."""
    value = str(mirror).strip()
    lowered = value.lower()
    if lowered == "zenodo":
        return "zenodo", ZENODO_FILES_URL
    if lowered == "sheffield":
        return "sheffield", SHEFFIELD_URL
    if lowered == "sample":
        return "sample", None
    kind = "zenodo-url"
    if lowered.startswith("sheffield+"):
        kind, value = "sheffield", value[len("sheffield+") :]
    scheme = urllib.parse.urlparse(value).scheme.lower()
    if scheme not in ("http", "https", "file"):
        raise ConfigError(
            f"unknown GRID mirror {mirror!r}: use zenodo, sheffield, sample, "
            "or an http(s):// or file:// URL holding s{N}.zip and alignments.zip"
        )
    return kind, value.rstrip("/")


def mirror_urls(
    mirror: str, speaker: str, *, sample_archive_dir: Path | None = None
) -> SpeakerSources:
    """The archive URLs for ``speaker`` on ``mirror`` (see module docstring for mirrors).

    ``sample`` resolves to ``file://`` URLs under ``sample_archive_dir``, the folder where
    :func:`build_sample_archives` put the sample's Zenodo-shaped archives.
    """
    (speaker,) = validate_speakers([speaker])
    kind, base = _parse_mirror(mirror)
    if kind == "sample":
        if sample_archive_dir is None:
            raise ConfigError(
                "the sample mirror needs sample_archive_dir (built by build_sample_archives)"
            )
        base = Path(sample_archive_dir).resolve().as_uri()
    assert base is not None
    if kind == "sheffield":
        return SpeakerSources(
            speaker,
            "sheffield",
            Remote(f"{base}/{speaker}/video/{speaker}.mpg_vcd.zip", f"{speaker}.mpg_vcd.zip"),
            Remote(f"{base}/{speaker}/align/{speaker}.tar", f"{speaker}.tar"),
        )
    query = "?download=1" if kind == "zenodo" else ""
    return SpeakerSources(
        speaker,
        "zenodo",
        Remote(f"{base}/{speaker}.zip{query}", f"{speaker}.zip"),
        Remote(f"{base}/{ALIGNMENTS_ARCHIVE}{query}", ALIGNMENTS_ARCHIVE),
    )


def parse_alignment(path: Path) -> list[tuple[str, float, float]]:
    """``(word, start_s, end_s)`` for each word of a GRID ``.align`` file, without sil/sp.

    Lines are ``start end word`` in 1/25000 s, so ``23750`` becomes 0.95 s.
    """
    path = Path(path)
    words: list[tuple[str, float, float]] = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ArchiveError(f"{path}: cannot read alignment ({err})") from err
    for line_no, line in enumerate(text.splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        try:
            start, end, word = int(fields[0]), int(fields[1]), fields[2]
            if len(fields) != 3 or end < start:
                raise ValueError
        except (ValueError, IndexError):
            raise ArchiveError(
                f"{path}:{line_no}: expected 'start end word' in 1/25000 s, got {line!r}"
            ) from None
        if word.lower() in NON_WORDS:
            continue
        words.append((word, start / ALIGN_UNITS_PER_S, end / ALIGN_UNITS_PER_S))
    return words


# --- the bundled sample as a Zenodo-shaped mirror -------------------------------------

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def sample_root() -> Path:
    """The bundled sample corpus, in Zenodo layout (``data/samples/grid``)."""
    return project_root() / "data" / "samples" / "grid"


def _speaker_key(speaker: str) -> int:
    return int(speaker[1:])


def sample_speakers(root: Path | None = None) -> list[str]:
    """Speakers with videos in the bundled sample (s1, s16, s25, s27)."""
    root = root or sample_root()
    if not root.is_dir():
        raise ConfigError(f"the bundled GRID sample is missing: no folder {root}")
    found = [
        d.name
        for d in root.iterdir()
        if d.is_dir() and re.fullmatch(r"s\d+", d.name) and any(d.glob("*.mpg"))
    ]
    return sorted(found, key=_speaker_key)


def zip_bytes(entries: Iterable[tuple[str, bytes]]) -> bytes:
    """A zip of ``(name, data)`` entries, byte-identical for identical input.

    Fixed timestamps and permissions and sorted names, so rebuilding the sample mirror
    yields the same sha256 and the fetch cache stays valid.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=_ZIP_EPOCH)
            info.external_attr = 0o100644 << 16
            info.create_system = 3
            zf.writestr(info, data)
    return buffer.getvalue()


def _write_if_changed(path: Path, data: bytes) -> None:
    if path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data:
        return
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def build_sample_archives(out_dir: Path, source: Path | None = None) -> dict[str, str]:
    """Pack the sample corpus as Zenodo packs GRID; return ``{file name: sha256}``.

    Writes ``s{N}.zip`` (``s{N}/*.mpg``) per sample speaker and ``alignments.zip`` with each
    speaker's alignments in the folder Zenodo (mis)labels it with (:data:`ALIGNMENT_FOLDER`),
    so that downloading the sample exercises the same remapping as downloading Zenodo.
    """
    source = source or sample_root()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shas: dict[str, str] = {}
    alignment_entries: list[tuple[str, bytes]] = []
    for speaker in sample_speakers(source):
        videos = [(f"{speaker}/{p.name}", p.read_bytes()) for p in (source / speaker).glob("*.mpg")]
        data = zip_bytes(videos)
        _write_if_changed(out_dir / f"{speaker}.zip", data)
        shas[f"{speaker}.zip"] = hashlib.sha256(data).hexdigest()
        folder = ALIGNMENT_FOLDER[speaker]
        alignment_entries += [
            (f"alignments/{folder}/{p.name}", p.read_bytes())
            for p in (source / "alignments" / speaker).glob("*.align")
        ]
    data = zip_bytes(alignment_entries)
    _write_if_changed(out_dir / ALIGNMENTS_ARCHIVE, data)
    shas[ALIGNMENTS_ARCHIVE] = hashlib.sha256(data).hexdigest()
    return shas


# --- download -------------------------------------------------------------------------


def _is_junk(name: str) -> bool:
    """macOS resource forks and the like, which some re-packed archives carry."""
    parts = PurePosixPath(name.replace("\\", "/")).parts
    return any(p == "__MACOSX" or p.startswith("._") for p in parts)


def _basename(name: str) -> str:
    return PurePosixPath(name.replace("\\", "/")).name


def _video_rename(speaker: str):
    """Member ``anything/x.mpg`` -> ``s{N}/x.mpg``; other members skipped."""

    def rename(name: str) -> str | None:
        if _is_junk(name) or not name.lower().endswith(".mpg"):
            return None
        return f"{speaker}/{_basename(name)}"

    return rename


def _alignment_rename(layout: Layout, speakers: list[str]):
    """Member -> ``alignments/s{N}/x.align`` for the wanted speakers; others skipped.

    Zenodo: the folder holding the file names the speaker through :data:`ALIGNMENT_FOLDER`.
    Sheffield: the archive is per speaker (one speaker in ``speakers``), folder irrelevant.
    """
    if layout == "zenodo":
        speaker_of = {ALIGNMENT_FOLDER[s]: s for s in speakers}
    else:
        (only,) = speakers

    def rename(name: str) -> str | None:
        if _is_junk(name) or not name.lower().endswith(".align"):
            return None
        path = PurePosixPath(name.replace("\\", "/"))
        if layout == "zenodo":
            speaker = speaker_of.get(path.parent.name)
            if speaker is None:
                return None
        else:
            speaker = only
        return f"alignments/{speaker}/{path.name}"

    return rename


def _cache_key(kind: str, base: str | None) -> str:
    if kind in ("zenodo", "sheffield") and base in (ZENODO_FILES_URL, SHEFFIELD_URL):
        return kind
    if kind == "sample":
        return "sample"
    digest = hashlib.sha1(f"{kind} {base}".encode()).hexdigest()[:12]
    return f"{kind}-{digest}"


def manifest_path(root: Path, speaker: str) -> Path:
    """Where the raw manifest of ``speaker`` lives under ``root``."""
    return raw_manifest_path(root, speaker)


def _speaker_complete(root: Path, speaker: str, source_url: str) -> bool:
    """True when the speaker's manifest exists, came from this source, and its files exist."""
    path = manifest_path(root, speaker)
    if not path.is_file():
        return False
    try:
        table = read_raw_columns(path, ("source_url", "video_path", "alignment_path"))
    except (LipflowError, OSError, ValueError):
        return False
    if not table["source_url"] or set(table["source_url"]) != {source_url}:
        return False
    for column in ("video_path", "alignment_path"):
        for relative in table[column]:
            if relative is not None and not (root / relative).is_file():
                return False
    return True


def _manifest_rows(
    staging: Path, speaker: str, videos: list[Path], alignments: set[str], source_url: str
) -> list[dict[str, Any]]:
    rows = []
    for video in sorted(videos, key=lambda p: p.name):
        utt = video.stem
        align_rel = f"alignments/{speaker}/{utt}.align"
        words = parse_alignment(staging / align_rel) if align_rel in alignments else None
        rows.append(
            {
                "corpus": CORPUS,
                "speaker": speaker,
                "utterance_id": utt,
                "language": LANGUAGE,
                "split": None,
                "video_path": f"{speaker}/{video.name}",
                "alignment_path": align_rel if words is not None else None,
                "transcript": (" ".join(w for w, _, _ in words) or None) if words else None,
                "word_timings": (
                    [{"word": w, "start_s": s, "end_s": e} for w, s, e in words]
                    if words is not None
                    else None
                ),
                "video_sha256": file_sha256(video),
                "source_url": source_url,
            }
        )
    return rows


def _move_tree(staging: Path, root: Path) -> None:
    """Move every file under ``staging`` to the same relative path under ``root``."""
    for path in sorted(staging.rglob("*")):
        if path.is_file():
            final = root / path.relative_to(staging)
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(path, final)


def download_grid(
    speakers: Iterable[str],
    root: Path,
    mirror: str = "zenodo",
    *,
    cache_dir: Path | None = None,
    progress: bool | None = None,
) -> list[Path]:
    """Download GRID ``speakers`` from ``mirror`` into ``root``; return their raw manifests.

    Steps: validate speakers and mirror (no network yet); skip speakers whose manifest and
    files are complete; fetch the archives into the cache (resumable, never twice); extract
    all of them into a staging folder beside ``root`` and only then move the files into
    ``root`` and write ``ROOT/manifests/{speaker}.parquet``. A failed fetch or a bad
    archive leaves ``root`` as it was. Returns one manifest path per speaker, in order.
    """
    speakers = validate_speakers(speakers)
    root = Path(root).absolute()
    kind, base = _parse_mirror(mirror)
    sample_shas: Mapping[str, str] = {}
    if kind == "sample":
        have = sample_speakers()
        missing = [s for s in speakers if s not in have]
        if missing:
            raise ConfigError(
                f"the bundled GRID sample has no speaker {', '.join(missing)}; "
                f"it has {', '.join(have)}"
            )
    cache_root = Path(cache_dir).absolute() if cache_dir else root / ".downloads"
    cache = cache_root / _cache_key(kind, base)
    sample_dir = cache_root / "sample-mirror"
    sources = {
        s: mirror_urls(mirror, s, sample_archive_dir=sample_dir if kind == "sample" else None)
        for s in speakers
    }
    manifests = [manifest_path(root, s) for s in speakers]
    todo = [s for s in speakers if not _speaker_complete(root, s, sources[s].video.url)]
    if not todo:
        log.info("GRID %s: already downloaded under %s", ", ".join(speakers), root)
        return manifests
    if kind == "sample":
        sample_shas = build_sample_archives(sample_dir)

    # 1. Fetch every archive first: a 404 or a dead mirror changes nothing under root.
    archives: dict[str, Path] = {}
    with requests.Session() as session:
        for speaker in todo:
            for remote in (sources[speaker].video, sources[speaker].alignments):
                if remote.url in archives:
                    continue
                result = fetch(
                    remote.url,
                    cache / remote.filename,
                    expected_sha256=sample_shas.get(remote.filename),
                    progress=progress,
                    session=session,
                )
                archives[remote.url] = result.path

    # 2. Extract into staging, build the manifests, then move everything into root.
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.grid-", suffix=".tmp", dir=root.parent))
    try:
        videos: dict[str, list[Path]] = {}
        alignments: set[str] = set()
        for speaker in todo:
            src = sources[speaker]
            log.info("GRID %s: extracting %s", speaker, src.video.filename)
            videos[speaker] = safe_extract(
                archives[src.video.url], staging, rename=_video_rename(speaker)
            )
            if not videos[speaker]:
                raise ArchiveError(f"{src.video.url}: holds no .mpg video for {speaker}")
        groups: dict[str, list[str]] = {}
        for speaker in todo:
            groups.setdefault(sources[speaker].alignments.url, []).append(speaker)
        for url, group in groups.items():
            layout = sources[group[0]].layout
            extracted = safe_extract(
                archives[url], staging, rename=_alignment_rename(layout, group)
            )
            alignments |= {p.relative_to(staging).as_posix() for p in extracted}
        rows = {
            s: _manifest_rows(staging, s, videos[s], alignments, sources[s].video.url) for s in todo
        }
        _move_tree(staging, root)
        for speaker in todo:
            # The layout always has the folder, even for a speaker without alignments,
            # so a DVC stage can declare it as an output.
            (root / "alignments" / speaker).mkdir(parents=True, exist_ok=True)
            write_raw_manifest(rows[speaker], manifest_path(root, speaker))
            log.info("GRID %s: %d utterances", speaker, len(rows[speaker]))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return manifests
