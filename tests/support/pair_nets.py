"""A tiny two-optimiser "GAN" nets module for the trainer's tests.

It uses every optional hook a nets module may define (``optimisers``, ``schedulers``,
``train_step``, ``to_waveform``), draws noise and dropout from torch's global RNG as
VCA-GAN does, and steps a discriminator then a generator, so exact resume is tested on
the machinery a GAN needs, not only on the one-loss default. Register it with
:func:`pair_spec` (``monkeypatch.setitem(registry.MODELS, "pair", pair_spec())``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipflow.models.registry import ModelSpec
from lipflow.models.training_step import StepContext

#: shapes of the spectrogram rows ``to_waveform`` was given, newest last
WAVEFORM_CALLS: list[tuple[int, ...]] = []


def pair_spec() -> ModelSpec:
    return ModelSpec("pair", __name__, "mouth", "speech")


class Pair(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.generator = nn.Sequential(nn.Linear(16 + 4, 32), nn.ReLU(), nn.Dropout(0.2),
                                       nn.Linear(32, 80))
        self.discriminator = nn.Sequential(nn.Linear(80, 16), nn.LeakyReLU(0.2),
                                           nn.Linear(16, 1))

    def fake(self, video: torch.Tensor, mel_frames: int) -> torch.Tensor:
        x = F.adaptive_avg_pool2d(video.float() / 255.0, (4, 4)).flatten(2)  # (B, T, 16)
        noise = torch.randn(*x.shape[:2], 4, device=x.device)
        frames = self.generator(torch.cat([x, noise], dim=-1))  # (B, T, 80)
        up = F.interpolate(frames.transpose(1, 2), size=mel_frames, mode="linear")
        return torch.tanh(up.transpose(1, 2)) * 4.0  # a Lip2Wav mel's range


def build(cfg: Mapping[str, Any]) -> Pair:
    return Pair()


def loss(model: Pair, batch: Mapping[str, Any]) -> torch.Tensor:
    real = batch["mel"]
    return F.l1_loss(model.fake(batch["video"], real.shape[1]), real)


def predict(model: Pair, batch: Mapping[str, Any]) -> torch.Tensor:
    return model.fake(batch["video"], batch["mel"].shape[1])


def optimisers(model: Pair, cfg: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    return {"generator": torch.optim.Adam(model.generator.parameters(), lr=float(cfg["lr"])),
            "discriminator": torch.optim.Adam(model.discriminator.parameters(),
                                              lr=float(cfg["lr"]) * 2, amsgrad=True)}


def schedulers(opts: Mapping[str, torch.optim.Optimizer],
               cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {"generator": torch.optim.lr_scheduler.StepLR(opts["generator"], 1, gamma=0.5),
            "discriminator": torch.optim.lr_scheduler.MultiStepLR(opts["discriminator"], [2],
                                                                  gamma=0.1)}


def train_step(model: Pair, batch: Mapping[str, Any],
               opts: Mapping[str, torch.optim.Optimizer], ctx: StepContext) -> dict[str, float]:
    real = batch["mel"]
    fake = model.fake(batch["video"], real.shape[1])
    d_loss = (F.softplus(-model.discriminator(real)).mean()
              + F.softplus(model.discriminator(fake.detach())).mean())
    opts["discriminator"].zero_grad(set_to_none=True)
    d_loss.backward()
    opts["discriminator"].step()
    rec = F.l1_loss(fake, real)
    g_loss = F.softplus(-model.discriminator(fake)).mean() + 10.0 * rec
    opts["generator"].zero_grad(set_to_none=True)
    g_loss.backward()
    opts["generator"].step()
    return {"loss": float(g_loss.detach()), "d_loss": float(d_loss.detach()),
            "rec": float(rec.detach())}


def to_waveform(spectrogram: np.ndarray, mel_params: Mapping[str, Any]) -> np.ndarray:
    from lipflow.tasks.features.mel import inv_mel_spectrogram

    WAVEFORM_CALLS.append(tuple(spectrogram.shape))
    return inv_mel_spectrogram(spectrogram, {**mel_params, "griffin_lim_iters": 2})
