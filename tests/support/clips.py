"""Fake per-clip files (docs/contracts.md section 2) and stores built from them.

Content is random but seeded, so tests are repeatable; face and mouth frames are tiny
(a few pixels) to keep stores small, while the audio-side shapes are the contract's own
(48000 samples, 241 mel frames, 149 MFEC frames for a 3-second clip at 16 kHz).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lipflow.tasks.contracts.clip_manifest import write_clip_manifest
from lipflow.tasks.contracts.clip_record import ClipFile, save_clip
from lipflow.tasks.contracts.store_layout import manifest_path_for
from lipflow.tasks.contracts.store_writer import write_store

SAMPLE_RATE_HZ = 16000
CLIP_SECONDS = 3


def fake_clip(
    seed: int,
    *,
    fps: int = 25,
    face_px: int = 8,
    mouth_hw: tuple[int, int] = (6, 10),
    valid_frames: int | None = None,
    zero_padding: bool = False,
) -> dict[str, np.ndarray]:
    """One clip's arrays with the contract's keys, shapes and dtypes.

    ``zero_padding`` blanks the video frames past ``valid_frames``, as preprocessing pads
    a short clip: chunks that are all zeros are then never written (zarr skips chunks
    equal to the fill value), which readers must handle.
    """
    rng = np.random.default_rng(seed)
    frames = fps * CLIP_SECONDS
    samples = SAMPLE_RATE_HZ * CLIP_SECONDS
    valid = frames if valid_frames is None else valid_frames
    face = rng.integers(0, 256, (frames, face_px, face_px, 3), dtype=np.uint8)
    mouth = rng.integers(0, 256, (frames, *mouth_hw), dtype=np.uint8)
    if zero_padding:
        face[valid:], mouth[valid:] = 0, 0
    return {
        "face": face,
        "mouth": mouth,
        "wav": rng.integers(-3000, 3000, samples, dtype=np.int16),
        "mel": rng.uniform(-4, 4, (samples // 200 + 1, 80)).astype(np.float32),
        "mfec": rng.normal(size=(149, 40, 3)).astype(np.float32),
        "valid_frames": np.array(valid),
        "valid_samples": np.array(valid * SAMPLE_RATE_HZ // fps),
    }


def write_fake_clips(folder: Path, count: int, *, seed: int = 0, suffix: str = ".npy",
                     **kwargs: Any) -> list[Path]:
    """Write ``count`` fake clips as ``folder/clip_000.npy``... and return their paths.

    ``.npy`` files are written as preprocessing writes them (``save_clip``); ``.npz``
    as plain ``np.savez`` archives, which stores accept too.
    """
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = folder / f"clip_{i:03d}{suffix}"
        arrays = fake_clip(seed * 1000 + i, **kwargs)
        if suffix == ".npz":
            np.savez(path, **arrays)
        else:
            save_clip(path, arrays)
        paths.append(path)
    return paths


def clip_rows(
    paths: Sequence[Path],
    *,
    speaker: str = "s1",
    fps: int = 25,
    splits: Sequence[str | None] | None = None,
    rejected: int = 0,
) -> list[dict[str, Any]]:
    """Clip-manifest rows for ``paths`` (kept, in store order) plus ``rejected`` rejects."""
    rows = []
    for i, path in enumerate(paths):
        with ClipFile(path) as npz:
            valid_frames = int(npz["valid_frames"])
            valid_samples = int(npz["valid_samples"])
        rows.append(
            {
                "clip_id": f"{speaker}/utt{i:03d}/0",
                "corpus": "grid",
                "speaker": speaker,
                "utterance_id": f"utt{i:03d}",
                "language": "en",
                "split": splits[i] if splits else None,
                "source_path": f"{speaker}/utt{i:03d}.mpg",
                "start_s": 0.0,
                "end_s": float(CLIP_SECONDS),
                "fps": float(fps),
                "num_frames": fps * CLIP_SECONDS,
                "num_samples": SAMPLE_RATE_HZ * CLIP_SECONDS,
                "valid_frames": valid_frames,
                "valid_samples": valid_samples,
                "detection_rate": 1.0,
                "mean_face_px": 120.0,
                "keypoint_jitter": 0.01,
                "mouth_occluded_frac": 0.0 if i % 2 else 0.5,
                "duplicate_frame_frac": 0.0,
                "av_offset_frames": i % 3 - 1,
                "av_sync_confidence": 0.4,
                "transcript": "bin blue at f two now",
                "word_timings": [{"word": "bin", "start_s": 0.5, "end_s": 0.8}],
                "kept": True,
                "reject_reason": None,
                "store_index": i,
            }
        )
    for j in range(rejected):
        rows.append(
            {
                **rows[0],
                "clip_id": f"{speaker}/bad{j:03d}/0",
                "utterance_id": f"bad{j:03d}",
                "source_path": f"{speaker}/bad{j:03d}.mpg",
                "kept": False,
                "reject_reason": "no face detected in 40% of frames",
                "store_index": -1,
            }
        )
    return rows


def store_attrs(speaker: str = "s1", fps: int = 25) -> dict[str, Any]:
    """Deterministic group attributes like the ones the prepare flow passes."""
    return {
        "lipflow_version": "0.1.0",
        "git_revision": "0" * 40,
        "params": {
            "preprocess": {"clip_seconds": CLIP_SECONDS, "sample_rate_hz": SAMPLE_RATE_HZ},
            "features": {
                "mel": {"sample_rate_hz": SAMPLE_RATE_HZ, "hop_samples": 200, "n_mels": 80},
                "mfec": {"frame_seconds": 0.02, "stride_seconds": 0.02, "n_filters": 40},
            },
        },
        "raw_manifest_sha256": "f" * 64,
        "corpus": "grid",
        "speaker": speaker,
        "fps": fps,
    }


def build_store(
    folder: Path,
    count: int,
    *,
    speaker: str = "s1",
    fps: int = 25,
    clips_per_shard: int = 4,
    splits: Sequence[str | None] | None = None,
    rejected: int = 0,
    seed: int = 0,
    store_kwargs: dict[str, Any] | None = None,
    **clip_kwargs: Any,
) -> tuple[Path, list[Path]]:
    """A store ``folder/<speaker>.zarr`` plus its manifest; returns (store, clip paths).

    ``store_kwargs`` go to :func:`write_store` (``codec``, ``frames_per_chunk``, ...).
    """
    paths = write_fake_clips(folder / f"{speaker}_clips", count, seed=seed, fps=fps, **clip_kwargs)
    store = write_store(
        paths,
        folder / f"{speaker}.zarr",
        attrs=store_attrs(speaker, fps),
        clips_per_shard=clips_per_shard,
        progress=False,
        **(store_kwargs or {}),
    )
    rows = clip_rows(paths, speaker=speaker, fps=fps, splits=splits, rejected=rejected)
    write_clip_manifest(rows, manifest_path_for(store))
    return store, paths
