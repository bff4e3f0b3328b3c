"""The one place that knows where a corpus lives on disk.

Layout (docs/contracts.md): a corpus' *raw root* holds its videos and
``manifests/<speaker>.parquet`` (the raw manifest); its *features root* holds one
``<speaker>.zarr`` store per speaker with its clip manifest ``<speaker>.parquet`` beside it.
Both roots come from the corpus' ``params.yaml`` section (``raw_root``, ``features_root``)
and default to ``data/raw/<corpus>`` and ``data/features/<corpus>`` for user corpora.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from lipflow.tasks.common.object_store import Location, is_url, join, location, name_of, with_name
from lipflow.tasks.settings.project import resolve

#: Folder under a raw root that holds the raw manifests (a speaker may not be named so).
MANIFESTS_DIR = "manifests"


def raw_root(params: Mapping[str, Any], corpus: str, project: Path | None = None) -> Path:
    """``<corpus>.raw_root`` from params, else ``data/raw/<corpus>``, as an absolute path.

    Relative paths are under ``project`` (default: the project root).
    """
    conf = params.get(corpus) or {}
    return resolve(conf.get("raw_root", f"data/raw/{corpus}"), project)


def features_root(params: Mapping[str, Any], corpus: str,
                  project: Path | None = None) -> Location:
    """``<corpus>.features_root`` from params, else ``data/features/<corpus>``; a URL
    (``s3://bucket/prefix``) stays a URL (:mod:`lipflow.tasks.common.object_store`)."""
    conf = params.get(corpus) or {}
    root = conf.get("features_root", f"data/features/{corpus}")
    if is_url(root):
        return location(root)
    return resolve(root, project)


def corpus_roots(params: Mapping[str, Any], corpus: str, raw: Path | None = None,
                 features: Location | None = None) -> tuple[Path, Location]:
    """Raw and features roots: the caller's (command line) if given, else from params.

    The features root may be a URL (``s3://bucket/prefix``, kept as a string)."""
    return (Path(raw) if raw else raw_root(params, corpus),
            location(features) if features else features_root(params, corpus))


def raw_manifest_path(root: Path, speaker: str) -> Path:
    """``ROOT/manifests/<speaker>.parquet``: the raw manifest of one speaker."""
    return Path(root) / MANIFESTS_DIR / f"{speaker}.parquet"


def store_path(root: Location, speaker: str) -> Location:
    """``FEATURES_ROOT/<speaker>.zarr``: one speaker's feature store (a URL under a URL)."""
    return join(root if is_url(root) else Path(root), f"{speaker}.zarr")


def clip_manifest_path(store: Location) -> Location:
    """The clip manifest beside a store: ``<stem>.parquet`` next to ``<stem>.zarr``."""
    if is_url(store):
        name = name_of(store)
        return with_name(store, (name[:-5] if name.endswith(".zarr") else name) + ".parquet")
    store = Path(store)
    return store.with_name(store.stem + ".parquet")
