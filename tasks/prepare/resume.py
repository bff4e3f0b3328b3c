"""Where a prepare run keeps its batch results and temp work, so an interrupted run resumes.

Beside a speaker's store (``FEATURES_ROOT/<speaker>.zarr``) a run keeps:

* ``.<speaker>.batches/<key>.zip``: one finished batch each (format:
  :mod:`lipflow.tasks.prepare.results`), named by a content key (:func:`batch_key`). A
  rerun finds the batches whose key it would compute and runs only the others. After
  the store and clip manifest are written the folder is removed.
* ``.<speaker>.work.<random>/``: this run's temp work (a batch result while it is being
  written), with ``owner.json`` naming the process that owns it. The next run removes
  the folders of owners that are no longer alive (a ``kill -9``, a lost machine) and
  leaves a live one alone, so two prepares of one speaker do not disturb each other.

Why an own key and not Prefect's cache policies (``cache_policy=INPUTS + TASK_SOURCE``):
Prefect keeps cached results in its own result storage, keyed by its records, so a
result would live wherever that runner's storage is (a worker's home directory, a Dask
node), be found only through the same Prefect database, and outlive the data it
describes. These results must live beside the data (on the shared file system every
worker sees), be found by any runner or a run without any Prefect history (a lost or
fresh DB, a DVC stage on a new machine), and be removed once the store is written.

The key covers everything that decides a batch's output: its videos (every raw-manifest
column, including ``video_sha256``, in order), the speaker's effective
:class:`~lipflow.tasks.prepare.video.VideoSettings` (JSON, keys sorted) and a digest of
lipflow's ``tasks`` package (:func:`code_digest`: any code edit recomputes everything,
rather than mixing clips from two versions in one store).

Temp disk: a batch result holds its clips in the store's own encoding (with the default
``delta`` codec, or ``jpeg``, ~0.57 MB a GRID clip, ~57 MB for a default batch of 100 GRID
videos; lossless ``lz4`` ~2.8 MB a clip). A worker writes one result at a time (in the
run's work folder, or in its own ``TMPDIR`` on a cluster) and renames it into the results
folder; the driver cuts store shards from finished results in plan order and deletes each
result once its clips are all in shards (:mod:`lipflow.tasks.prepare.shard_stream`), so the
results on disk are the batches waiting for an earlier one, not the whole speaker.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from lipflow.tasks.prepare.video import VideoSettings

OWNER_FILE = "owner.json"
RESULT_SUFFIX = ".zip"
#: A work folder without an owner file is left alone this long (its run may be about to
#: write the file); older, it is an interrupted run's (or one from before owner files).
UNOWNED_GRACE_S = 60.0


def results_dir(store: Path) -> Path:
    """``.<speaker>.batches`` beside the store: the speaker's finished batches."""
    store = Path(store)
    return store.with_name(f".{store.stem}.batches")


def result_path(store: Path, key: str) -> Path:
    return results_dir(store) / f"{key}{RESULT_SUFFIX}"


def _work_prefix(store: Path) -> str:
    return f".{Path(store).stem}.work."


@functools.cache
def code_digest() -> str:
    """sha256 over lipflow's ``tasks`` package files (paths and bytes), computed once."""
    import lipflow.tasks

    root = Path(lipflow.tasks.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = path.relative_to(root)
        if "__pycache__" in rel.parts or path.suffix == ".pyc":
            continue
        digest.update(f"{rel.as_posix()}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def settings_text(settings: VideoSettings) -> str:
    """A speaker's effective settings as JSON with sorted keys (part of every batch key)."""
    return json.dumps(dataclasses.asdict(settings), sort_keys=True, default=_plain)


def batch_key(records: Iterable[Mapping[str, Any]], settings: str, code: str) -> str:
    """The content key of a batch: its videos, the speaker's settings and the code."""
    payload = json.dumps({"videos": [dict(r) for r in records], "settings": settings,
                          "code": code}, sort_keys=True, default=_plain)
    return hashlib.sha256(payload.encode()).hexdigest()


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# --------------------------------------------------------------------------- owners


def _start_ticks(pid: int) -> str | None:
    """A process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _owner() -> dict[str, Any]:
    pid = os.getpid()
    return {"pid": pid, "host": socket.gethostname(), "start": _start_ticks(pid)}


def owner_alive(work_dir: Path) -> bool:
    """Whether the run that owns ``work_dir`` may still be running.

    A folder owned on another host is assumed alive (its process cannot be checked from
    here); one without an owner file counts as alive for :data:`UNOWNED_GRACE_S`.
    """
    try:
        owner = json.loads((Path(work_dir) / OWNER_FILE).read_text())
    except FileNotFoundError:
        try:
            age = time.time() - Path(work_dir).stat().st_mtime
        except FileNotFoundError:
            return False
        return age < UNOWNED_GRACE_S
    except (OSError, ValueError):
        return False
    if owner.get("host") != socket.gethostname():
        return True
    pid = int(owner.get("pid", -1))
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    recorded = owner.get("start")
    return recorded is None or _start_ticks(pid) in (None, recorded)


def work_dirs(store: Path) -> list[Path]:
    """Every run's work folder for this speaker (live or not)."""
    store = Path(store)
    if not store.parent.is_dir():
        return []
    return sorted(p for p in store.parent.glob(f"{_work_prefix(store)}*") if p.is_dir())


def sweep_dead_runs(store: Path, keep: Path | None = None) -> list[Path]:
    """Remove the temp work that dead runs of this speaker left; return what was removed.

    That is their work folders and, when no other run of the speaker is alive, the temp
    folders of an interrupted store or manifest write (``.<name>.*.tmp``, from
    :func:`lipflow.tasks.common.atomic.atomic_path`).
    """
    store = Path(store)
    removed = []
    others_alive = False
    for folder in work_dirs(store):
        if keep is not None and folder == Path(keep):
            continue
        if owner_alive(folder):
            others_alive = True
            continue
        shutil.rmtree(folder, ignore_errors=True)
        removed.append(folder)
    if not others_alive:
        manifest = store.with_name(f"{store.stem}.parquet")
        for target in (store, manifest):
            for tmp in store.parent.glob(f".{target.name}.*.tmp"):
                shutil.rmtree(tmp, ignore_errors=True)
                removed.append(tmp)
    return removed


def claim_work_dir(store: Path) -> Path:
    """Sweep dead runs, then make this run's work folder (owner file first) and the results
    folder."""
    store = Path(store)
    store.parent.mkdir(parents=True, exist_ok=True)
    sweep_dead_runs(store)
    folder = Path(tempfile.mkdtemp(prefix=_work_prefix(store), dir=store.parent))
    (folder / OWNER_FILE).write_text(json.dumps(_owner()))
    results_dir(store).mkdir(exist_ok=True)
    return folder


def release_work_dir(work_dir: Path) -> None:
    shutil.rmtree(work_dir, ignore_errors=True)


def other_runs_alive(store: Path, work_dir: Path) -> bool:
    """Whether another run of this speaker (not the one owning ``work_dir``) is alive."""
    return any(folder != Path(work_dir) and owner_alive(folder) for folder in work_dirs(store))


def remove_results(store: Path, work_dir: Path) -> bool:
    """Remove the speaker's batch results once its store is written (returns whether it did).

    Left in place while another run of the speaker is alive: it may still need them.
    """
    if other_runs_alive(store, work_dir):
        return False
    shutil.rmtree(results_dir(store), ignore_errors=True)
    return True
