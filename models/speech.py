"""Waveforms from a speech model's batch, and the validation STOI that picks ``best.pt``.

A speech model's ``predict(model, batch)`` gives one time-major spectrogram per clip
(``(B, frames, bins)``: a Lip2Wav mel for lip2wav and gabor, whatever the model's vocoder
reads for another). Its nets module may define ``to_waveform(spectrogram, mel_params)``
(VCA-GAN: Griffin-Lim of its linear spectrogram); the default is
:func:`lipflow.tasks.features.mel.inv_mel_spectrogram`. Every waveform is cut to the
clip's valid part (the store pads clips to one length), as is the reference, the clip's
stored audio, so padding never scores.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch

from lipflow.models.registry import ModelSpec
from lipflow.models.runtime import to_device


def _valid_frames(batch: Mapping[str, Any], i: int) -> int:
    t = int(batch["video"].shape[1])
    return min(t, int(batch["valid_frames"][i])) if "valid_frames" in batch else t


def valid_samples(batch: Mapping[str, Any], i: int) -> int:
    """Audio samples of item ``i``'s valid frames (the stored audio is as long as the
    video, so samples a frame = ``wav`` length / video frames)."""
    t, n = int(batch["video"].shape[1]), int(batch["wav"].shape[1])
    return min(n, round(_valid_frames(batch, i) * n / t))


def valid_rows(batch: Mapping[str, Any], i: int, rows: int) -> int:
    """Rows of item ``i``'s ``rows``-row prediction that cover its valid frames (at least
    2: one Griffin-Lim hop)."""
    return max(2, math.ceil(_valid_frames(batch, i) * rows / int(batch["video"].shape[1])))


def reference_waveforms(batch: Mapping[str, Any]) -> list[np.ndarray]:
    """Each clip's stored audio (int16 -> float in [-1, 1)), cut to its valid samples."""
    wavs = batch["wav"].cpu().numpy()
    scale = 32768.0 if wavs.dtype == np.int16 else 1.0
    return [wavs[i, :valid_samples(batch, i)].astype(np.float64) / scale
            for i in range(len(wavs))]


def model_waveforms(spec_: ModelSpec, model: torch.nn.Module, batch: Mapping[str, Any],
                    mel_params: Mapping[str, Any] | None) -> list[np.ndarray]:
    """The model's waveform of each clip: ``to_waveform`` of its ``predict`` row, the row
    cut to the clip's valid frames first and the waveform to its valid samples."""
    device = next(model.parameters()).device
    with torch.no_grad():
        pred = spec_.predict(model, to_device(batch, device)).float().cpu().numpy()
    to_waveform = spec_.to_waveform
    out = []
    for i in range(len(pred)):
        rows = valid_rows(batch, i, pred.shape[1])
        wave = np.asarray(to_waveform(pred[i, :rows], mel_params), dtype=np.float64)
        out.append(wave[:valid_samples(batch, i)])
    return out


def val_stoi(spec_: ModelSpec, model: torch.nn.Module, batches: Iterable[Mapping[str, Any]],
             mel_params: Mapping[str, Any] | None, max_clips: int,
             sample_rate_hz: int = 16000) -> float:
    """Mean STOI (pystoi, :func:`lipflow.models.metrics.stoi_score`) of the model's speech
    over the first ``max_clips`` clips of ``batches``; NaN when none could be scored
    (no clips, or only silent references)."""
    from lipflow.models.metrics import stoi_score

    scores: list[float] = []
    seen = 0
    for batch in batches:
        if seen >= max_clips:
            break
        take = min(max_clips - seen, int(batch["video"].shape[0]))
        part = {k: v[:take] if torch.is_tensor(v) and v.ndim else v for k, v in batch.items()}
        seen += take
        for ref, deg in zip(reference_waveforms(part),
                            model_waveforms(spec_, model, part, mel_params), strict=True):
            if len(ref) and len(deg) and np.any(ref):
                value = stoi_score(ref, deg, sample_rate_hz)
                if math.isfinite(value):
                    scores.append(value)
    return float(np.mean(scores)) if scores else float("nan")
