"""Per-clip audio-visual sync scores, written to a file of their own (docs/contracts.md §6).

The trained coupled 3D CNN (``avsync``) compares each kept clip's mouth frames with its
MFEC cube at audio offsets within +-15 frames; the clip's score is how clearly one offset
wins, and that offset is recorded too, so out-of-sync clips can be filtered
(``ClipWindowDataset(..., split_filter=in_sync([sync_path], max_offset_frames=1))``).

Why a separate file (``data/sync/<corpus>/<speaker>.parquet``) and not columns of the clip
manifest: the manifest is an output of ``prepare``; a later stage that rewrote it would make
DVC see ``prepare``'s output as modified and would lose the scores on the next
``dvc checkout``. So ``sync-score`` is its own DVC stage with its own output, and the store
and the manifest are only read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from lipflow.models.dataset import StoreTiming
from lipflow.models.evaluation import load_model
from lipflow.models.nets.avsync import sync_offsets
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.contracts.clip_manifest import read_clip_manifest
from lipflow.tasks.contracts.parquet import read_manifest, write_manifest
from lipflow.tasks.contracts.store_layout import manifest_path_for
from lipflow.tasks.contracts.store_reader import read_store
from lipflow.tasks.settings.paths import features_root
from lipflow.tasks.settings.project import resolve

#: One row per kept clip of the store, in store order.
SYNC_SCHEMA = pa.schema(
    [
        pa.field("clip_id", pa.string(), nullable=False),
        pa.field("store_index", pa.int64(), nullable=False),
        pa.field("sync_score", pa.float64(), nullable=False),
        pa.field("sync_offset_frames", pa.int64(), nullable=False),
    ]
)

SYNC_COLUMNS: tuple[str, ...] = tuple(SYNC_SCHEMA.names)

#: Where sync files live, one folder per corpus (as ``data/features/<corpus>``).
SYNC_ROOT = "data/sync"


def sync_scores_path(params: Mapping[str, Any], store: Path) -> Path:
    """``data/sync/<corpus>/<speaker>.parquet`` for a store under a corpus' features root.

    The corpus is the params section whose ``features_root`` holds the store (or, for a
    user corpus without a section, ``data/features/<corpus>``); any other store needs an
    explicit ``--out``, since no stage could declare where its scores went.
    """
    store = Path(store).resolve()
    sections = [k for k, v in params.items() if isinstance(v, Mapping) and "features_root" in v]
    for corpus in sections:
        if features_root(params, corpus).resolve() == store.parent:
            return resolve(f"{SYNC_ROOT}/{corpus}") / f"{store.stem}.parquet"
    if store.parent.parent == resolve("data/features").resolve():
        return resolve(f"{SYNC_ROOT}/{store.parent.name}") / f"{store.stem}.parquet"
    raise ConfigError(f"{store} is under no corpus features root in params.yaml; pass --out")


def score_store(store: Path, checkpoint: Path, out: Path, max_offset_frames: int = 15) -> Path:
    """Score every kept clip of ``store`` into ``out`` (written through a temp file)."""
    model, _cfg = load_model("avsync", checkpoint, torch.device("cpu"))
    group = read_store(store)
    # windows are cut at this store's rate (a rate the preset does not take is an error)
    model.cfg.fps = float(StoreTiming.from_store(Path(store), group).fps)
    clips = read_clip_manifest(manifest_path_for(store))
    kept = clips[clips["store_index"] >= 0]
    mouth, mfec, valid = group["mouth"], group["mfec"], group["valid_frames"][:]
    rows = []
    with torch.no_grad():
        for clip_id, index in zip(kept["clip_id"], kept["store_index"], strict=True):
            score, offset = sync_offsets(model, mouth[index], mfec[index],
                                         max_offset_frames=max_offset_frames,
                                         valid_frames=int(valid[index]))
            rows.append({"clip_id": clip_id, "store_index": int(index),
                         "sync_score": float(score), "sync_offset_frames": int(offset)})
    return write_manifest(rows, Path(out), SYNC_SCHEMA)


def read_sync_scores(path: Path) -> pd.DataFrame:
    """Read a sync-score file, checking that it has the documented columns."""
    return read_manifest(Path(path), SYNC_SCHEMA, "sync-score file", "lipflow sync-score")


def in_sync(paths: Iterable[Path], max_offset_frames: int = 1
            ) -> Callable[[pd.DataFrame], np.ndarray]:
    """A ``split_filter`` keeping clips whose best offset is within ``max_offset_frames``.

    Clips are matched by ``clip_id`` (it names the speaker, so one filter serves several
    stores); a clip without a score is dropped rather than assumed to be in sync.
    """
    scores = pd.concat([read_sync_scores(p) for p in paths], ignore_index=True)
    offsets = dict(zip(scores["clip_id"], scores["sync_offset_frames"], strict=True))

    def keep(manifest: pd.DataFrame) -> np.ndarray:
        found = manifest["clip_id"].map(offsets)
        return (found.notna() & (found.abs() <= max_offset_frames)).to_numpy()

    return keep
