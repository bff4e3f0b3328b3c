"""Coupled 3D CNN for audio-visual matching (Torfi et al., IEEE Access 2017), as published.

Written from the original repository (astorfi/lip-reading-deeplearning,
``code/training_evaluation``: ``nets/lipread_mouth.py``, ``nets/lipread_speech.py``,
``auxiliary/losses.py``, ``train.py``). Two nets with their own weights map 0.3 s of mouth
video and of speech into a common 64-d space:

* mouth net, input (N, 1, 9, 60, 100): grey mouth crops, 9 frames at 30 fps. Every conv
  is spatial-only (kernel 1x3x3, SAME padding): conv1 16, pool, conv2 32, pool, conv31 64,
  conv32 64, pool, conv4 128, pool (each pool 1x3x3, stride 1x2x2, VALID: 60x100 -> 29x49
  -> 14x24 -> 6x11 -> 2x5); fc5 256 as a 1x2x5 VALID conv (the whole remaining plane);
  then a 9x1x1 VALID conv to 64 (the only temporal kernel: it spans the window).
* speech net, input (N, 3, 15, 40, 1): MFEC cubes, 15 frames of 20 ms x 40 log filterbank
  energies, the 3 planes (static, delta, delta-delta) as INPUT CHANNELS. Every conv is
  frequency-only, VALID: conv1 16 (1x5x1), pool (1x2x1), conv21 32 and conv22 32 (1x4x1),
  pool (1x2x1), conv31 64 and conv32 64 (1x3x1): 40 -> 36 -> 18 -> 15 -> 12 -> 6 -> 4 ->
  2; fc4 128 as a 1x2x1 conv; then a 15x1x1 VALID conv to 64.

Every conv but the last of each net is conv (no bias) -> batch norm (slim's default: a
learnt offset, no scale, eps 1e-3, moving averages at decay 0.999) -> PReLU (one slope per
channel, initialised to 0); the last is a plain conv with a bias. Weights are initialised
as slim's ``variance_scaling_initializer(factor=1.0, mode='FAN_AVG')`` (truncated normal,
std sqrt(1.3 / fan_avg)). The published preset (``full``) has 774,912 parameters
(mouth 610,096, speech 164,816; counted by hand in tests/test_models_avsync.py).

Loss and training (``train.py``): the Euclidean distance ``d`` of the two embeddings and the
contrastive loss ``mean((y * d^2 + (1 - y) * max(margin - d, 0)^2) / 2)`` with margin 100
(``margin_imp_tensor: 100``; the genuine margin is 0). Online pair selection: each batch is
first run with the model in eval mode, then every genuine pair is kept and an impostor
only when ``d < max genuine d + 10`` (``hard_margin``); the step trains on the kept pairs.
(In the original the ``is_training`` placeholder never reaches slim's batch norm, so its
"eval" pass still used batch statistics; lipflow does what the code meant: eval mode, moving
statistics.) Adam, lr 0.01, betas (0.9, 0.999), eps 1.0, the lr multiplied by 0.94 every
5 epochs (staircase exponential decay); no gradient clipping. The original defines an L2
weight decay (4e-5) but never adds it to the optimised loss, and keeps an exponential
moving average of the weights that its evaluation does not read: neither is reproduced.

Windows: the mouth window is ``window_frames`` video frames, the speech window the
``mfec_frames`` MFEC frames over the same span (9 at 30 fps = 0.3 s = 15 MFEC frames). The
``grid`` preset is the same net for 25 fps GRID: 8 frames = 0.32 s = 16 MFEC frames. At 25 fps
every frame is exactly two 20-ms MFEC frames, so both windows cover the same time; 7 frames
(0.28 s) would be as near the paper's 0.3 s, 8 keeps at least its span. A store whose rate or
mouth crops do not fit the preset is a :class:`~lipflow.tasks.common.errors.ConfigError` at the
first batch, before any update: mouth crops are never resized (the ``cnn3d`` mouth preset stores
60x100). Only a preset with ``mouth_centre_crop`` (``tiny``) cuts the central ``mouth_hw`` out
of a larger crop: every mouth preset is cut at the same mean-face scale around the mouth centre,
so the central 60x96 of the default 96x96 crop is the 60x100 ``cnn3d`` crop less 2 columns a
side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.schema import Mfec

#: The published input sizes: 9 frames x 60 x 100 mouth, 15 x 40 x 3 MFEC.
PAPER_WINDOW = (9, 15)
MOUTH_HW = (60, 100)


@dataclass
class AVSyncConfig:
    """Window, layer and training sizes; the defaults are the published ones (30 fps)."""

    fps: float = 30.0  # the store's frame rate (set from the data by the trainer)
    mfec_frames_per_s: float = field(default_factory=lambda: Mfec().frames_per_second)
    mfec_bins: int = field(default_factory=lambda: Mfec().n_filters)
    window_frames: int = 9
    mfec_frames: int = 15
    mouth_hw: list[int] = field(default_factory=lambda: list(MOUTH_HW))
    mouth_centre_crop: bool = False
    mouth_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 64, 128])
    mouth_fc: int = 256
    speech_channels: list[int] = field(default_factory=lambda: [16, 32, 32, 64, 64])
    speech_fc: int = 128
    embedding: int = 64
    bn_decay: float = 0.999  # slim.batch_norm's moving-average decay (torch momentum 0.001)
    margin: float = 100.0  # contrastive margin on impostor distances
    selection_margin: float = 10.0  # hard impostors: d < max genuine d + this
    min_shift_frames: int = 4  # a time-shifted impostor is at least this far off
    impostors_per_clip: int = 2  # one from another clip, one shifted (per genuine)

    @classmethod
    def from_dict(cls, cfg: Mapping[str, Any]) -> AVSyncConfig:
        names = {f.name for f in fields(cls)}
        made = cls(**{k: v for k, v in cfg.items() if k in names})
        if made.window_frames < 1 or made.mfec_frames < 1:
            raise ConfigError("train.avsync.window_frames and mfec_frames must be >= 1")
        if len(made.mouth_channels) != 5 or len(made.speech_channels) != 5:
            raise ConfigError("train.avsync.mouth_channels and speech_channels need 5 entries "
                              "(conv1, conv2, conv31, conv32, conv4 / conv1, conv21, conv22, "
                              "conv31, conv32)")
        return made

    def mfec_start(self, frame: int) -> int:
        """The MFEC frame at the start of video frame ``frame``: ``floor(frame * rate / fps)``,
        the dataset's rule for every stream (:mod:`lipflow.models.dataset`)."""
        return int(math.floor(frame * self.mfec_frames_per_s / self.fps + 1e-9))

    def check_rate(self) -> None:
        """The store's frame rate must make ``window_frames`` span ``mfec_frames``."""
        span = self.window_frames * self.mfec_frames_per_s / self.fps
        if abs(span - self.mfec_frames) >= 0.5:
            raise ConfigError(
                f"train.avsync: {self.window_frames} frames at {self.fps:g} fps span "
                f"{span:g} MFEC frames, but the preset's speech net takes {self.mfec_frames}; "
                "use the preset made for this rate (25 fps GRID: train.avsync.preset: grid; "
                "30 fps: full)")

    def mouth_input(self, frames: torch.Tensor) -> torch.Tensor:
        """(..., H, W) stored crops -> (..., *mouth_hw): as is, or their centre when the
        preset allows it; anything else is an error (crops are never resized)."""
        h, w = (int(v) for v in self.mouth_hw)
        got = tuple(int(v) for v in frames.shape[-2:])
        if got == (h, w):
            return frames
        if self.mouth_centre_crop and got[0] >= h and got[1] >= w:
            top, left = (got[0] - h) // 2, (got[1] - w) // 2
            return frames[..., top:top + h, left:left + w]
        raise ConfigError(
            f"train.avsync takes {h}x{w} mouth crops, the store has {got[0]}x{got[1]}: "
            "prepare it with preprocess.mouth_preset: cnn3d (60x100)")


