"""Named train/val/test splits from ``params.yaml`` (``splits:``), applied to clip manifests.

Four kinds, each deterministic (no dependence on worker order or run):

- ``seen``: the same speakers in every part; per speaker, clips are shuffled with a seed
  derived from ``train.seed`` and the speaker name, then ``test_per_speaker`` go to test,
  ``val_per_speaker`` to val and the rest to train (GRID ``seen4_random``: about
  900/50/50). A speaker always keeps at least one training clip.
- ``unseen``: disjoint speaker lists per part.
- ``lists``: the manifest's own ``split`` column (Lip2Wav: split by whole video).
- ``lists_file``: utterance lists in files, one per part (GRID ``seen4``, ``overlap`` and
  ``unseen``: VCA-GAN's published protocols, shipped in ``models/split_lists/``). Papers
  compare on these exact utterances, so a seeded draw of the same sizes would not give
  comparable figures.

A ``lists_file`` line names one utterance by a path, ``[part/]speaker/.../utterance[.ext]``
(``s1/video/sbag8n.mp4``, ``s14/video/mpg_6000/srwt9p``, ``val/s20/prwo5p``): the first
component after an optional part name is the speaker, the last one without its extension
the utterance id, matched against the manifest's ``speaker`` and ``utterance_id`` (every
clip cut from an utterance goes where the utterance goes). A line with a part prefix
counts only for that part, so one file can hold all three (``unseen_splits.txt``). Two
parts may name the same list (VCA-GAN's overlapped protocol scores its test figures on its
val list), but no training utterance may also be in val or test.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.common.object_store import is_url, name_of
from lipflow.tasks.settings.paths import features_root, store_path

PARTS = ("train", "val", "test")
KINDS = ("seen", "unseen", "lists", "lists_file")
#: Where the published lists shipped with lipflow live (package data), one folder a set.
LISTS_ROOT = Path(__file__).resolve().parent / "split_lists"


def split_config(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The named split, checked: a clear error names the known ones."""
    splits = params.get("splits") or {}
    if name not in splits:
        raise ConfigError(f"params.yaml has no split '{name}'; known: {', '.join(sorted(splits))}")
    cfg = dict(splits[name])
    if cfg.get("kind") not in KINDS:
        raise ConfigError(f"split '{name}' kind must be one of {KINDS}, not {cfg.get('kind')!r}")
    return cfg


