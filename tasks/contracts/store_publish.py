"""Publishing a store at an object-store URL: write to a temp prefix, copy, then a marker.

The rule (docs/contracts.md, "Publishing a store"): an object store has no rename, and a
prefix of thousands of objects can never appear at once, so a store at a URL is *published*
by one object written last: ``<store>/lipflow-published.json`` (:data:`MARKER`). Readers
(:func:`require_published`, called by ``read_store``, ``ClipReader``, ``ClipWindowDataset``
and ``lipflow audit``) trust a store at a URL only while that marker exists; without it
they refuse the prefix with a one-line error. A single PUT is atomic on S3, so the marker
is either there or not, and it is written only after every object of the store and the
clip manifest beside it.

Why a temp prefix *and* a marker: writing a store takes minutes to hours, a copy of its
objects inside the bucket (server-side ``CopyObject``, no bytes through the client) takes
seconds. Writing to ``.<name>.<token>.tmp`` first keeps the previous published store
readable for all but those seconds; the marker makes even those seconds safe: the
sequence is (1) write the temp prefix, (2) delete the old marker (readers now refuse),
(3) remove the old objects and copy the temp prefix over, (4) write the manifest beside the
store, (5) write the marker. A run killed anywhere before (5) leaves no store visible;
a rerun repeats the whole sequence (and removes leftover temp prefixes). Why not only a
marker over a store written in place: the previous store would be gone for the whole
write instead of seconds. Why not a manifest of object names that readers check: zarr
readers open keys directly and would not consult it; a marker is one HEAD/GET.

One writer per store at a time (as for local stores): a second prepare of the same URL
removes the first one's temp prefix.

The marker's JSON records the store's object count and bytes and the sha256 of the clip
manifest beside it (``null`` when there is none), so ``lipflow audit STORE`` and readers
can tell a manifest that does not belong to the store.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import posixpath
import secrets
from collections.abc import Iterator
from typing import Any

from lipflow.tasks.common.object_store import (
    ObjectStoreError,
    describe_error,
    filesystem,
    name_of,
)
from lipflow.tasks.contracts.store_layout import StoreError

MARKER = "lipflow-published.json"
MARKER_FORMAT = 1
#: The keys of the marker's JSON (docs/contracts.md lists each).
MARKER_KEYS = ("format", "store", "objects", "bytes", "manifest", "manifest_sha256")


def marker_url(store: str) -> str:
    return posixpath.join(store, MARKER)


def temp_prefixes(store: str) -> list[str]:
    """Leftover temp prefixes of ``store`` (``.<name>.*.tmp`` beside it) as URLs."""
    fs, path = filesystem(store)
    parent, name = posixpath.split(path)
    scheme = store.split("://", 1)[0]
    try:
        entries = fs.ls(parent, detail=False, refresh=True)
    except FileNotFoundError:
        return []
    return [f"{scheme}://{e}" for e in entries
            if posixpath.basename(e).startswith(f".{name}.") and e.endswith(".tmp")]


def _remove(url: str) -> None:
    fs, path = filesystem(url)
    with contextlib.suppress(FileNotFoundError):
        fs.rm(path, recursive=True)
    fs.invalidate_cache()


@contextlib.contextmanager
def publishing(store: str, *, mark: bool = True) -> Iterator[str]:
    """Yield a temp prefix beside ``store``; on success move it to ``store`` (steps 1-3, and
    with ``mark`` step 5 at once). On error the temp prefix is removed and a previously
    published store is left as it was."""
    fs, path = filesystem(store)
    tmp = f"{store.split('://', 1)[0]}://{posixpath.dirname(path)}/" \
          f".{posixpath.basename(path)}.{secrets.token_hex(6)}.tmp"
    try:
        yield tmp
        withdraw(store)
        _remove(store)
        tmp_path = tmp.split("://", 1)[1]
        fs.copy(tmp_path, path, recursive=True)
        fs.invalidate_cache()
    except BaseException:
        _remove(tmp)
        raise
    for leftover in temp_prefixes(store):  # ours, and any a killed run left behind
        _remove(leftover)
    if mark:
        mark_published(store)


def withdraw(store: str) -> None:
    """Delete the marker: from now on readers refuse ``store`` (step 2)."""
    fs, path = filesystem(store)
    with contextlib.suppress(FileNotFoundError):
        fs.rm_file(posixpath.join(path, MARKER))
    fs.invalidate_cache()


def mark_published(store: str, manifest: str | None = None) -> dict[str, Any]:
    """Write the marker (step 5), recording the store's objects and the manifest's sha256."""
    fs, path = filesystem(store)
    sizes = fs.find(path, detail=True, withdirs=False)
    record = {
        "format": MARKER_FORMAT,
        "store": name_of(store),
        "objects": len(sizes),
        "bytes": int(sum(int(info.get("size") or 0) for info in sizes.values())),
        "manifest": name_of(manifest) if manifest else None,
        "manifest_sha256": _sha256(manifest) if manifest else None,
    }
    assert tuple(record) == MARKER_KEYS
    fs.pipe_file(posixpath.join(path, MARKER), json.dumps(record, sort_keys=True).encode())
    fs.invalidate_cache()
    return record


def _sha256(url: str) -> str:
    fs, path = filesystem(url)
    return hashlib.sha256(fs.cat_file(path)).hexdigest()


def require_published(store: str) -> dict[str, Any]:
    """The marker of ``store``, or a one-line :class:`StoreError` when it is not published."""
    fs, path = filesystem(store)
    try:
        raw = fs.cat_file(posixpath.join(path, MARKER))
    except FileNotFoundError:
        if _exists(fs, posixpath.join(path, "zarr.json"), store):
            raise StoreError(
                f"{store} is not published (no {MARKER}): a prepare is writing it or was "
                "interrupted; rerun `lipflow prepare` to complete it") from None
        raise StoreError(f"no Zarr store at {store}; run `lipflow prepare` first") from None
    except Exception as err:  # noqa: BLE001 - botocore raises many kinds; one line each
        raise ObjectStoreError(describe_error(store, err)) from None
    try:
        record = json.loads(raw)
    except ValueError as err:
        raise StoreError(f"{marker_url(store)} is not valid JSON: {err}") from None
    return record


def check_manifest(store: str, manifest: str) -> None:
    """Raise :class:`StoreError` if the marker names a manifest other than ``manifest``."""
    record = require_published(store)
    want = record.get("manifest_sha256")
    if want and _sha256(manifest) != want:
        raise StoreError(f"clip manifest {manifest} is not the one published with {store} "
                         "(sha256 differs); rerun `lipflow prepare`")


def _exists(fs: Any, path: str, url: str) -> bool:
    try:
        return bool(fs.exists(path))
    except Exception as err:  # noqa: BLE001
        raise ObjectStoreError(describe_error(url, err)) from None


__all__ = ["MARKER", "MARKER_KEYS", "check_manifest", "mark_published", "publishing",
           "require_published", "withdraw"]
