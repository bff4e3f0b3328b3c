"""The written data contracts match the code: params keys, manifest columns, store arrays."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from lipflow.tasks.contracts.clip_manifest import CLIP_COLUMNS
from lipflow.tasks.contracts.raw_manifest import RAW_COLUMNS
from lipflow.tasks.contracts.store_layout import ARRAY_DTYPES

#: Below these keys the values are presets documented as a group, not one by one.
GROUPS = ("lip2wav.presets", "features.mel", "features.mfec", "features.store",
          "train.lip2wav", "train.avsync", "train.gabor",
          "splits.sample", "splits.seen4", "splits.unseen", "splits.lip2wav_chem")


def documented_keys(params: dict, prefix: str = "") -> set[str]:
    """Dotted keys down to leaves, stopping at the documented groups."""
    keys = set()
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict) and dotted not in GROUPS:
            keys |= documented_keys(value, f"{dotted}.")
        else:
            keys.add(dotted)
    return keys


def test_every_param_key_is_documented(project_root: Path) -> None:
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    doc = (project_root / "docs/params.md").read_text()
    named = set(re.findall(r"`([a-z_0-9]+(?:\.[a-z_0-9]+)+)`", doc))
    missing = sorted(k for k in documented_keys(params) if k not in named)
    assert not missing, f"params.yaml keys missing from docs/params.md: {missing}"
    stale = sorted(k for k in named if k.split(".")[0] in params
                   and not _exists(params, k))
    assert not stale, f"docs/params.md names keys params.yaml lacks: {stale}"


def _exists(params: dict, dotted: str) -> bool:
    node = params
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def test_manifest_columns_and_store_arrays_are_documented(project_root: Path) -> None:
    doc = (project_root / "docs/contracts.md").read_text()
    for column in (*RAW_COLUMNS, *CLIP_COLUMNS, *ARRAY_DTYPES):
        assert f"`{column}`" in doc, column
