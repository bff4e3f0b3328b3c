"""Fixtures for the seed-model tests: real GRID speech and a tiny in-memory batch set."""

from __future__ import annotations

import subprocess
from functools import cache
from pathlib import Path

import numpy as np
import pytest
import torch

from lipflow.tasks.common.executables import ffmpeg_exe

SAMPLE_CLIP = Path(__file__).resolve().parents[2] / "data/samples/grid/s1/bbaf2n.mpg"


@cache
def grid_speech_16k() -> np.ndarray:
    """The audio of s1/bbaf2n.mpg as 16 kHz mono int16 (about 3 s of real speech)."""
    cmd = [
        ffmpeg_exe(),
        "-v",
        "error",
        "-i",
        str(SAMPLE_CLIP),
        "-vn",
        "-ac",
        "1",
        "-ar",
        "16000",
        "-f",
        "s16le",
        "-",
    ]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    return np.frombuffer(raw, dtype=np.int16).copy()


def fake_clip(seed: int, frames: int = 75, kind: str = "face", mouth_hw=(60, 100)) -> dict:
    """One dataset item in the batch format, random but seeded; wav is real speech."""
    g = torch.Generator().manual_seed(seed)
    if kind == "face":
        video = torch.randint(0, 256, (frames, 96, 96, 3), generator=g, dtype=torch.uint8)
    else:
        video = torch.randint(0, 256, (frames, *mouth_hw), generator=g, dtype=torch.uint8)
    wav = np.zeros(48000, dtype=np.int16)
    speech = grid_speech_16k()[:48000]
    wav[: len(speech)] = speech
    return {
        "video": video,
        "mel": torch.rand(frames * 80 // 25, 80, generator=g) * 8 - 4,
        "mfec": torch.randn(frames * 2, 40, 3, generator=g),
        "wav": torch.from_numpy(wav),
        "valid_frames": torch.tensor(frames),
    }


def tiny_cfg(model_name: str, **overrides) -> dict:
    """The tiny preset of params.yaml's train section for ``model_name``, with overrides."""
    from lipflow.models.registry import model_config
    from lipflow.tasks.settings.project import load_params

    cfg = model_config(
        load_params(Path(__file__).resolve().parents[2] / "params.yaml")["train"],
        model_name,
        size="tiny",
    )
    cfg.update(overrides)
    return cfg


def fit(loss_fn, model, batch: dict, optimiser, steps: int) -> list[float]:
    """``steps`` plain optimisation steps of ``loss_fn(model, batch)`` on one batch (the
    seed-model tests' overfit check); the loss of each step."""
    losses = []
    for _ in range(steps):
        value = loss_fn(model, batch)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        losses.append(float(value.detach()))
    return losses


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine two spinning OpenMP threads make
    small models 10-50x slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
