"""GaborFea2Speech: seven hand-made lip-shape features per frame -> LSTM -> mel.

Per frame (the Lip2Speech seed model): filter the grayscale mouth crop with one Gabor
kernel (12x12, sigma 5, theta 90 degrees, lambda 10, gamma 0.5, psi 0) and square the
response (energy of the horizontal lip edges); threshold it with Yen's method; among the
connected regions keep the one whose centroid is nearest the crop centre (the mouth); and
describe it by seven numbers: bounding-box width and height, area, centroid x and y,
mean intensity (of the grayscale crop inside the region) and orientation (radians,
skimage convention). Deltas and delta-deltas over time make 21 features per frame; a
one-layer LSTM and a dense layer map them to the 80-band mel, upsampled in time from T
video frames to M mel frames.

A wide-open mouth can split into two regions (the upper and lower lip edges); the
region nearest the centre is then one lip, as in the seed model.

Empty thresholds: a frame whose response is flat (no edge at all) or whose threshold
keeps no pixels has no region; it takes the previous frame's features (zeros when it is
the first frame), so a short dropout does not look like a closed mouth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from skimage.filters import threshold_yen
from skimage.measure import label, regionprops
from torch import nn

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.schema import Mel

FEATURE_NAMES = (
    "box_width",
    "box_height",
    "area",
    "centroid_x",
    "centroid_y",
    "mean_intensity",
    "orientation",
)
N_FEATURES = len(FEATURE_NAMES)


def gabor_kernel() -> np.ndarray:
    """The seed model's kernel: 12x12, sigma 5, theta pi/2, lambda 10, gamma 0.5, psi 0.

    OpenCV centres the kernel, so a (12, 12) request gives 13x13 taps (-6..6), exactly as
    the seed model's own ``cv2.getGaborKernel((12, 12), ...)`` call did.
    """
    return cv2.getGaborKernel(
        (12, 12), sigma=5, theta=math.pi / 2, lambd=10, gamma=0.5, psi=0, ktype=cv2.CV_32F
    )


def _frame_features(frame: np.ndarray, kernel: np.ndarray) -> np.ndarray | None:
    """The seven features of one (H, W) uint8 frame, or None when no region is found."""
    gray = frame.astype(np.float32)
    energy = cv2.filter2D(gray / 255.0, cv2.CV_32F, kernel) ** 2
    if not np.isfinite(energy).all() or float(energy.max() - energy.min()) <= 1e-12:
        return None
    mask = energy > threshold_yen(energy)
    if not mask.any():
        return None
    regions = regionprops(label(mask), intensity_image=gray)
    cy, cx = (frame.shape[0] - 1) / 2.0, (frame.shape[1] - 1) / 2.0
    best = min(regions, key=lambda r: (r.centroid[0] - cy) ** 2 + (r.centroid[1] - cx) ** 2)
    r0, c0, r1, c1 = best.bbox
    row, col = best.centroid
    return np.array(
        [c1 - c0, r1 - r0, best.area, col, row, best.intensity_mean, best.orientation],
        dtype=np.float32,
    )


def gabor_features(mouth_frames: np.ndarray) -> np.ndarray:
    """(T, H, W) uint8 grayscale mouth crops -> (T, 7) float32 features (see module doc).

    Pixel units (sizes, area, centroid) and 0..255 intensity; deterministic. A frame
    without a region repeats the previous frame's values (zeros for a leading one).
    """
    frames = np.asarray(mouth_frames)
    if frames.ndim != 3:
        raise ConfigError(f"gabor_features needs (T, H, W) grayscale frames, got {frames.shape}")
    kernel = gabor_kernel()
    out = np.zeros((len(frames), N_FEATURES), dtype=np.float32)
    previous = np.zeros(N_FEATURES, dtype=np.float32)
    for t, frame in enumerate(frames):
        feats = _frame_features(frame, kernel)
        previous = previous if feats is None else feats
        out[t] = previous
    return out


def normalise_features(features: np.ndarray, height: int, width: int) -> np.ndarray:
    """Scale the seven features to about [0, 1] (or [-1, 1]) by the crop size.

    Width, x by W; height, y by H; area by H*W; intensity by 255. Orientation (skimage:
    -pi/2..pi/2, where +-pi/2 are the same horizontal line, so a mouth flips sign from
    frame to frame) is wrapped to ``(o mod pi) / (pi/2) - 1``: 0 for a horizontal region,
    continuous around it. Makes the LSTM's input independent of the mouth-crop preset.
    """
    scale = np.array([width, height, height * width, width, height, 255.0, 1.0], dtype=np.float32)
    out = np.asarray(features, dtype=np.float32) / scale
    out[:, 6] = np.mod(out[:, 6], math.pi) / (math.pi / 2) - 1.0
    return out


def add_deltas(features: np.ndarray, width: int = 5) -> np.ndarray:
    """(T, F) -> (T, 3F): features, deltas, delta-deltas (``librosa.feature.delta``).

    ``width`` shrinks to the largest odd number <= T for short clips; a single frame gets
    zero deltas.
    """
    import librosa

    x = np.asarray(features, dtype=np.float32)
    t = len(x)
    w = min(width, t if t % 2 else t - 1)
    if w < 3:
        zeros = np.zeros_like(x)
        return np.concatenate([x, zeros, zeros], axis=1)
    d1 = librosa.feature.delta(x, width=w, order=1, axis=0)
    d2 = librosa.feature.delta(x, width=w, order=2, axis=0)
    return np.concatenate([x, d1, d2], axis=1).astype(np.float32)


def clip_inputs(mouth_frames: np.ndarray) -> np.ndarray:
    """(T, H, W) uint8 -> (T, 21) model input: normalised features with deltas."""
    frames = np.asarray(mouth_frames)
    feats = normalise_features(gabor_features(frames), frames.shape[1], frames.shape[2])
    return add_deltas(feats)


@dataclass
class GaborConfig:
    fps: float = 25.0
    mel_frames_per_s: float = field(default_factory=lambda: Mel().frames_per_second)
    n_mels: int = field(default_factory=lambda: Mel().n_mels)
    hidden: int = 256

    @classmethod
    def from_dict(cls, cfg: dict[str, Any]) -> GaborConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in cfg.items() if k in names})

    def mel_frames(self, video_frames: int) -> int:
        return int(round(video_frames * self.mel_frames_per_s / self.fps))


class GaborFea2Speech(nn.Module):
    """(B, T, 21) features -> one-layer LSTM -> upsample to M frames -> dense -> (B, M, 80)."""

    def __init__(self, cfg: GaborConfig):
        super().__init__()
        self.cfg = cfg
        self.lstm = nn.LSTM(3 * N_FEATURES, cfg.hidden, num_layers=1, batch_first=True)
        self.dense = nn.Linear(cfg.hidden, cfg.n_mels)

    def forward(self, features: torch.Tensor, mel_frames: int | None = None) -> torch.Tensor:
        m = mel_frames or self.cfg.mel_frames(features.shape[1])
        h, _ = self.lstm(features.float())
        h = F.interpolate(h.transpose(1, 2), size=m, mode="linear", align_corners=False)
        return self.dense(h.transpose(1, 2))


def batch_inputs(batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """The (B, T, 21) input: ``batch['gabor']`` when the dataset precomputed it, else from
    the grayscale ``video`` (B, T, H, W) (RGB faces are converted to luma first)."""
    if "gabor" in batch:
        return batch["gabor"].float()
    video = batch["video"]
    if video.ndim == 5:
        weights = torch.tensor([0.299, 0.587, 0.114])
        video = (video.float() * weights).sum(-1).round().clamp(0, 255).to(torch.uint8)
    clips = [_cached_clip_inputs(v.cpu().numpy()) for v in video]
    return torch.from_numpy(np.stack(clips)).to(video.device)


_CACHE: dict[bytes, np.ndarray] = {}
_CACHE_CLIPS = 4096  # about 25 MB of features for 75-frame clips


def _cached_clip_inputs(frames: np.ndarray) -> np.ndarray:
    """:func:`clip_inputs`, memoised by a hash of the frames: the feature extraction costs
    tens of ms per frame, and every epoch sees the same clips."""
    import hashlib

    key = hashlib.blake2b(np.ascontiguousarray(frames).tobytes(), digest_size=16).digest()
    key += repr(frames.shape).encode()
    if key not in _CACHE:
        if len(_CACHE) >= _CACHE_CLIPS:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = clip_inputs(frames)
    return _CACHE[key]


def build(cfg: dict[str, Any]) -> GaborFea2Speech:
    return GaborFea2Speech(GaborConfig.from_dict(cfg))


def loss(model: GaborFea2Speech, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """L1 on mels (masked to the clip's valid frames, as for lip2wav)."""
    from lipflow.models.nets.lip2wav import masked_l1, valid_mel_mask

    target = batch["mel"].float()
    pred = model(batch_inputs(batch).to(target.device), mel_frames=target.shape[1])
    return masked_l1(pred, target, valid_mel_mask(batch, target, model.cfg.fps))


@torch.no_grad()
def predict(model: GaborFea2Speech, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    m = batch["mel"].shape[1] if "mel" in batch else None
    return model(batch_inputs(batch).to(next(model.parameters()).device), mel_frames=m)
