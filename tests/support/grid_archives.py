"""Build GRID mirrors and bad archives from the bundled sample, for download tests.

* :func:`zenodo_mirror`: ``s{N}.zip`` + ``alignments.zip`` with the alignment folders
  mislabelled as Zenodo does (plus any extra folders a test wants, to check the remap).
* :func:`sheffield_mirror`: ``s{i}/video/s{i}.mpg_vcd.zip`` + ``s{i}/align/s{i}.tar``,
  with a different folder nesting inside than Zenodo's, as the real site has.
* :func:`evil_zip`, :func:`evil_tar`, :func:`corrupt_zip`, :func:`truncated_zip`,
  :func:`truncated_tar`: archives that extraction must refuse.
"""

from __future__ import annotations

import io
import stat
import tarfile
import zipfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from lipflow.tasks.corpora.grid import ALIGNMENT_FOLDER

SAMPLE_SPEAKERS = ("s1", "s16", "s25", "s27")
OK_MEMBER = "s1/ok.mpg"


def _write_zip(path: Path, entries: Iterable[tuple[str, bytes]], deflate: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    method = zipfile.ZIP_DEFLATED if deflate else zipfile.ZIP_STORED
    with zipfile.ZipFile(path, "w", compression=method) as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name, date_time=(2006, 1, 1, 0, 0, 0)), data)
    return path


def _tar_file(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o644
    tf.addfile(info, io.BytesIO(data))


def _speakers(sample: Path, speakers: Iterable[str] | None) -> list[str]:
    return (
        list(speakers)
        if speakers is not None
        else [s for s in SAMPLE_SPEAKERS if (sample / s).is_dir()]
    )


def zenodo_mirror(
    sample: Path,
    out: Path,
    *,
    speakers: Iterable[str] | None = None,
    extra_folders: Mapping[str, Mapping[str, bytes]] | None = None,
) -> Path:
    """Write a Zenodo-shaped mirror of the sample into ``out``; return ``out``.

    The sample's alignments go into the folder Zenodo mislabels them with
    (``ALIGNMENT_FOLDER``); ``extra_folders`` adds ``alignments/<folder>/<file>`` entries
    verbatim, for tests that place alignments in a specific (mislabelled) folder.
    """
    out.mkdir(parents=True, exist_ok=True)
    align_entries: list[tuple[str, bytes]] = []
    for speaker in _speakers(sample, speakers):
        videos = sorted((sample / speaker).glob("*.mpg"))
        _write_zip(
            out / f"{speaker}.zip", [(f"{speaker}/{p.name}", p.read_bytes()) for p in videos]
        )
        for p in sorted((sample / "alignments" / speaker).glob("*.align")):
            align_entries.append(
                (f"alignments/{ALIGNMENT_FOLDER[speaker]}/{p.name}", p.read_bytes())
            )
    for folder, files in (extra_folders or {}).items():
        align_entries += [(f"alignments/{folder}/{name}", data) for name, data in files.items()]
    _write_zip(out / "alignments.zip", align_entries, deflate=True)
    return out


def sheffield_mirror(sample: Path, out: Path, *, speakers: Iterable[str] | None = None) -> Path:
    """Write a Sheffield-shaped mirror of the sample into ``out``; return ``out``.

    Videos sit under ``mpg_vcd/s{i}/`` in the zip and alignments under ``align/`` in the
    tar (with a folder entry), so the downloader must find members wherever they are.
    Speakers without alignments get an empty tar, as a speaker folder always has one.
    """
    for speaker in _speakers(sample, speakers):
        videos = sorted((sample / speaker).glob("*.mpg"))
        _write_zip(
            out / speaker / "video" / f"{speaker}.mpg_vcd.zip",
            [(f"mpg_vcd/{speaker}/{p.name}", p.read_bytes()) for p in videos],
        )
        tar_path = out / speaker / "align" / f"{speaker}.tar"
        tar_path.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tar_path, "w") as tf:
            folder = tarfile.TarInfo("align")
            folder.type = tarfile.DIRTYPE
            folder.mode = 0o755
            tf.addfile(folder)
            for p in sorted((sample / "alignments" / speaker).glob("*.align")):
                _tar_file(tf, f"align/{p.name}", p.read_bytes())
    return out


EVIL_NAMES = {"dotdot": "s1/../../evil.mpg", "absolute": "/tmp/lipflow-evil.mpg"}


def evil_zip(path: Path, kind: str) -> Path:
    """A zip with a safe member first, then a ``dotdot``, ``absolute`` or ``symlink`` one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(OK_MEMBER, b"fine")
        if kind == "symlink":
            info = zipfile.ZipInfo("s1/link.mpg")
            info.create_system = 3
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, b"../../../etc/passwd")
        else:
            zf.writestr(zipfile.ZipInfo(EVIL_NAMES[kind]), b"evil")
    return path


def evil_tar(path: Path, kind: str, compression: str = "") -> Path:
    """A tar with a safe member first, then ``dotdot``/``absolute``/``symlink``/``hardlink``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, f"w:{compression}") as tf:
        _tar_file(tf, OK_MEMBER, b"fine")
        if kind in ("symlink", "hardlink"):
            info = tarfile.TarInfo("s1/link.mpg")
            info.type = tarfile.SYMTYPE if kind == "symlink" else tarfile.LNKTYPE
            info.linkname = "../../outside" if kind == "symlink" else "/etc/passwd"
            tf.addfile(info)
        else:
            _tar_file(tf, EVIL_NAMES[kind], b"evil")
    return path


def corrupt_zip(path: Path) -> Path:
    """A zip whose directory is intact but whose second member's bytes are damaged.

    Validation passes; the CRC check fails while extracting, after the first member was
    already staged, which is exactly when a naive extractor leaves debris behind.
    """
    first, second = b"A" * 5000, bytes(range(256)) * 40
    _write_zip(path, [("s1/first.mpg", first), ("s1/second.mpg", second)])
    data = bytearray(path.read_bytes())
    where = data.find(second[:64])
    assert where > 0
    data[where + 100 : where + 164] = b"\xff" * 64
    path.write_bytes(bytes(data))
    return path


def truncated_zip(path: Path) -> Path:
    """The first half of a valid zip: no central directory, so not readable as a zip."""
    _write_zip(path, [("s1/first.mpg", b"A" * 5000), ("s1/second.mpg", b"B" * 5000)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def truncated_tar(path: Path, compression: str = "") -> Path:
    """A tar cut off in the middle of its second member's data."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, f"w:{compression}") as tf:
        _tar_file(tf, "s1/first.mpg", b"A" * 5000)
        _tar_file(tf, "s1/second.mpg", bytes(range(256)) * 100)
    data = path.read_bytes()
    cut = 512 + 5120 + 512 + 4000 if not compression else len(data) * 2 // 3
    path.write_bytes(data[:cut])
    return path
