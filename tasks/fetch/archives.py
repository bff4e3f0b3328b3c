"""Extract zip and tar archives all-or-nothing, refusing members that would escape the target.

Corpus archives come from third-party mirrors, so a member named ``../../.bashrc``, an
absolute path, or a link pointing elsewhere must never be written, and a truncated download
must not leave half a speaker behind. :func:`safe_extract` therefore

1. reads the whole member list and validates every member first (relative path, no ``..``,
   regular files and folders only: links and devices are refused outright, since corpus
   archives have no use for them and a link is the usual way out of a target);
2. extracts the chosen members into a temporary folder *beside* the target (same
   filesystem, so the final moves are renames), checking each member's size;
3. only when every member extracted fine, moves the files into the target.

Any failure raises :class:`~lipflow.tasks.common.errors.ArchiveError` naming the archive (and the
member)
and leaves the target exactly as it was.
"""

from __future__ import annotations

import os
import shutil
import stat
import tarfile
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO

from lipflow.tasks.common.errors import ArchiveError

CHUNK_BYTES = 1 << 20

MembersFilter = Callable[[str], bool]
Rename = Callable[[str], str | None]


@dataclass(frozen=True)
class _Member:
    """What validation needs to know about an archive member, whatever the format."""

    name: str
    is_file: bool
    is_dir: bool
    size: int
    handle: object  # ZipInfo or TarInfo, for opening it later


def _unsafe_reason(name: str) -> str | None:
    """Why ``name`` may not be written under a target, or None when it is safe."""
    if not name:
        return "has an empty name"
    if "\x00" in name:
        return "has a NUL byte in its name"
    unified = name.replace("\\", "/")
    if unified.startswith("/") or (len(unified) > 1 and unified[1] == ":"):
        return "has an absolute path"
    if ".." in PurePosixPath(unified).parts:
        return "has a '..' component"
    return None


def _zip_members(archive: zipfile.ZipFile) -> list[_Member]:
    members = []
    for info in archive.infolist():
        is_link = stat.S_ISLNK(info.external_attr >> 16)
        is_dir = info.is_dir() and not is_link
        is_file = not (is_dir or is_link)
        members.append(_Member(info.filename, is_file, is_dir, info.file_size, info))
    return members


def _tar_members(archive: tarfile.TarFile) -> list[_Member]:
    return [
        _Member(info.name, info.isreg(), info.isdir(), info.size, info)
        for info in archive.getmembers()
    ]


def _describe_special(handle: object) -> str:
    if isinstance(handle, tarfile.TarInfo):
        if handle.issym():
            return f"is a symlink (to {handle.linkname!r})"
        if handle.islnk():
            return f"is a hard link (to {handle.linkname!r})"
        return "is a device, fifo or other special file"
    if isinstance(handle, zipfile.ZipInfo):
        return "is a symlink"
    return "is not a regular file"  # pragma: no cover


@contextmanager
def _open_archive(path: Path) -> Iterator[tuple[list[_Member], Callable[[_Member], IO[bytes]]]]:
    """Yield the member list and an opener for members, for a zip or any tar."""
    if zipfile.is_zipfile(path):
        try:
            with zipfile.ZipFile(path) as zf:
                yield _zip_members(zf), lambda m: zf.open(m.handle)  # type: ignore[arg-type]
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, zlib.error) as err:
            raise ArchiveError(f"{path}: corrupt zip archive ({err})") from err
        return
    try:
        tf = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        if isinstance(err, FileNotFoundError):
            raise ArchiveError(f"{path}: no such archive") from err
        raise ArchiveError(f"{path}: not a readable zip or tar archive ({err})") from err
    try:
        with tf:
            try:
                members = _tar_members(tf)
            except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
                raise ArchiveError(f"{path}: corrupt or truncated tar archive ({err})") from err

            def open_member(m: _Member) -> IO[bytes]:
                handle = tf.extractfile(m.handle)  # type: ignore[arg-type]
                if handle is None:  # pragma: no cover - only regular files are opened
                    raise ArchiveError(f"{path}: member {m.name!r} cannot be read")
                return handle

            yield members, open_member
    except (tarfile.TarError, EOFError, zlib.error) as err:
        raise ArchiveError(f"{path}: corrupt or truncated tar archive ({err})") from err


def _copy_member(source: IO[bytes], out_path: Path, expected_size: int) -> None:
    written = 0
    with out_path.open("wb") as out:
        while block := source.read(CHUNK_BYTES):
            out.write(block)
            written += len(block)
    if written != expected_size:
        raise EOFError(f"member ends after {written} of {expected_size} bytes")


def safe_extract(
    archive: Path,
    target: Path,
    *,
    members_filter: MembersFilter | None = None,
    rename: Rename | None = None,
) -> list[Path]:
    """Extract the regular files of ``archive`` under ``target``, all or nothing.

    ``members_filter(name)`` chooses which file members to extract (all by default);
    ``rename(name)`` maps a member name to its path relative to ``target`` (None skips the
    member). Every member is validated, chosen or not, before anything is written. Files
    already in ``target`` with the same relative path are replaced; others are left alone.
    Returns the extracted files' final paths in archive order.
    """
    archive = Path(archive)
    target = Path(target)
    if not archive.is_file():
        raise ArchiveError(f"{archive}: no such archive")
    with _open_archive(archive) as (members, open_member):
        plan: list[tuple[_Member, str]] = []
        seen: dict[str, str] = {}
        for member in members:
            reason = _unsafe_reason(member.name)
            if reason is None and not (member.is_file or member.is_dir):
                reason = _describe_special(member.handle)
            if reason is not None:
                raise ArchiveError(
                    f"{archive}: refusing member {member.name!r}: it {reason}; nothing extracted"
                )
            if member.is_dir or (members_filter is not None and not members_filter(member.name)):
                continue
            relative = rename(member.name) if rename is not None else member.name
            if relative is None:
                continue
            reason = _unsafe_reason(relative)
            if reason is not None or relative.endswith("/"):
                raise ArchiveError(
                    f"{archive}: member {member.name!r} would be written as {relative!r}, "
                    f"which {reason or 'is a folder name'}; nothing extracted"
                )
            relative = PurePosixPath(relative.replace("\\", "/")).as_posix()
            if relative in seen:
                raise ArchiveError(
                    f"{archive}: members {seen[relative]!r} and {member.name!r} would both be "
                    f"written to {relative!r}; nothing extracted"
                )
            seen[relative] = member.name
            plan.append((member, relative))

        target.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(
            tempfile.mkdtemp(prefix=f".{target.name}.extract-", suffix=".tmp", dir=target.parent)
        )
        try:
            for member, relative in plan:
                out_path = staging / relative
                out_path.parent.mkdir(parents=True, exist_ok=True)
                try:
                    with open_member(member) as source:
                        _copy_member(source, out_path, member.size)
                except (
                    zipfile.BadZipFile,
                    tarfile.TarError,
                    EOFError,
                    zlib.error,
                    NotImplementedError,
                    RuntimeError,
                ) as err:
                    raise ArchiveError(
                        f"{archive}: member {member.name!r} is corrupt or truncated ({err}); "
                        "nothing extracted"
                    ) from err
            final_paths = []
            for _member, relative in plan:
                final = target / relative
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(staging / relative, final)
                final_paths.append(final)
            return final_paths
        finally:
            shutil.rmtree(staging, ignore_errors=True)
