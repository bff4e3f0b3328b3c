"""VCA-GAN lip-to-speech: grey mouth video -> multi-scale mel GAN -> linear spectrogram.

After Kim, Hong and Ro, "Lip to Speech Synthesis with Visual Context Attentional GAN"
(NeurIPS 2021); written from the description in ``specs/vcagan.md`` (the original's
``train.py``, ``test.py``, ``src/models``). Seven top-level modules, named as in the
original's checkpoints:

* ``v_front``: a 3-D conv stem and a per-frame ResNet-18 trunk give ``phon`` (B, T, 512),
  the local visual features; a 2-layer bidirectional GRU and a linear layer give
  ``sent`` (B, 512, T), the global visual context;
* ``gen``: ``phon`` tiled over 20 frequency rows plus 128 noise channels, through
  residual blocks to three mels, g1 (20 x T), g2 (40 x 2T) and g3 (80 x 4T); between the
  scales a visual context attention (VCA) lets every output column attend to ``sent``;
* ``post``: 1-D convolutions from g3 to the 321-bin linear magnitude;
* ``dis1``-``dis3``: one discriminator per scale, each with an unconditional and a
  ``sent``-conditional head;
* ``sync_D``: an audio encoder whose per-frame embeddings are matched to ``phon`` (InfoNCE
  on the discriminator side, cosine on the generator side).

Training is :func:`train_step` (a discriminator step, then a generator step, two
optimisers: :func:`optimisers`), not one loss; :func:`loss` is the reconstruction loss
alone, the validation figure. The audio targets come from the stored ``wav``
(:mod:`lipflow.models.nets.vcagan_features`).

Video: the model reads lipflow's ``mouth`` stream, grey (B, T, H, W) uint8 (RGB
(B, T, H, W, 3) is converted with ITU-R 601 luma), resizes it to ``image_hw`` (112 x 112
in the paper; bilinear, antialiased) when it differs, scales it by
``(x / 255 - 0.4136) / 0.1700`` and, in training mode only, flips each clip horizontally
with probability 0.5 and zeroes one random square patch in every frame of it (see
:func:`augment_video`). The paper's crop is ``preprocess.mouth_preset: vcagan`` (its
136-px lower-face window placed on lipflow's 4-keypoint mean face, stored 112 x 112 grey;
``tasks/faces/crops.py``), which needs no resize; the default ``square`` 96 x 96 "nose to
chin" crop also trains, resized, but is not the region the published figures saw.

Sizes come from :class:`VcaGanConfig` (defaults: the paper's; params.yaml's ``tiny``
preset shrinks them). With the defaults every module's parameter count is the
original's (tests/test_models_vcagan.py). Two generalisations that leave the full-size
network unchanged: the trunk ends with a global average (the original's AvgPool2d(4) on
its 4 x 4 map at 112 x 112 input) so smaller inputs work, and the discriminators' context
is tiled to their feature map's own size (the original computes the same (5, T // 4)).
The clip must be 25 fps: the generator makes 4 spectrogram frames per video frame, the
features' 10-ms hop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from functools import cache
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipflow.models.nets.vcagan_features import (
    HOP_SAMPLES,
    N_BINS,
    N_FFT,
    N_MELS,
    PREEMPHASIS,
    VcaGanFeatures,
    mel_unscale,
)
from lipflow.models.runtime import TrainingError
from lipflow.models.training_step import StepContext
from lipflow.tasks.common.errors import ConfigError

#: linear-spectrogram frames per second of :func:`predict` (10-ms hop)
SPECTROGRAM_FRAMES_PER_SECOND = 100
SAMPLE_RATE_HZ = 16000
#: spectrogram frames per video frame (25 fps)
FRAMES_PER_VIDEO_FRAME = 4
FPS = 25.0
#: the grey-level mean and standard deviation the original normalises with
GREY_MEAN, GREY_STD = 0.4136, 0.1700
LUMA = (0.299, 0.587, 0.114)  # ITU-R 601
#: the discriminators' last 5x5 valid conv needs (T // 4) >= 5
MIN_TRAIN_FRAMES = 20
GRIFFIN_LIM_ITERS = 60
TOP_MODULES = ("v_front", "gen", "post", "dis1", "dis2", "dis3", "sync_D")


@dataclass
class VcaGanConfig:
    """Sizes and loss settings; the defaults are the paper's (the ``full`` preset)."""

    fps: float = FPS
    image_hw: list[int] = field(default_factory=lambda: [112, 112])
    front_channels: int = 64  # 3-D conv stem
    trunk_channels: list[int] = field(default_factory=lambda: [64, 128, 256, 512])
    trunk_blocks: int = 2  # BasicBlocks per trunk stage (ResNet-18: 2)
    gru_hidden: int = 512
    gru_layers: int = 2
    context_dim: int = 512  # ``sent``'s channels
    dropout: float = 0.3
    noise_channels: int = 128
    bottleneck_channels: list[int] = field(default_factory=lambda: [512, 256, 256])
    stage_channels: list[int] = field(default_factory=lambda: [128, 64, 32])  # g1, g2, g3
    attention_dim: int = 256
    disc_channels: int = 32  # first conv of each discriminator; doubled per block
    disc_max_channels: int = 512
    postnet_channels: list[int] = field(default_factory=lambda: [128, 256])
    sync_channels: list[int] = field(default_factory=lambda: [128, 256])
    temperature: float = 1.0  # InfoNCE
    sync_offset: float = 5.0  # the generator's sync loss is offset - mean |cos|
    rec_weight: float = 50.0
    milestones: list[int] = field(default_factory=lambda: [500, 800])  # epochs
    gamma: float = 0.1
    augment: bool = True  # flip + random zero patch in training mode

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> VcaGanConfig:
        """Pick this model's keys out of a (merged) train config; ignore the rest."""
        names = {f.name for f in fields(cls)}
        made = cls(**{k: v for k, v in cfg.items() if k in names})
        made.check()
        return made

    def check(self) -> None:
        """One-line errors for sizes the network cannot be built with."""
        if abs(float(self.fps) - FPS) > 1e-6:
            raise ConfigError(f"vcagan makes {FRAMES_PER_VIDEO_FRAME} spectrogram frames per "
                              f"video frame, so it needs 25 fps video, not {self.fps:g}")
        lists = {"image_hw": 2, "trunk_channels": 4, "bottleneck_channels": 3,
                 "stage_channels": 3, "postnet_channels": 2, "sync_channels": 2}
        for name, length in lists.items():
            value = getattr(self, name)
            if len(value) != length or any(int(v) < 1 for v in value):
                raise ConfigError(f"train.vcagan.{name} must be {length} positive ints, "
                                  f"got {value}")
        if any(c % 2 for c in self.stage_channels[:2]):
            raise ConfigError("train.vcagan.stage_channels: g1 and g2 must be even (the VCA "
                              f"output has half their channels), got {self.stage_channels}")
        if min(self.image_hw) < 16:
            raise ConfigError(f"train.vcagan.image_hw must be at least 16x16, got {self.image_hw}")
        if self.gru_layers < 1 or self.trunk_blocks < 1:
            raise ConfigError("train.vcagan.gru_layers and trunk_blocks must be >= 1")

    @property
    def phon_dim(self) -> int:
        return int(self.trunk_channels[-1])


