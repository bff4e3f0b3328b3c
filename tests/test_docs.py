"""The written data contracts match the code: params keys, manifest columns, store arrays."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from lipflow.tasks.contracts import jpeg_codec
from lipflow.tasks.contracts.clip_manifest import CLIP_COLUMNS
from lipflow.tasks.contracts.raw_manifest import RAW_COLUMNS
from lipflow.tasks.contracts.store_layout import (
    ARRAY_DTYPES,
    CODECS,
    DEFAULT_JPEG_QUALITY,
    encoding_record,
)

#: Named collections: their entries are documented once, as ``<name>``.
COLLECTIONS = ("lip2wav.presets", "splits")


def documented_keys(params: dict, prefix: str = "") -> set[str]:
    """Dotted keys down to leaves, an entry of a named collection spelt ``<name>``."""
    keys = set()
    for key, value in params.items():
        dotted = f"{prefix}{key}"
        if prefix.rstrip(".") in COLLECTIONS:
            dotted = f"{prefix}<name>"
        if isinstance(value, dict):
            keys |= documented_keys(value, f"{dotted}.")
        else:
            keys.add(dotted)
    return keys


def test_every_param_key_is_documented(project_root: Path) -> None:
    """docs/params.md is generated from the schema (tests/test_settings.py); this checks
    the other direction: each key the project's file sets has its row."""
    params = yaml.safe_load((project_root / "params.yaml").read_text())
    doc = (project_root / "docs/params.md").read_text()
    named = set(re.findall(r"`([a-z_0-9<>]+(?:\.[a-z_0-9<>]+)+)`", doc))
    # every preset a model documents (tiny, full, and a model's own such as avsync's grid)
    sizes = set(re.findall(r"`train\.[a-z_0-9]+\.([a-z_0-9]+)` \| preset \|", doc))
    named |= {k.replace("<size>", size) for k in named for size in sizes | {"tiny", "full"}}
    missing = sorted(k for k in documented_keys(params) if k not in named)
    assert not missing, f"params.yaml keys missing from docs/params.md: {missing}"


def test_manifest_columns_and_store_arrays_are_documented(project_root: Path) -> None:
    doc = (project_root / "docs/contracts.md").read_text()
    for column in (*RAW_COLUMNS, *CLIP_COLUMNS, *ARRAY_DTYPES):
        assert f"`{column}`" in doc, column


def test_store_codecs_and_encoding_attribute_are_documented(project_root: Path) -> None:
    """Section 4 names every ``features.store.codec`` and each key of the group's
    ``encoding`` attribute, with the JPEG defaults the writer really uses."""
    section = (project_root / "docs/contracts.md").read_text().split("## 4.")[1].split("## 5.")[0]
    record = encoding_record("jpeg", 3, 5, 64, DEFAULT_JPEG_QUALITY)
    for name in (*CODECS, *record, jpeg_codec.NAME):
        assert f"`{name}`" in section, name
    for key, quality in DEFAULT_JPEG_QUALITY.items():
        assert f"`jpeg_{key}_quality` = {quality}" in section, key


def test_store_publish_rule_is_documented(project_root: Path) -> None:
    """Section 4 states the publish rule for stores at URLs with the marker's real name and
    every key the writer records in it; operations.md tells users the same marker."""
    from lipflow.tasks.contracts.store_publish import MARKER, MARKER_KEYS

    section = (project_root / "docs/contracts.md").read_text().split("## 4.")[1].split("## 5.")[0]
    assert f"`<store>/{MARKER}`" in section
    for key in MARKER_KEYS:
        assert f"`{key}`" in section, key
    assert f"`<store>/{MARKER}`" in (project_root / "docs/operations.md").read_text()
