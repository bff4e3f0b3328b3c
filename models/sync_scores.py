"""Per-clip audio-visual sync scores written into a store's clip manifest.

The trained coupled 3D CNN (``avsync``) compares each clip's mouth frames with its MFEC
cube at audio offsets within +-15 frames; the clip's score is how clearly one offset
wins, and that offset is recorded too, so out-of-sync clips can be filtered
(``ClipWindowDataset(..., split_filter=lambda m: m.sync_offset_frames.abs() <= 1)``).
The manifest is rewritten whole through a temp file; the store is not touched.
"""

from __future__ import annotations

from pathlib import Path

import torch

from lipflow.models.evaluation import load_model
from lipflow.models.nets.avsync import sync_offsets
from lipflow.tasks.contracts.clip_manifest import read_clip_manifest, write_clip_manifest
from lipflow.tasks.contracts.store_layout import manifest_path_for
from lipflow.tasks.contracts.store_reader import read_store


def score_store(store: Path, checkpoint: Path, max_offset_frames: int = 15) -> Path:
    """Score every kept clip of ``store``; return the rewritten manifest's path."""
    model, _cfg = load_model("avsync", checkpoint, torch.device("cpu"))
    group = read_store(store)
    manifest_path = manifest_path_for(store)
    clips = read_clip_manifest(manifest_path)
    scores: list[float | None] = [None] * len(clips)
    offsets: list[int | None] = [None] * len(clips)
    mouth, mfec, valid = group["mouth"], group["mfec"], group["valid_frames"][:]
    with torch.no_grad():
        for row, index in enumerate(clips["store_index"]):
            if index < 0:
                continue
            score, offset = sync_offsets(model, mouth[index], mfec[index],
                                         max_offset_frames=max_offset_frames,
                                         valid_frames=int(valid[index]))
            scores[row], offsets[row] = float(score), int(offset)
    rows = clips.to_dict("records")
    for row, score, offset in zip(rows, scores, offsets, strict=True):
        for key, value in row.items():  # pandas reads nulls as NaN; the schema wants None
            if isinstance(value, float) and value != value:
                row[key] = None
        row["sync_score"], row["sync_offset_frames"] = score, offset
    write_clip_manifest(rows, manifest_path)
    return manifest_path