# --------------------------------------------------------------------------- visual front


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 conv-BN, identity (or 1x1 conv-BN) shortcut."""

    def __init__(self, cin: int, cout: int, stride: int = 1, prelu: bool = True):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act1: nn.Module = nn.PReLU(cout) if prelu else nn.ReLU()
        self.act2: nn.Module = nn.PReLU(cout) if prelu else nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn2(self.conv2(self.act1(self.bn1(self.conv1(x)))))
        return self.act2(out + self.shortcut(x))


class VisualFront(nn.Module):
    """(B, 1, T, H, W) normalised grey -> (phon (B, T, D), sent (B, C, T))."""

    def __init__(self, cfg: VcaGanConfig):
        super().__init__()
        c0 = cfg.front_channels
        self.stem = nn.Sequential(
            nn.Conv3d(1, c0, (5, 7, 7), (1, 2, 2), (2, 3, 3), bias=False),
            nn.BatchNorm3d(c0), nn.PReLU(c0),
            nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1)),
        )
        layers: list[nn.Module] = []
        cin = c0
        for i, cout in enumerate(cfg.trunk_channels):
            for j in range(cfg.trunk_blocks):
                layers.append(BasicBlock(cin, cout, stride=2 if (i > 0 and j == 0) else 1))
                cin = cout
        self.trunk = nn.Sequential(*layers)
        self.dropout = nn.Dropout(cfg.dropout)
        self.gru = nn.GRU(cfg.phon_dim, cfg.gru_hidden, cfg.gru_layers, batch_first=True,
                          bidirectional=True, dropout=cfg.dropout if cfg.gru_layers > 1 else 0.0)
        self.fc = nn.Linear(2 * cfg.gru_hidden, cfg.context_dim)
        for m in self.trunk.modules():  # the original's ResNet init (stem: torch defaults)
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.stem(x)  # (B, C, T, H/4, W/4)
        b, c, t, h, w = x.shape
        x = self.trunk(x.transpose(1, 2).reshape(b * t, c, h, w))
        phon = self.dropout(x.mean(dim=(2, 3))).view(b, t, -1)  # (B, T, D)
        sentence, _ = self.gru(phon)
        return phon, self.fc(sentence).transpose(1, 2)  # (B, C, T)


# --------------------------------------------------------------------------- generator


class GenResBlk(nn.Module):
    """BN-LReLU-[x2]-conv5-BN-LReLU-conv5 plus a ([x2], 1x1) shortcut, summed / sqrt 2."""

    def __init__(self, cin: int, cout: int, upsample: bool = False):
        super().__init__()
        self.upsample = upsample
        self.norm1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 5, 1, 2)
        self.norm2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 5, 1, 2)
        self.conv1x1 = nn.Conv2d(cin, cout, 1, 1, 0, bias=False) if cin != cout else None

    def _up(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, scale_factor=2, mode="nearest") if self.upsample else x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv1(self._up(F.leaky_relu(self.norm1(x), 0.2)))
        r = self.conv2(F.leaky_relu(self.norm2(r), 0.2))
        s = self._up(x)
        if self.conv1x1 is not None:
            s = self.conv1x1(s)
        return (r + s) / math.sqrt(2)


class VisualContextAttention(nn.Module):
    """Each time column of a (B, C, F, T') map attends over ``sent``'s T frames.

    q from the column (C*F values), k and v from ``sent``; keys past a clip's valid frames
    are masked; the attended value becomes (B, C // 2, F, T') through one linear layer.
    """

    def __init__(self, channels: int, rows: int, context_dim: int, dim: int):
        super().__init__()
        self.dim = dim
        self.q = nn.Linear(channels * rows, dim)
        self.k = nn.Linear(context_dim, dim)
        self.v = nn.Linear(context_dim, dim)
        self.out = nn.Linear(dim, rows * (channels // 2))

    def forward(self, g: torch.Tensor, sent: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        b, c, f, t = g.shape
        ctx = sent.transpose(1, 2)  # (B, S, C)
        q = self.q(g.reshape(b, c * f, t).transpose(1, 2))  # (B, T', dim)
        scores = torch.bmm(q, self.k(ctx).transpose(1, 2)) / math.sqrt(self.dim)  # (B, T', S)
        keys = torch.arange(ctx.shape[1], device=g.device).view(1, 1, -1)
        scores = scores.masked_fill(keys >= lengths.view(-1, 1, 1), float("-inf"))
        value = torch.bmm(torch.softmax(scores, dim=2), self.v(ctx))
        return self.out(value).view(b, t, f, -1).permute(0, 3, 2, 1)  # (B, C/2, F, T')


def _to_mel(channels: int) -> nn.Sequential:
    return nn.Sequential(nn.BatchNorm2d(channels), nn.LeakyReLU(0.2),
                         nn.Conv2d(channels, 1, 1, 1, 0), nn.Tanh())


class Generator(nn.Module):
    """(sent, phon, lengths) -> g1 (B,1,20,T), g2 (B,1,40,2T), g3 (B,1,80,4T) in [-1, 1]."""

    def __init__(self, cfg: VcaGanConfig):
        super().__init__()
        self.rows = N_MELS // 4
        self.noise_channels = cfg.noise_channels
        b0, b1, b2 = cfg.bottleneck_channels
        s1, s2, s3 = cfg.stage_channels
        self.bottleneck = nn.Sequential(GenResBlk(cfg.phon_dim + cfg.noise_channels, b0),
                                        GenResBlk(b0, b1), GenResBlk(b1, b2))
        self.g1 = nn.Sequential(GenResBlk(b2, s1), GenResBlk(s1, s1), GenResBlk(s1, s1))
        self.att1 = VisualContextAttention(s1, self.rows, cfg.context_dim, cfg.attention_dim)
        self.attconv1 = nn.Conv2d(s1 + s1 // 2, s1, 5, 1, 2)
        self.g2 = nn.Sequential(GenResBlk(s1, s2, upsample=True), GenResBlk(s2, s2),
                                GenResBlk(s2, s2))
        self.att2 = VisualContextAttention(s2, 2 * self.rows, cfg.context_dim, cfg.attention_dim)
        self.attconv2 = nn.Conv2d(s2 + s2 // 2, s2, 5, 1, 2)
        self.g3 = nn.Sequential(GenResBlk(s2, s3, upsample=True), GenResBlk(s3, s3),
                                GenResBlk(s3, s3))
        self.to_mel1, self.to_mel2, self.to_mel3 = _to_mel(s1), _to_mel(s2), _to_mel(s3)

    def forward(self, sent: torch.Tensor, phon: torch.Tensor, lengths: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, t, _ = phon.shape
        noise = torch.randn(b, self.noise_channels, self.rows, t, device=phon.device,
                            dtype=phon.dtype)
        x = phon.transpose(1, 2).unsqueeze(2).expand(-1, -1, self.rows, -1)
        x = self.g1(self.bottleneck(torch.cat([x, noise], 1)))
        g1 = x
        x = self.attconv1(torch.cat([x, self.att1(g1, sent, lengths)], 1))
        x = self.g2(x)
        g2 = x
        x = self.attconv2(torch.cat([x, self.att2(g2, sent, lengths)], 1))
        x = self.g3(x)
        return self.to_mel1(g1), self.to_mel2(g2), self.to_mel3(x)


class ResBlk1D(nn.Module):
    """LReLU-conv5-LReLU-conv5 plus a (1x1) shortcut, summed / sqrt 2; no norm."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv1d(cin, cin, 5, 1, 2)
        self.conv2 = nn.Conv1d(cin, cout, 5, 1, 2)
        self.conv1x1 = nn.Conv1d(cin, cout, 1, 1, 0, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = self.conv2(F.leaky_relu(self.conv1(F.leaky_relu(x, 0.2)), 0.2))
        s = self.conv1x1(x) if self.conv1x1 is not None else x
        return (r + s) / math.sqrt(2)


class Postnet(nn.Module):
    """g3 (B, 1, 80, F) -> linear magnitude (B, 1, 321, F)."""

    def __init__(self, cfg: VcaGanConfig):
        super().__init__()
        c1, c2 = cfg.postnet_channels
        self.net = nn.Sequential(
            nn.Conv1d(N_MELS, c1, 7, 1, 3), nn.BatchNorm1d(c1), nn.LeakyReLU(0.2),
            ResBlk1D(c1, c2), ResBlk1D(c2, c2), ResBlk1D(c2, c2),
            nn.Conv1d(c2, N_BINS, 1, 1, 0, bias=False),
        )

    def forward(self, mel: torch.Tensor) -> torch.Tensor:
        return self.net(mel.squeeze(1)).unsqueeze(1)


# --------------------------------------------------------------------------- discriminators


class ResBlk(nn.Module):
    """LReLU-conv5-avgpool2-LReLU-conv5 plus a (1x1)-avgpool2 shortcut, summed / sqrt 2."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cin, 5, 1, 2)
        self.conv2 = nn.Conv2d(cin, cout, 5, 1, 2)
        self.conv1x1 = nn.Conv2d(cin, cout, 1, 1, 0, bias=False) if cin != cout else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        r = F.avg_pool2d(self.conv1(F.leaky_relu(x, 0.2)), 2)
        r = self.conv2(F.leaky_relu(r, 0.2))
        s = self.conv1x1(x) if self.conv1x1 is not None else x
        return (F.avg_pool2d(s, 2) + r) / math.sqrt(2)


class _GlobalMean(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3))


class Discriminator(nn.Module):
    """A mel at one scale -> (unconditional, conditional) logits, each (B, 1).

    ``blocks`` residual blocks, each halving both axes, bring the scale's mel (20 x T with
    2 blocks, 40 x 2T with 3, 80 x 4T with 4) to (5, T // 4); the conditional head sees
    ``sent``'s time-mean tiled over that map.
    """

    def __init__(self, blocks: int, cfg: VcaGanConfig):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(1, cfg.disc_channels, 5, 1, 2)]
        cin = cfg.disc_channels
        for _ in range(blocks):
            cout = min(cin * 2, cfg.disc_max_channels)
            layers.append(ResBlk(cin, cout))
            cin = cout
        self.main = nn.Sequential(*layers)
        self.uncond = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(cin, cin, 5, 1, 0),
                                    nn.LeakyReLU(0.2), _GlobalMean(), nn.Linear(cin, 1))
        self.cond = nn.Sequential(nn.LeakyReLU(0.2), nn.Conv2d(cin + cfg.context_dim, cin, 5, 1, 2),
                                  nn.LeakyReLU(0.2), nn.Conv2d(cin, cin, 5, 1, 0),
                                  nn.LeakyReLU(0.2), _GlobalMean(), nn.Linear(cin, 1))

    def forward(self, mel: torch.Tensor, sent: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.main(mel)
        ctx = sent.mean(2)[:, :, None, None].expand(-1, -1, out.shape[2], out.shape[3])
        return self.uncond(out), self.cond(torch.cat([out, ctx.to(out.dtype)], 1))


class SyncDiscriminator(nn.Module):
    """A mel (B, 1, 80, 4T) -> per-frame audio embeddings (B, T, D), matched to ``phon``."""

    def __init__(self, cfg: VcaGanConfig):
        super().__init__()
        c1, c2 = cfg.sync_channels
        self.frontend = nn.Sequential(
            nn.Conv2d(1, c1, 3, 2, 1), nn.BatchNorm2d(c1), nn.PReLU(c1),
            nn.Conv2d(c1, c2, 3, 2, 1), nn.BatchNorm2d(c2), nn.PReLU(c2),
        )
        self.block = BasicBlock(c2, c2, prelu=False)  # the original's default ReLU block
        self.linear = nn.Linear(c2 * (N_MELS // 4), cfg.phon_dim)
        self.temperature = cfg.temperature
        self.offset = cfg.sync_offset

    def embed(self, mel: torch.Tensor) -> torch.Tensor:
        a = self.block(self.frontend(mel))  # (B, C, 20, T)
        b, c, f, t = a.shape
        return self.linear(a.reshape(b, c * f, t).transpose(1, 2))  # (B, T, D)

    def infonce(self, phon: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """Symmetric InfoNCE over each clip's time positions (the D-side loss), mean of B."""
        audio = self.embed(mel)
        v, a = F.normalize(phon, dim=2), F.normalize(audio.to(phon.dtype), dim=2)
        sim = torch.bmm(v, a.transpose(1, 2)).float() / self.temperature  # (B, T, T)
        va = torch.diagonal(F.log_softmax(sim, dim=2), dim1=-2, dim2=-1).mean(1)
        av = torch.diagonal(F.log_softmax(sim, dim=1), dim1=-2, dim2=-1).mean(1)
        return (-0.5 * (va + av)).mean()

    def generator_loss(self, phon: torch.Tensor, mel: torch.Tensor) -> torch.Tensor:
        """``offset - mean_t |cos(phon, audio(mel))|`` (the G-side loss), mean of B."""
        audio = self.embed(mel)
        cos = F.cosine_similarity(phon.float(), audio.float(), dim=2).abs().mean(1)
        return (self.offset - cos).mean()


# --------------------------------------------------------------------------- model


class VcaGan(nn.Module):
    """The seven modules of VCA-GAN, the audio features and the video input."""

    def __init__(self, cfg: VcaGanConfig):
        super().__init__()
        self.cfg = cfg
        self.v_front = VisualFront(cfg)
        self.gen = Generator(cfg)
        self.post = Postnet(cfg)
        self.dis1 = Discriminator(2, cfg)
        self.dis2 = Discriminator(3, cfg)
        self.dis3 = Discriminator(4, cfg)
        self.sync_D = SyncDiscriminator(cfg)
        self.features = VcaGanFeatures()

    def discriminators(self) -> tuple[Discriminator, Discriminator, Discriminator]:
        return self.dis1, self.dis2, self.dis3

    def video_input(self, video: torch.Tensor, augment: bool | None = None) -> torch.Tensor:
        """uint8 (B, T, H, W) grey or (B, T, H, W, 3) RGB -> normalised (B, 1, T, h, w).

        ``augment`` (default: in training mode, when ``cfg.augment``) applies
        :func:`augment_video`.
        """
        if video.ndim == 5 and video.shape[-1] == 3:
            grey = (video.float() * video.new_tensor(LUMA, dtype=torch.float32)).sum(-1)
        elif video.ndim == 4:
            grey = video.float()
        else:
            raise ValueError(f"vcagan expects video (B, T, H, W) or (B, T, H, W, 3), "
                             f"got {tuple(video.shape)}")
        b, t, h, w = grey.shape
        hw = tuple(int(v) for v in self.cfg.image_hw)
        if (h, w) != hw:
            grey = F.interpolate(grey.reshape(b * t, 1, h, w), size=hw, mode="bilinear",
                                 align_corners=False, antialias=True).view(b, t, *hw)
        x = ((grey / 255.0 - GREY_MEAN) / GREY_STD).unsqueeze(1)
        if augment is None:
            augment = self.training and self.cfg.augment
        return augment_video(x) if augment else x


def augment_video(x: torch.Tensor) -> torch.Tensor:
    """Per clip: horizontal flip with p = 0.5, then one square patch set to 0 in every frame.

    The original's patch is 56 x 56 at 112 x 112 with its top-left corner uniform in
    [-10, 66] (it may hang off the image); at other sizes the patch is half the height
    (width) and the overhang scales likewise: side ``round(H / 2)``, corner in
    ``[-round(10 H / 112), H - side + round(10 H / 112)]``. Zero is set after the
    normalisation, as in the original (the mean grey, not black). Draws come from torch's
    global CPU RNG (seeded by the trainer), so they do not depend on the device.
    """
    b, _, _, h, w = x.shape
    flip = (torch.rand(b) < 0.5).to(x.device)
    x = torch.where(flip.view(b, 1, 1, 1, 1), x.flip(4), x)
    corners = []
    for size in (h, w):
        side = round(size / 2)
        over = round(10 * size / 112)
        corners.append((side, torch.randint(-over, size - side + over + 1, (b,))))
    (sh, y0), (sw, x0) = corners
    rows = torch.arange(h).view(1, h)
    cols = torch.arange(w).view(1, w)
    in_rows = (rows >= y0.view(b, 1)) & (rows < (y0 + sh).view(b, 1))  # (B, H)
    in_cols = (cols >= x0.view(b, 1)) & (cols < (x0 + sw).view(b, 1))  # (B, W)
    patch = (in_rows[:, :, None] & in_cols[:, None, :]).to(x.device)
    return x.masked_fill(patch[:, None, None], 0.0)


def build(cfg: Mapping[str, Any]) -> VcaGan:
    """Model from a merged train config (see :func:`lipflow.models.registry.model_config`)."""
    return VcaGan(VcaGanConfig.from_dict(dict(cfg)))


def _lengths(batch: Mapping[str, Any], t: int, device: torch.device) -> torch.Tensor:
    """Each clip's valid video frames (the attention's key mask), at least 1."""
    if "valid_frames" not in batch:
        return torch.full((batch["video"].shape[0],), t, device=device, dtype=torch.long)
    return batch["valid_frames"].to(device).long().clamp(1, t)


def _targets(model: VcaGan, batch: Mapping[str, Any], t: int
             ) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Real mels at the three scales ([(B,1,20,T), (B,1,40,2T), (B,1,80,4T)]) and spec."""
    mel, spec = model.features(batch["wav"], FRAMES_PER_VIDEO_FRAME * t)
    mel1 = F.interpolate(mel, scale_factor=0.25, mode="bilinear")
    mel2 = F.interpolate(mel, scale_factor=0.5, mode="bilinear")
    return [mel1, mel2, mel], spec


def reconstruction(mels: Sequence[torch.Tensor], gs: torch.Tensor,
                   reals: Sequence[torch.Tensor], spec: torch.Tensor) -> torch.Tensor:
    """L_rec: mean L1 of the three log mels (denormalised) plus L1 of the linear magnitude."""
    mel_l1 = sum(F.l1_loss(mel_unscale(g.float()), mel_unscale(r)) for g, r in
                 zip(mels, reals, strict=True))
    return mel_l1 / 3.0 + F.l1_loss(gs.float(), spec)


def loss(model: VcaGan, batch: Mapping[str, Any]) -> torch.Tensor:
    """L_rec of one forward pass (the validation loss; no GAN terms)."""
    video = model.video_input(batch["video"])
    t = video.shape[2]
    reals, spec = _targets(model, batch, t)
    phon, sent = model.v_front(video)
    g1, g2, g3 = model.gen(sent, phon, _lengths(batch, t, video.device))
    return reconstruction((g1, g2, g3), model.post(g3), reals, spec)


@torch.no_grad()
def predict(model: VcaGan, batch: Mapping[str, Any]) -> torch.Tensor:
    """Test protocol: g3 averaged with g3 of the flipped video, then the postnet.

    Returns the linear magnitude (B, 4T, 321), time-major float; no augmentation.
    """
    video = model.video_input(batch["video"], augment=False)
    lengths = _lengths(batch, video.shape[2], video.device)
    g3s = []
    for clip in (video, video.flip(4)):
        phon, sent = model.v_front(clip)
        g3s.append(model.gen(sent, phon, lengths)[2])
    spec = model.post((g3s[0] + g3s[1]) / 2)
    return spec.squeeze(1).transpose(1, 2).float()


@cache
def _features_on(device: torch.device) -> VcaGanFeatures:
    return VcaGanFeatures().to(device)


@torch.no_grad()
def target(batch: Mapping[str, Any]) -> torch.Tensor:
    """The ground-truth linear magnitude (B, 4T, 321) of the batch's wav, on its device."""
    wav = batch["wav"]
    frames = FRAMES_PER_VIDEO_FRAME * int(batch["video"].shape[1])
    _, spec = _features_on(wav.device)(wav, frames)
    return spec.squeeze(1).transpose(1, 2)


def to_waveform(spec: np.ndarray, params: Mapping[str, Any] | None = None) -> np.ndarray:
    """Linear magnitude (frames, 321) -> float32 waveform of ``frames * 160`` samples.

    Griffin-Lim, 60 iterations from a seeded random phase and no momentum (the original's
    plain algorithm), on VCA-GAN's own STFT (n_fft 640, hop 160, Hann), then de-emphasis
    and a clip to [-1, 1]. ``params`` (the store's mel settings, which other models'
    vocoders read) is accepted for the common signature and not used: VCA-GAN's STFT is
    fixed. Griffin-Lim gives ``(frames - 1) * 160`` samples (as the original's inverse
    STFT); the last hop is padded with silence so the length is the video's (4 frames =
    640 samples a video frame) and the waveform lines up with the clip's reference audio.
    """
    import librosa
    from scipy import signal

    magnitude = np.asarray(spec, dtype=np.float32)
    if magnitude.ndim != 2 or magnitude.shape[1] != N_BINS:
        raise ValueError(f"vcagan.to_waveform expects (frames, {N_BINS}), got {magnitude.shape}")
    frames = magnitude.shape[0]
    wav = librosa.griffinlim(magnitude.T, n_iter=GRIFFIN_LIM_ITERS, hop_length=HOP_SAMPLES,
                             win_length=N_FFT, n_fft=N_FFT, window="hann", center=True,
                             momentum=0.0, init="random", random_state=0)
    wav = signal.lfilter([1.0], [1.0, -PREEMPHASIS], wav)
    wav = np.pad(wav, (0, max(0, frames * HOP_SAMPLES - len(wav))))[: frames * HOP_SAMPLES]
    return np.clip(wav, -1.0, 1.0).astype(np.float32)


# --------------------------------------------------------------------------- training


def optimisers(model: VcaGan, cfg: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """Two Adam (amsgrad) with the config's ``lr`` and ``weight_decay`` (paper: 1e-4, 1e-5).

    ``discriminator`` holds dis1-3 and sync_D; ``generator`` holds v_front, gen and post.
    """
    def adam(modules: Sequence[nn.Module]) -> torch.optim.Adam:
        groups = [{"params": list(m.parameters())} for m in modules]
        return torch.optim.Adam(groups, lr=float(cfg["lr"]),
                                weight_decay=float(cfg.get("weight_decay", 0.0)), amsgrad=True)

    return {"discriminator": adam([model.dis1, model.dis2, model.dis3, model.sync_D]),
            "generator": adam([model.v_front, model.gen, model.post])}


def schedulers(optimisers: Mapping[str, torch.optim.Optimizer], cfg: Mapping[str, Any]
               ) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
    """MultiStepLR per optimiser at ``milestones`` epochs (paper: 500, 800) by ``gamma``."""
    made = VcaGanConfig.from_dict({k: v for k, v in cfg.items() if k in ("milestones", "gamma")})
    return {name: torch.optim.lr_scheduler.MultiStepLR(opt, [int(m) for m in made.milestones],
                                                       gamma=float(made.gamma))
            for name, opt in optimisers.items()}


def _adversarial(outputs: Sequence[tuple[torch.Tensor, torch.Tensor]], real: bool) -> torch.Tensor:
    """⅓ Σ_s [softplus(∓u_s) + softplus(∓c_s)] (non-saturating; ``real``: label 1)."""
    sign = -1.0 if real else 1.0
    return sum(F.softplus(sign * u.float()).mean() + F.softplus(sign * c.float()).mean()
               for u, c in outputs) / 3.0


def _finite(values: Mapping[str, torch.Tensor], ctx: StepContext) -> None:
    for name, value in values.items():
        if not torch.isfinite(value):
            raise TrainingError(
                f"vcagan {name} became {float(value)} at epoch {ctx.epoch} step {ctx.step}; "
                "lower train.vcagan.lr")


def _clip(optimiser: torch.optim.Optimizer, max_norm: float) -> None:
    if max_norm:
        params = [p for g in optimiser.param_groups for p in g["params"]]
        torch.nn.utils.clip_grad_norm_(params, float(max_norm))


def train_step(model: VcaGan, batch: Mapping[str, Any],
               optimisers: Mapping[str, torch.optim.Optimizer], ctx: StepContext
               ) -> dict[str, float]:
    """One discriminator step, then one generator step, as the original ``train.py``.

    1. ``phon, sent = v_front(video)``; ``g1, g2, g3 = gen(sent, phon, lengths)``.
    2. D: ``L_D = adv(real) + ⅓ Σ R1 + adv(fake.detach()) + InfoNCE(phon, real mel)``, R1
       the squared norm of the gradient of each unconditional real logit with respect to
       its real mel (``create_graph=True``), ``sent.detach()`` the condition. Backward
       with ``retain_graph=True``; the D optimiser steps. InfoNCE's gradient reaches
       ``v_front`` (``phon`` is not detached) and stays there for the G step.
    3. G: ``gs = post(g3)``; ``L_G = adv_G + (5 - mean |cos(phon.detach(), a(g3))|) + 50
       L_rec``; D, sync_D, gen and post gradients are zeroed (not v_front's), backward,
       the G optimiser steps.

    Returns ``loss`` = L_rec (the figure :func:`loss` gives for validation, so train and
    val losses compare), ``g_total`` (L_G), ``g_adv``, ``sync_g`` (the G-side sync loss),
    ``d_loss`` (L_D), ``d_adv`` (its real and fake terms), ``sync`` (the D-side InfoNCE)
    and ``r1`` (⅓ Σ R1). No GradScaler: R1's double backward would need one per
    gradient, so fp16 is refused; bf16 autocast and fp32 work. Gradient clipping only
    when ``ctx.grad_clip`` is set (the original clips nothing; params.yaml sets 0).
    """
    if ctx.autocast_enabled and ctx.autocast_dtype == torch.float16:
        raise TrainingError("vcagan does not train under fp16 (R1's double backward and a "
                            "GradScaler do not mix): set train.vcagan.amp to bf16 or none")
    d_opt, g_opt = optimisers["discriminator"], optimisers["generator"]
    cfg = model.cfg
    video = model.video_input(batch["video"])
    t = video.shape[2]
    if t < MIN_TRAIN_FRAMES:
        raise TrainingError(f"vcagan trains on windows of at least {MIN_TRAIN_FRAMES} frames "
                            f"(its discriminators' last 5x5 conv), got {t}: raise "
                            "train.vcagan.window_frames")
    reals, spec = _targets(model, batch, t)
    lengths = _lengths(batch, t, video.device)
    g_opt.zero_grad(set_to_none=True)  # v_front, gen, post: a clean start each step
    with ctx.autocast():
        phon, sent = model.v_front(video)
        fakes = model.gen(sent, phon, lengths)
    cond = sent.detach()

    # ---- discriminator step
    leaves = [r.detach().requires_grad_(True) for r in reals]
    with ctx.autocast():
        real_out = [d(r, cond) for d, r in zip(model.discriminators(), leaves, strict=True)]
        sync_d = model.sync_D.infonce(phon, leaves[2].detach())
        fake_out = [d(g.detach(), cond) for d, g in zip(model.discriminators(), fakes,
                                                       strict=True)]
    r1_terms = []
    for (u, _), leaf in zip(real_out, leaves, strict=True):
        (grad,) = torch.autograd.grad(u.float().sum(), leaf, create_graph=True)
        r1_terms.append(grad.flatten(1).pow(2).sum(1).mean())
    r1 = sum(r1_terms) / 3.0
    d_adv = _adversarial(real_out, True) + _adversarial(fake_out, False)
    d_loss = d_adv + r1 + sync_d
    _finite({"discriminator loss": d_loss}, ctx)
    d_opt.zero_grad(set_to_none=True)
    d_loss.backward(retain_graph=True)  # phon's graph is walked again by the G step
    _clip(d_opt, ctx.grad_clip)
    d_opt.step()

    # ---- generator step
    with ctx.autocast():
        gs = model.post(fakes[2])
        gen_out = [d(g, cond) for d, g in zip(model.discriminators(), fakes, strict=True)]
        sync_g = model.sync_D.generator_loss(phon.detach(), fakes[2])
    g_adv = _adversarial(gen_out, True)
    rec = reconstruction(fakes, gs, reals, spec)
    g_total = g_adv + sync_g + cfg.rec_weight * rec
    _finite({"generator loss": g_total}, ctx)
    for module in (*model.discriminators(), model.sync_D, model.gen, model.post):
        module.zero_grad(set_to_none=True)  # v_front keeps its InfoNCE gradient
    g_total.backward()
    _clip(g_opt, ctx.grad_clip)
    g_opt.step()
    numbers = {"loss": rec, "g_total": g_total, "g_adv": g_adv, "sync_g": sync_g,
               "d_loss": d_loss, "d_adv": d_adv, "sync": sync_d, "r1": r1}
    return {k: float(v.detach()) for k, v in numbers.items()}