def _pooled(n: int) -> int:
    """Size after a 3-wide, stride-2 VALID pool."""
    return (n - 3) // 2 + 1


class _BatchNormOffset(nn.Module):
    """slim.batch_norm's default: normalise, then add a learnt offset (no scale)."""

    def __init__(self, channels: int, decay: float = 0.999):
        super().__init__()
        self.norm = nn.BatchNorm3d(channels, eps=1e-3, momentum=1.0 - decay, affine=False)
        self.beta = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x) + self.beta.view(1, -1, 1, 1, 1)


def _unit(cin: int, cout: int, kernel: tuple[int, int, int],
          padding: tuple[int, int, int] = (0, 0, 0), decay: float = 0.999) -> nn.Sequential:
    """conv (no bias) -> batch norm offset -> PReLU (slopes start at 0)."""
    return nn.Sequential(nn.Conv3d(cin, cout, kernel, padding=padding, bias=False),
                         _BatchNormOffset(cout, decay), nn.PReLU(cout, init=0.0))


def _init_weights(module: nn.Module) -> None:
    """slim's variance_scaling_initializer(factor=1, FAN_AVG, normal): truncated normal
    (two std) with std sqrt(1.3 / ((fan_in + fan_out) / 2)); biases zero."""
    for m in module.modules():
        if isinstance(m, nn.Conv3d):
            receptive = math.prod(m.kernel_size)
            fan_avg = (m.in_channels + m.out_channels) * receptive / 2
            std = math.sqrt(1.3 / fan_avg)
            nn.init.trunc_normal_(m.weight, std=std, a=-2 * std, b=2 * std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


class MouthNet(nn.Module):
    """``(N, 1, T, H, W)`` -> ``(N, embedding)``; see the module doc."""

    def __init__(self, cfg: AVSyncConfig):
        super().__init__()
        c1, c2, c31, c32, c4 = cfg.mouth_channels
        same = (0, 1, 1)
        h, w = (int(v) for v in cfg.mouth_hw)
        for _ in range(4):
            h, w = _pooled(h), _pooled(w)
        if h < 1 or w < 1:
            raise ConfigError(f"train.avsync.mouth_hw {cfg.mouth_hw} is too small for 4 pools")
        self.conv1 = _unit(1, c1, (1, 3, 3), same, decay=cfg.bn_decay)
        self.conv2 = _unit(c1, c2, (1, 3, 3), same, decay=cfg.bn_decay)
        self.conv31 = _unit(c2, c31, (1, 3, 3), same, decay=cfg.bn_decay)
        self.conv32 = _unit(c31, c32, (1, 3, 3), same, decay=cfg.bn_decay)
        self.conv4 = _unit(c32, c4, (1, 3, 3), same, decay=cfg.bn_decay)
        self.fc5 = _unit(c4, cfg.mouth_fc, (1, h, w), decay=cfg.bn_decay)
        self.fc6 = nn.Conv3d(cfg.mouth_fc, cfg.embedding, (cfg.window_frames, 1, 1))
        self.pool = nn.MaxPool3d((1, 3, 3), stride=(1, 2, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv2(x))
        x = self.pool(self.conv32(self.conv31(x)))
        x = self.pool(self.conv4(x))
        return self.fc6(self.fc5(x)).flatten(1)


class SpeechNet(nn.Module):
    """``(N, 3, K, bins, 1)`` -> ``(N, embedding)``; see the module doc."""

    def __init__(self, cfg: AVSyncConfig):
        super().__init__()
        c1, c21, c22, c31, c32 = cfg.speech_channels
        bins = ((((cfg.mfec_bins - 4) // 2 - 3 - 3) // 2) - 2 - 2)
        if bins < 1:
            raise ConfigError(f"{cfg.mfec_bins} MFEC bins are too few for the speech net")
        self.conv1 = _unit(3, c1, (1, 5, 1), decay=cfg.bn_decay)
        self.conv21 = _unit(c1, c21, (1, 4, 1), decay=cfg.bn_decay)
        self.conv22 = _unit(c21, c22, (1, 4, 1), decay=cfg.bn_decay)
        self.conv31 = _unit(c22, c31, (1, 3, 1), decay=cfg.bn_decay)
        self.conv32 = _unit(c31, c32, (1, 3, 1), decay=cfg.bn_decay)
        self.fc4 = _unit(c32, cfg.speech_fc, (1, bins, 1), decay=cfg.bn_decay)
        self.fc5 = nn.Conv3d(cfg.speech_fc, cfg.embedding, (cfg.mfec_frames, 1, 1))
        self.pool = nn.MaxPool3d((1, 2, 1), stride=(1, 2, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.pool(self.conv1(x))
        x = self.pool(self.conv22(self.conv21(x)))
        x = self.conv32(self.conv31(x))
        return self.fc5(self.fc4(x)).flatten(1)


class AVSync(nn.Module):
    """``forward(mouth (N, W, H, W'), mfec (N, K, 40, 3)) -> (mouth_emb, speech_emb)``."""

    def __init__(self, cfg: AVSyncConfig):
        super().__init__()
        self.cfg = cfg
        self.mouth = MouthNet(cfg)
        self.speech = SpeechNet(cfg)
        _init_weights(self)

    def embed_mouth(self, mouth: torch.Tensor) -> torch.Tensor:
        """(N, W, H, W') crops (uint8 or float in [0, 1]) -> (N, embedding)."""
        x = self.cfg.mouth_input(mouth)
        x = x.float().div(255.0) if x.dtype == torch.uint8 else x.float()
        return self.mouth(x.unsqueeze(1))

    def embed_speech(self, mfec: torch.Tensor) -> torch.Tensor:
        """(N, K, bins, 3) MFEC cubes -> (N, embedding); the 3 planes become channels."""
        return self.speech(mfec.float().permute(0, 3, 1, 2).unsqueeze(-1))

    def forward(self, mouth: torch.Tensor, mfec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_mouth(mouth), self.embed_speech(mfec)


def pair_distance(model: AVSync, mouth: torch.Tensor, mfec: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between the two embeddings of each pair, (N,)."""
    a, b = model(mouth, mfec)
    return (a - b).pow(2).sum(-1).add(1e-12).sqrt()


def contrastive_loss(distance: torch.Tensor, label: torch.Tensor, margin: float) -> torch.Tensor:
    """The original's ``mean((y * d^2 + (1 - y) * max(margin - d, 0)^2) / 2)`` (y = 1 genuine)."""
    y = label.float()
    return ((y * distance.pow(2) + (1 - y) * F.relu(margin - distance).pow(2)) / 2).mean()


def select_pairs(distance: torch.Tensor, label: torch.Tensor,
                 selection_margin: float) -> torch.Tensor:
    """Boolean mask of the pairs to train on, the original's online selection: every
    genuine pair, and the impostors with ``d < max genuine d + selection_margin`` (max
    genuine 0 when the batch has none). No fallback: a batch without a hard impostor
    trains on its genuine pairs alone, as the original does."""
    genuine = label > 0.5
    d = distance.detach()
    top = d[genuine].max() if genuine.any() else d.new_zeros(())
    return genuine | (~genuine & (d < top + selection_margin))


def make_pairs(
    mouth: torch.Tensor,
    mfec: torch.Tensor,
    cfg: AVSyncConfig,
    generator: torch.Generator,
    valid_frames: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut training pairs out of a batch of clips.

    ``mouth`` (B, T, H, W), ``mfec`` (B, K, bins, 3). Per clip a random start ``s`` inside
    its valid frames gives one genuine pair (mouth[s:s+W] with the ``mfec_frames`` MFEC
    frames from :meth:`AVSyncConfig.mfec_start` of ``s``) and impostors: the aligned audio
    window of the next clip in the batch (when B > 1) and this clip's audio shifted by at
    least ``min_shift_frames``. Returns (mouth windows (N, W, H, W'), MFEC windows
    (N, mfec_frames, bins, 3), labels (N,)).
    """
    b, t = mouth.shape[:2]
    w, k = cfg.window_frames, cfg.mfec_frames
    k_total = mfec.shape[1]
    if t < w or k_total < k:
        raise ConfigError(f"clips of {t} frames are too short for {w}-frame windows")
    limit = [t] * b if valid_frames is None else [max(w, min(t, int(v))) for v in valid_frames]

    def audio(i: int, s: int) -> torch.Tensor:
        start = min(cfg.mfec_start(s), k_total - k)
        return mfec[i, start:start + k]

    mouths, audios, labels = [], [], []
    for i in range(b):
        hi = limit[i] - w
        s = int(torch.randint(0, hi + 1, (1,), generator=generator))
        mouths.append(mouth[i, s : s + w])
        audios.append(audio(i, s))
        labels.append(1)
        if b > 1:  # another clip's audio over the same span
            mouths.append(mouth[i, s : s + w])
            audios.append(audio((i + 1) % b, s))
            labels.append(0)
        far = [o for o in range(0, hi + 1) if abs(o - s) >= cfg.min_shift_frames]
        for _ in range(max(1, cfg.impostors_per_clip - (1 if b > 1 else 0))):
            if not far:
                break
            o = far[int(torch.randint(0, len(far), (1,), generator=generator))]
            mouths.append(mouth[i, s : s + w])
            audios.append(audio(i, o))
            labels.append(0)
    return torch.stack(mouths), torch.stack(audios), torch.tensor(labels, device=mouth.device)


def _mouth_frames(video: torch.Tensor) -> torch.Tensor:
    """(B, T, H, W) grayscale; RGB frames (B, T, H, W, 3) are converted (luma)."""
    if video.ndim == 5:
        weights = torch.tensor([0.299, 0.587, 0.114], device=video.device)
        return (video.float() * weights).sum(-1).round().clamp(0, 255).to(torch.uint8)
    return video


def build(cfg: Mapping[str, Any]) -> AVSync:
    return AVSync(AVSyncConfig.from_dict(cfg))


def optimisers(model: AVSync, cfg: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """The original's Adam: ``lr`` (0.01), betas (0.9, 0.999), ``adam_eps`` (1.0)."""
    return {"model": torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]),
                                      betas=(0.9, 0.999), eps=float(cfg.get("adam_eps", 1.0)),
                                      weight_decay=float(cfg.get("weight_decay", 0.0)))}


def schedulers(optimisers: Mapping[str, torch.optim.Optimizer], cfg: Mapping[str, Any]
               ) -> dict[str, torch.optim.lr_scheduler.LRScheduler]:
    """The original's staircase decay: lr x ``lr_decay`` (0.94) every ``lr_decay_epochs`` (5)."""
    return {name: torch.optim.lr_scheduler.StepLR(
                opt, step_size=int(cfg.get("lr_decay_epochs", 5)),
                gamma=float(cfg.get("lr_decay", 0.94)))
            for name, opt in optimisers.items()}


def _batch_generator(batch: Mapping[str, torch.Tensor], training: bool) -> torch.Generator:
    """Training draws fresh windows from torch's global RNG (seeded by the trainer); evaluation
    uses a generator seeded from the batch contents, so scores are reproducible."""
    g = torch.Generator()
    if training:
        g.manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
    else:
        g.manual_seed(int(batch["mfec"].float().abs().sum().item() * 1000) % (2**31 - 1))
    return g


def _pairs(model: AVSync, batch: Mapping[str, torch.Tensor], training: bool
           ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Checks the batch against the preset (rate, crop size), then cuts its pairs."""
    model.cfg.check_rate()
    video = _mouth_frames(batch["video"])
    model.cfg.mouth_input(video[:1, :1])  # a mismatched crop fails before any forward
    return make_pairs(video, batch["mfec"], model.cfg, _batch_generator(batch, training),
                      batch.get("valid_frames"))


@torch.no_grad()
def hard_pairs(model: AVSync, mouth: torch.Tensor, mfec: torch.Tensor,
               label: torch.Tensor) -> torch.Tensor:
    """The online selection's mask, with distances measured in eval mode (mode restored)."""
    was_training = model.training
    model.eval()
    try:
        d = pair_distance(model, mouth, mfec)
    finally:
        model.train(was_training)
    return select_pairs(d, label, model.cfg.selection_margin)


def loss(model: AVSync, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Contrastive loss; in training over the online-selected pairs (see module doc)."""
    mouth, mfec, label = _pairs(model, batch, model.training)
    if model.training:
        keep = hard_pairs(model, mouth, mfec, label)
        mouth, mfec, label = mouth[keep], mfec[keep], label[keep]
    d = pair_distance(model, mouth, mfec)
    return contrastive_loss(d, label, model.cfg.margin)


@torch.no_grad()
def predict(model: AVSync, batch: Mapping[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, labels) for the batch's pairs; score = -distance (higher = more likely genuine)."""
    mouth, mfec, label = _pairs(model, batch, False)
    return -pair_distance(model, mouth, mfec), label


@torch.no_grad()
def sync_offsets(
    model: AVSync,
    mouth_clip: np.ndarray | torch.Tensor,
    mfec_clip: np.ndarray | torch.Tensor,
    max_offset_frames: int = 15,
    valid_frames: int | None = None,
    stride_frames: int = 1,
) -> tuple[float, int]:
    """Per-clip sync: ``(score, best_offset)`` with the offset in video frames.

    Every mouth window starting at ``t`` (stride ``stride_frames``) is compared with the
    audio window starting at ``t + o`` for ``o`` in ``[-max_offset_frames,
    max_offset_frames]``; the mean distance per offset is taken over the windows where both
    exist. ``best_offset`` is the offset of the smallest mean distance (positive: the
    audio lags the video by that many frames); ``score`` is the SyncNet-style confidence
    ``median_o(mean d) - min_o(mean d)``: near 0 when no offset stands out (no sync
    evidence), larger when one does. Clips with too few frames for one window, a frame
    rate or crop size the preset does not take, raise
    :class:`~lipflow.tasks.common.errors.ConfigError`.
    """
    cfg = model.cfg
    cfg.check_rate()
    w, k = cfg.window_frames, cfg.mfec_frames
    mouth = torch.as_tensor(np.asarray(mouth_clip))
    mfec = torch.as_tensor(np.asarray(mfec_clip), dtype=torch.float32)
    if mouth.ndim == 4:
        mouth = _mouth_frames(mouth.unsqueeze(0))[0]
    cfg.mouth_input(mouth[:1])
    t = mouth.shape[0] if valid_frames is None else min(int(valid_frames), mouth.shape[0])
    # audio windows inside the clip's valid frames and its MFEC frames
    starts_a = [s for s in range(t - w + 1) if cfg.mfec_start(s) + k <= mfec.shape[0]]
    if t < w or not starts_a:
        raise ConfigError(f"a clip of {t} frames is shorter than one {w}-frame sync window")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        starts_v = list(range(0, t - w + 1, stride_frames))
        emb_v = model.embed_mouth(torch.stack([mouth[s : s + w] for s in starts_v]).to(device))
        emb_a = model.embed_speech(torch.stack(
            [mfec[cfg.mfec_start(s) : cfg.mfec_start(s) + k] for s in starts_a]).to(device))
        a_index = {s: i for i, s in enumerate(starts_a)}
        offsets, means = [], []
        for o in range(-max_offset_frames, max_offset_frames + 1):
            pairs = [(i, a_index[s + o]) for i, s in enumerate(starts_v) if s + o in a_index]
            if not pairs:
                continue
            vi = torch.tensor([i for i, _ in pairs], device=device)
            ai = torch.tensor([j for _, j in pairs], device=device)
            d = (emb_v[vi] - emb_a[ai]).pow(2).sum(-1).sqrt().mean()
            offsets.append(o)
            means.append(float(d))
    finally:
        model.train(was_training)
    dist = np.asarray(means)
    best = int(np.argmin(dist))
    return float(np.median(dist) - dist[best]), int(offsets[best])