def _natural(name: str) -> list[Any]:
    """Sort key putting ``s2`` before ``s10``."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def split_speakers(cfg: Mapping[str, Any]) -> list[str]:
    """Every speaker the split reads, in a stable order."""
    if cfg["kind"] == "unseen":
        names = [s for part in PARTS for s in cfg.get(part, [])]
    elif cfg["kind"] == "lists_file" and not cfg.get("speakers"):
        ids = set().union(*list_parts(cfg).values())
        names = sorted({key.split("/", 1)[0] for key in ids}, key=_natural)
    else:
        names = list(cfg.get("speakers", []))
    return list(dict.fromkeys(names))


def _store_exists(store: Path | str) -> bool:
    """A local store folder, or a *published* store at a URL (its marker object)."""
    if not is_url(store):
        return Path(store).is_dir()
    from lipflow.tasks.contracts.store_layout import StoreError
    from lipflow.tasks.contracts.store_publish import require_published

    try:
        require_published(str(store))
    except StoreError:
        return False
    return True


def split_stores(params: Mapping[str, Any], cfg: Mapping[str, Any]) -> list[Path | str]:
    """Stores of the split's speakers under the corpus' ``features_root``; all must exist."""
    corpus = cfg.get("corpus", "grid")
    root = features_root(params, corpus)
    stores = [store_path(root, s) for s in split_speakers(cfg)]
    missing = [name_of(s) for s in stores if not _store_exists(s)]
    if missing:
        raise ConfigError(
            f"split needs stores that do not exist under {root}: {', '.join(missing)}; "
            f"add those speakers to {corpus}.speakers and run dvc repro"
        )
    return stores


# --------------------------------------------------------------------------- list files


def lists_dir(cfg: Mapping[str, Any]) -> Path:
    """The folder of a ``lists_file`` split's files: a name under :data:`LISTS_ROOT`
    (shipped with lipflow), else a path."""
    name = str(cfg.get("lists") or "")
    if not name:
        raise ConfigError("a lists_file split needs `lists`: a folder of list files")
    folder = LISTS_ROOT / name if (LISTS_ROOT / name).is_dir() else Path(name)
    if not folder.is_dir():
        known = sorted(p.name for p in LISTS_ROOT.iterdir() if p.is_dir())
        raise ConfigError(f"split lists '{name}' is neither a folder of models/split_lists "
                          f"({', '.join(known)}) nor a folder")
    return folder


def parse_list_line(line: str) -> tuple[str | None, str, str]:
    """``(part or None, speaker, utterance id)`` of one list line (see the module doc)."""
    parts = [p for p in line.strip().split("/") if p]
    prefix = parts.pop(0) if parts and parts[0] in PARTS else None
    if len(parts) < 2:
        raise ValueError(f"expected [part/]speaker/.../utterance, got {line.strip()!r}")
    return prefix, parts[0], parts[-1].rsplit(".", 1)[0]


@cache
def _list_ids(path: Path, part: str) -> frozenset[str]:
    """``speaker/utterance`` ids ``path`` lists for ``part`` (parsed once per process)."""
    if not path.is_file():
        raise ConfigError(f"split list {path} does not exist")
    ids = []
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        try:
            prefix, speaker, utterance = parse_list_line(line)
        except ValueError as err:
            raise ConfigError(f"{path}:{number}: {err}") from None
        if prefix in (None, part):
            ids.append(f"{speaker}/{utterance}")
    if not ids:
        raise ConfigError(f"split list {path} names no {part} utterances")
    return frozenset(ids)


def list_parts(cfg: Mapping[str, Any]) -> dict[str, frozenset[str]]:
    """``speaker/utterance`` ids of each part of a ``lists_file`` split (empty: no list),
    kept to ``speakers`` when the split names some; a training utterance that is also in
    val or test is an error (the scores would be of clips the model was trained on)."""
    folder = lists_dir(cfg)
    keep = set(cfg.get("speakers") or [])
    parts: dict[str, frozenset[str]] = {}
    for part in PARTS:
        name = cfg.get(f"{part}_list") or ""
        ids = _list_ids(folder / name, part) if name else frozenset()
        parts[part] = frozenset(i for i in ids if i.split("/", 1)[0] in keep) if keep else ids
    leak = parts["train"] & (parts["val"] | parts["test"])
    if leak:
        raise ConfigError(f"split lists in {folder} put {len(leak)} training utterances in val "
                          f"or test too (e.g. {sorted(leak)[0]})")
    return parts


# --------------------------------------------------------------------------- assignment


def _speaker_seed(seed: int, speaker: str) -> int:
    return (int(seed) * 1_000_003 + zlib.crc32(speaker.encode())) % (2**32)


def _utterance_keys(clips: pd.DataFrame) -> pd.Series:
    return clips["speaker"].astype(str) + "/" + clips["utterance_id"].astype(str)


def assign_parts(clips: pd.DataFrame, cfg: Mapping[str, Any], seed: int) -> pd.Series:
    """``train``/``val``/``test`` (or None: not in this split) for each kept clip row.

    A ``lists_file`` clip listed in two parts (val and test of the overlapped protocol)
    gets the first of train, val, test; :func:`part_filter` keeps it in both.
    """
    parts = pd.Series([None] * len(clips), index=clips.index, dtype=object)
    kind = cfg["kind"]
    if kind == "lists_file":
        keys = _utterance_keys(clips)
        for part, ids in reversed(list_parts(cfg).items()):
            parts[keys.isin(ids)] = part
        return parts
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


def part_mask(clips: pd.DataFrame, cfg: Mapping[str, Any], part: str, seed: int) -> np.ndarray:
    """Which kept clip rows belong to ``part``."""
    if part not in PARTS:
        raise ConfigError(f"split part must be one of {PARTS}, not {part!r}")
    if cfg["kind"] == "lists_file":
        return _utterance_keys(clips).isin(list_parts(cfg)[part]).to_numpy()
    return (assign_parts(clips, cfg, seed) == part).to_numpy()


def part_filter(cfg: Mapping[str, Any], part: str, seed: int) -> Callable[[pd.DataFrame], Any]:
    """A ``split_filter`` for :class:`lipflow.models.dataset.ClipWindowDataset` keeping one part."""
    if part not in PARTS:
        raise ConfigError(f"split part must be one of {PARTS}, not {part!r}")

    def keep(clips: pd.DataFrame) -> np.ndarray:
        return part_mask(clips, cfg, part, seed)

    return keep
