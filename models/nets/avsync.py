"""Coupled 3D CNN for audio-visual matching (Torfi et al., IEEE Access 2017).

Two branches map a short window of the same time span into a common 64-d space:

* mouth branch: ``window_frames`` grayscale 60x100 mouth crops, 3D convolutions
  (any other crop size is resized to ``mouth_hw`` = 60x100 first, so the square 96x96
  preset works too; the tiny config uses 30x50 for speed);
* speech branch: the MFEC cube of the span, ``(K, 40, 3)`` = (frames, log filterbank
  energies, [static, delta, delta-delta]) with ``K = window_frames * mfec_per_frame``,
  treated as a one-channel 3-D volume.

Genuine pairs (aligned windows) should be close, impostor pairs (a window from another
clip, or the same clip's audio shifted in time) at least ``margin`` apart: the contrastive
loss ``y*d^2 + (1-y)*max(margin - d, 0)^2`` on the Euclidean distance ``d``. As in the
paper, pairs are selected online: every genuine pair is kept, impostors only when their
distance is below the largest genuine distance plus ``selection_margin`` (the hard ones).

The paper used 9 frames at 30 fps (0.3 s) and a 15x40x3 cube; at 25 fps the defaults
are 8 frames (0.32 s) and 16x40x3 (MFEC frames every 20 ms: 2 per video frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.schema import Mfec

MOUTH_HW = (60, 100)
TIME_BINS = 4  # time steps left in each branch before its linear embedding layer


@dataclass
class AVSyncConfig:
    """Window and layer sizes; defaults follow the paper at 25 fps."""

    fps: float = 25.0
    mfec_frames_per_s: float = field(default_factory=lambda: Mfec().frames_per_second)
    window_frames: int = 8
    mouth_hw: list[int] = field(default_factory=lambda: list(MOUTH_HW))  # crops resized to this
    embedding: int = 64
    mouth_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    speech_channels: list[int] = field(default_factory=lambda: [16, 32, 64, 128])
    margin: float = 1.0  # contrastive margin m
    selection_margin: float = 0.5  # impostors kept when d < max genuine d + this
    min_shift_frames: int = 4  # a time-shifted impostor is at least this far off
    impostors_per_clip: int = 2  # one from another clip, one shifted (per genuine)

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> AVSyncConfig:
        names = {f.name for f in fields(cls)}
        made = cls(**{k: v for k, v in cfg.items() if k in names})
        if made.window_frames < 2:
            raise ConfigError(f"train.avsync.window_frames must be >= 2, got {made.window_frames}")
        return made

    @property
    def mfec_per_frame(self) -> int:
        """MFEC frames per video frame (2 at 25 fps); must be whole for aligned windows."""
        ratio = self.mfec_frames_per_s / self.fps
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(
                f"{self.mfec_frames_per_s} MFEC frames/s is not a whole multiple of {self.fps} fps"
            )
        return int(round(ratio))


def _branch(
    channels: list[int], pools: list[tuple[int, int, int]], embedding: int
) -> nn.Sequential:
    """3D conv stack (conv-BN-ReLU, then pooling) ending in global pooling and a linear layer."""
    layers: list[nn.Module] = []
    cin = 1
    for cout, pool in zip(channels, pools, strict=False):
        layers += [nn.Conv3d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm3d(cout), nn.ReLU()]
        if pool != (1, 1, 1):
            layers.append(nn.MaxPool3d(pool, ceil_mode=True))
        cin = cout
    # pool space away but keep TIME_BINS steps of time: the embedding must know the order
    # of events in the window (a global pool would match a window to its time reversal)
    layers += [
        nn.AdaptiveAvgPool3d((TIME_BINS, 1, 1)),
        nn.Flatten(),
        nn.Linear(cin * TIME_BINS, embedding),
    ]
    return nn.Sequential(*layers)


class AVSync(nn.Module):
    """``forward(mouth (N, W, H, W'), mfec (N, K, 40, 3)) -> (mouth_emb, speech_emb)``."""

    def __init__(self, cfg: AVSyncConfig):
        super().__init__()
        self.cfg = cfg
        # mouth (1, W, 60, 100): pool space early, time late; speech (1, K, 40, 3): pool
        # time and frequency, never the 3 feature planes
        n = len(cfg.mouth_channels)
        self.mouth = _branch(cfg.mouth_channels, [(1, 2, 2)] * (n - 1) + [(2, 2, 2)], cfg.embedding)
        m = len(cfg.speech_channels)
        self.speech = _branch(
            cfg.speech_channels, [(1, 2, 1)] + [(2, 2, 1)] * (m - 1), cfg.embedding
        )

    def embed_mouth(self, mouth: torch.Tensor) -> torch.Tensor:
        x = mouth.float().div(255.0) if mouth.dtype == torch.uint8 else mouth.float()
        hw = tuple(self.cfg.mouth_hw)
        if tuple(x.shape[-2:]) != hw:
            n, w = x.shape[:2]
            x = F.interpolate(
                x.reshape(n * w, 1, *x.shape[-2:]), size=hw, mode="bilinear", align_corners=False
            ).reshape(n, w, *hw)
        return self.mouth((x.unsqueeze(1) - 0.5) * 2.0)

    def embed_speech(self, mfec: torch.Tensor) -> torch.Tensor:
        return self.speech(mfec.float().unsqueeze(1))

    def forward(self, mouth: torch.Tensor, mfec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.embed_mouth(mouth), self.embed_speech(mfec)


def pair_distance(model: AVSync, mouth: torch.Tensor, mfec: torch.Tensor) -> torch.Tensor:
    """Euclidean distance between the two embeddings of each pair, (N,)."""
    a, b = model(mouth, mfec)
    return (a - b).pow(2).sum(-1).add(1e-12).sqrt()


def contrastive_loss(distance: torch.Tensor, label: torch.Tensor, margin: float) -> torch.Tensor:
    """Mean of ``y*d^2 + (1-y)*max(margin - d, 0)^2`` (y = 1 genuine)."""
    y = label.float()
    return (y * distance.pow(2) + (1 - y) * F.relu(margin - distance).pow(2)).mean()


def select_pairs(
    distance: torch.Tensor, label: torch.Tensor, selection_margin: float
) -> torch.Tensor:
    """Boolean mask of the pairs to train on (online selection).

    All genuine pairs; impostors closer than the largest genuine distance plus
    ``selection_margin``. When no impostor qualifies, the single closest one is kept so the
    loss still pushes impostors apart.
    """
    genuine = label > 0.5
    keep = genuine.clone()
    impostor = ~genuine
    if impostor.any():
        d = distance.detach()
        limit = d[genuine].max() + selection_margin if genuine.any() else d.max()
        hard = impostor & (d < limit)
        if not hard.any():
            hard = impostor & (d == d[impostor].min())
        keep |= hard
    return keep


def make_pairs(
    mouth: torch.Tensor,
    mfec: torch.Tensor,
    cfg: AVSyncConfig,
    generator: torch.Generator,
    valid_frames: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Cut training pairs out of a batch of clips.

    ``mouth`` (B, T, H, W), ``mfec`` (B, K, 40, 3). Per clip a random start ``s`` inside
    its valid frames gives one genuine pair (mouth[s:s+W], mfec[ps:p(s+W)], p =
    mfec_per_frame) and impostors: the aligned audio window of the next clip in the batch
    (when B > 1) and this clip's audio shifted by at least ``min_shift_frames``. Returns
    (mouth windows (N, W, H, W'), mfec windows (N, pW, 40, 3), labels (N,)).
    """
    b, t = mouth.shape[:2]
    w, p = cfg.window_frames, cfg.mfec_per_frame
    if t < w or mfec.shape[1] < t * p - p:
        raise ConfigError(f"clips of {t} frames are too short for {w}-frame windows")
    limit = [t] * b if valid_frames is None else [max(w, min(t, int(v))) for v in valid_frames]
    k_total = mfec.shape[1]

    def audio(i: int, s: int) -> torch.Tensor:
        s = min(s, (k_total - w * p) // p)
        return mfec[i, s * p : s * p + w * p]

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
    """(B, T, H, W) grayscale; RGB face frames (B, T, H, W, 3) are converted (luma)."""
    if video.ndim == 5:
        weights = torch.tensor([0.299, 0.587, 0.114], device=video.device)
        return (video.float() * weights).sum(-1).round().clamp(0, 255).to(torch.uint8)
    return video


def build(cfg: dict[str, Any]) -> AVSync:
    return AVSync(AVSyncConfig.from_dict(cfg))


def _batch_generator(batch: dict[str, torch.Tensor], training: bool) -> torch.Generator:
    """Training draws fresh windows from torch's global RNG (seeded by the trainer); evaluation
    uses a generator seeded from the batch contents, so scores are reproducible."""
    g = torch.Generator()
    if training:
        g.manual_seed(int(torch.randint(0, 2**31 - 1, (1,))))
    else:
        g.manual_seed(int(batch["mfec"].float().abs().sum().item() * 1000) % (2**31 - 1))
    return g


def loss(model: AVSync, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Contrastive loss over online-selected pairs cut from the batch."""
    mouth, mfec, label = make_pairs(
        _mouth_frames(batch["video"]),
        batch["mfec"],
        model.cfg,
        _batch_generator(batch, model.training),
        batch.get("valid_frames"),
    )
    d = pair_distance(model, mouth, mfec)
    keep = select_pairs(d, label, model.cfg.selection_margin) if model.training else label >= 0
    return contrastive_loss(d[keep], label[keep], model.cfg.margin)


@torch.no_grad()
def predict(model: AVSync, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(scores, labels) for the batch's pairs; score = -distance (higher = more likely genuine)."""
    mouth, mfec, label = make_pairs(
        _mouth_frames(batch["video"]),
        batch["mfec"],
        model.cfg,
        _batch_generator(batch, False),
        batch.get("valid_frames"),
    )
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
    evidence), larger when one does. Clips with too few frames for one window raise
    :class:`~lipflow.tasks.common.errors.ConfigError`.
    """
    cfg = model.cfg
    w, p = cfg.window_frames, cfg.mfec_per_frame
    mouth = torch.as_tensor(np.asarray(mouth_clip))
    mfec = torch.as_tensor(np.asarray(mfec_clip), dtype=torch.float32)
    if mouth.ndim == 4:
        mouth = _mouth_frames(mouth.unsqueeze(0))[0]
    t = mouth.shape[0] if valid_frames is None else min(int(valid_frames), mouth.shape[0])
    t_audio = min(t, mfec.shape[0] // p)
    if t < w or t_audio < w:
        raise ConfigError(f"a clip of {t} frames is shorter than one {w}-frame sync window")
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        starts_v = list(range(0, t - w + 1, stride_frames))
        starts_a = list(range(0, t_audio - w + 1))
        emb_v = model.embed_mouth(torch.stack([mouth[s : s + w] for s in starts_v]).to(device))
        emb_a = model.embed_speech(
            torch.stack([mfec[s * p : (s + w) * p] for s in starts_a]).to(device)
        )
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
