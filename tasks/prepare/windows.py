"""Clip arithmetic: where each fixed-length clip starts and how much of it is real.

A clip is exactly ``T = fps * clip_seconds`` video frames and ``S = sample_rate_hz *
clip_seconds`` audio samples, both starting at the same source time ``start_frame / fps``
(the clock of :mod:`lipflow.tasks.media.container`). Clips are consecutive and do not overlap, so
clip ``k``
starts at frame ``k * T`` and sample ``k * S``: integers even where one frame is not a
whole number of samples (30 fps at 16 kHz is 533.3 samples a frame).

Material shorter than a clip (the end of a video, a 2.98 s GRID audio track) is padded and
its valid length recorded:

- video repeats the last real frame, so face tracking and the mouth crop see a still
  face rather than a black frame that would look like a lost detection;
- audio is padded with zeros (silence), which is what an ended recording sounds like and
  adds no energy to spectrogram features.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from lipflow.tasks.common.errors import ConfigError


@dataclass(frozen=True)
class ClipWindow:
    """One clip of a video, in frames, samples and seconds (source time).

    ``end_s`` is where the real material ends (``start_s + valid_frames / fps``); the
    padded span always ends at ``start_s + num_frames / fps``.
    """

    index: int
    start_frame: int
    num_frames: int
    valid_frames: int
    start_s: float
    end_s: float
    start_sample: int
    num_samples: int
    valid_samples: int

    @property
    def clip_id_suffix(self) -> str:
        """``<start_frame>``: the last part of the manifest's ``clip_id``."""
        return str(self.start_frame)


def _whole(value: float, what: str) -> int:
    rounded = round(value)
    if rounded <= 0 or not math.isclose(value, rounded, rel_tol=0.0, abs_tol=1e-6):
        raise ConfigError(f"{what} must be a positive whole number, got {value:g}")
    return rounded


def frames_per_clip(fps: float, clip_seconds: float) -> int:
    """T = fps * clip_seconds; ConfigError unless it is a whole number (29.97 * 3 is not)."""
    return _whole(fps * clip_seconds, f"fps * clip_seconds ({fps:g} * {clip_seconds:g})")


def samples_per_clip(sample_rate_hz: int, clip_seconds: float) -> int:
    """S = sample_rate_hz * clip_seconds; ConfigError unless it is a whole number."""
    return _whole(
        sample_rate_hz * clip_seconds,
        f"sample_rate_hz * clip_seconds ({sample_rate_hz} * {clip_seconds:g})",
    )


def clip_windows(
    num_frames: int,
    fps: float,
    clip_seconds: float,
    *,
    min_valid_seconds: float,
    sample_rate_hz: int = 16000,
    num_audio_samples: int | None = None,
) -> list[ClipWindow]:
    """Split a video of ``num_frames`` frames (at ``fps``, after resampling) into clips.

    Windows are consecutive from frame 0; the last one may be partial and is kept only
    when it holds at least ``min_valid_seconds`` of video (so a video shorter than that
    gives no clip). ``num_audio_samples`` is the length of the audio read on the same
    clock (:func:`lipflow.tasks.media.audio.read_audio`); it sets each window's ``valid_samples``
    (clamped to ``[0, S]``). Without it the audio is assumed to cover the video exactly.

    GRID: 75 frames at 25 fps with 3 s clips give one window of 75 frames; with a 2.98 s
    audio track (47680 samples at 16 kHz) its ``valid_samples`` is 47680 of 48000.
    """
    if num_frames < 0:
        raise ValueError(f"num_frames must not be negative, got {num_frames}")
    t = frames_per_clip(fps, clip_seconds)
    s = samples_per_clip(sample_rate_hz, clip_seconds)
    total_samples = (
        num_audio_samples
        if num_audio_samples is not None
        else math.floor(num_frames * sample_rate_hz / fps + 1e-6)
    )
    windows: list[ClipWindow] = []
    for k in range(math.ceil(num_frames / t)):
        window = window_at(k, min(t, num_frames - k * t), total_samples - k * s, fps,
                           clip_seconds, min_valid_seconds=min_valid_seconds,
                           sample_rate_hz=sample_rate_hz)
        if window is None:
            break
        windows.append(window)
    return windows


def window_at(
    k: int,
    valid_frames: int,
    available_samples: int,
    fps: float,
    clip_seconds: float,
    *,
    min_valid_seconds: float,
    sample_rate_hz: int = 16000,
) -> ClipWindow | None:
    """Window ``k`` of a video, given how many frames and samples it really holds.

    The one window rule: used whole-video by :func:`clip_windows` and clip by clip by the
    streaming preprocessor (which learns ``valid_frames`` and ``available_samples`` as it
    decodes). ``None`` when the window holds less than ``min_valid_seconds`` of video.
    """
    t = frames_per_clip(fps, clip_seconds)
    s = samples_per_clip(sample_rate_hz, clip_seconds)
    if valid_frames / fps < min_valid_seconds - 1e-9:
        return None
    start_frame = k * t
    return ClipWindow(
        index=k,
        start_frame=start_frame,
        num_frames=t,
        valid_frames=valid_frames,
        start_s=start_frame / fps,
        end_s=(start_frame + valid_frames) / fps,
        start_sample=k * s,
        num_samples=s,
        valid_samples=max(0, min(s, available_samples)),
    )


def pad_frames(frames: np.ndarray | Sequence[np.ndarray], num_frames: int) -> np.ndarray:
    """Stack ``frames`` into an array of exactly ``num_frames``, repeating the last frame.

    ValueError when there are no frames (nothing to repeat) or more than ``num_frames``.
    """
    stacked = np.asarray(frames) if isinstance(frames, np.ndarray) else np.stack(list(frames))
    if len(stacked) == 0:
        raise ValueError("pad_frames needs at least one frame")
    if len(stacked) > num_frames:
        raise ValueError(f"{len(stacked)} frames do not fit in {num_frames}")
    if len(stacked) == num_frames:
        return stacked
    tail = np.repeat(stacked[-1:], num_frames - len(stacked), axis=0)
    return np.concatenate([stacked, tail], axis=0)


def pad_samples(wav: np.ndarray, num_samples: int) -> np.ndarray:
    """Return ``wav`` (1-D) zero-padded at the end to exactly ``num_samples`` (same dtype).

    ValueError when ``wav`` is longer than ``num_samples``.
    """
    if wav.ndim != 1:
        raise ValueError(f"pad_samples expects a 1-D waveform, got shape {wav.shape}")
    if len(wav) > num_samples:
        raise ValueError(f"{len(wav)} samples do not fit in {num_samples}")
    out = np.zeros(num_samples, dtype=wav.dtype)
    out[: len(wav)] = wav
    return out
