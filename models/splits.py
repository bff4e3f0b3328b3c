"""Named train/val/test splits from ``params.yaml`` (``splits:``), applied to clip manifests.

Three kinds, each deterministic (no dependence on worker order or run):

- ``seen``: the same speakers in every part; per speaker, clips are shuffled with a seed
  derived from ``train.seed`` and the speaker name, then ``test_per_speaker`` go to test,
  ``val_per_speaker`` to val and the rest to train (GRID ``seen4``: about 900/50/50).
  A speaker always keeps at least one training clip.
- ``unseen``: disjoint speaker lists per part (GRID ``unseen``).
- ``lists``: the manifest's own ``split`` column (Lip2Wav: split by whole video).
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.paths import features_root, store_path

PARTS = ("train", "val", "test")
KINDS = ("seen", "unseen", "lists")


def split_config(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The named split, checked: a clear error names the known ones."""
    splits = params.get("splits") or {}
    if name not in splits:
        raise ConfigError(f"params.yaml has no split '{name}'; known: {', '.join(sorted(splits))}")
    cfg = dict(splits[name])
    if cfg.get("kind") not in KINDS:
        raise ConfigError(f"split '{name}' kind must be one of {KINDS}, not {cfg.get('kind')!r}")
    return cfg


def split_speakers(cfg: Mapping[str, Any]) -> list[str]:
    """Every speaker the split reads, in a stable order."""
    if cfg["kind"] == "unseen":
        names = [s for part in PARTS for s in cfg.get(part, [])]
    else:
        names = list(cfg.get("speakers", []))
    return list(dict.fromkeys(names))


def split_stores(params: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[Path]:
    """Stores of the split's speakers under the corpus' ``features_root``; all must exist."""
    corpus = cfg.get("corpus", "grid")
    root = features_root(params, corpus)
    stores = [store_path(root, s) for s in split_speakers(cfg)]
    missing = [s.name for s in stores if not s.is_dir()]
    if missing:
        raise ConfigError(
            f"split needs stores that do not exist under {root}: {', '.join(missing)}; "
            f"add those speakers to {corpus}.speakers and run dvc repro"
        )
    return stores


def _speaker_seed(seed: int, speaker: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(speaker.encode())) % (2**32)


def assign_parts(clips: pd.DataFrame, cfg: Mapping[str, Any], seed: int) -> pd.Series:
    """``train``/``val``/``test`` (or None: not in this split) for each kept clip row."""
    parts = pd.Series([None] * len(clips), index=clips.index, dtype=object)
    kind = cfg["kind"]
    if kind == "lists":
        wanted = set(cfg.get("speakers") or clips["speaker"].unique())
        mask = clips["speaker"].isin(wanted) & clips["split"].isin(PARTS)
        parts[mask] = clips.loc[mask, "split"]
        return parts
    if kind == "unseen":
        for part in PARTS:
            parts[clips["speaker"].isin(cfg.get(part, []))] = part
        return parts
    n_val, n_test = int(cfg.get("val_per_speaker", 0)), int(cfg.get("test_per_speaker", 0))
    for speaker in cfg.get("speakers", []):
        rows = clips.index[clips["speaker"] == speaker]
        order = np.random.default_rng(_speaker_seed(seed, speaker)).permutation(
            sorted(rows, key=lambda i: clips.at[i, "clip_id"]))
        spare = max(0, len(order) - 1)  # always keep one clip for training
        test = min(n_test, spare)
        val = min(n_val, spare - test)
        parts[order[:test]] = "test"
        parts[order[test:test + val]] = "val"
        parts[order[test + val:]] = "train"
    return parts


def part_filter(cfg: Mapping[str, Any], part: str, seed: int) -> Callable[[pd.DataFrame], Any]:
    """A ``split_filter`` for :class:`lipflow.models.dataset.ClipWindowDataset` keeping one part."""
    if part not in PARTS:
        raise ConfigError(f"split part must be one of {PARTS}, not {part!r}")

    def keep(clips: pd.DataFrame) -> np.ndarray:
        return (assign_parts(clips, cfg, seed) == part).to_numpy()

    return keep
