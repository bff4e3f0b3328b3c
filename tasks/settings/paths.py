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

from lipflow.tasks.settings.project import resolve

#: Folder under a raw root that holds the raw manifests (a speaker may not be named so).
MANIFESTS_DIR = "manifests"


def raw_root(params: Mapping[str, Any], corpus: str, project: Path | None = None) -> Path:
    """``<corpus>.raw_root`` from params, else ``data/raw/<corpus>``, as an absolute path.

    Relative paths are under ``project`` (default: the project root).
    """
    conf = params.get(corpus) or {}
    return resolve(conf.get("raw_root", f"data/raw/{corpus}"), project)


def features_root(params: Mapping[str, Any], corpus: str, project: Path | None = None) -> Path:
    """``<corpus>.features_root`` from params, else ``data/features/<corpus>``."""
    conf = params.get(corpus) or {}
    return resolve(conf.get("features_root", f"data/features/{corpus}"), project)


def corpus_roots(params: Mapping[str, Any], corpus: str, raw: Path | None = None,
                 features: Path | None = None) -> tuple[Path, Path]:
    """Raw and features roots: the caller's (command line) if given, else from params."""
    return (Path(raw) if raw else raw_root(params, corpus),
            Path(features) if features else features_root(params, corpus))


def raw_manifest_path(root: Path, speaker: str) -> Path:
    """``ROOT/manifests/<speaker>.parquet``: the raw manifest of one speaker."""
    return Path(root) / MANIFESTS_DIR / f"{speaker}.parquet"


def store_path(root: Path, speaker: str) -> Path:
    """``FEATURES_ROOT/<speaker>.zarr``: one speaker's feature store."""
    return Path(root) / f"{speaker}.zarr"


def clip_manifest_path(store: Path) -> Path:
    """The clip manifest beside a store: ``<stem>.parquet`` next to ``<stem>.zarr``."""
    store = Path(store)
    return store.with_name(store.stem + ".parquet")
