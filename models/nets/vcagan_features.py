"""VCA-GAN's audio targets from a stored waveform: normalised log-mel and linear magnitude.

VCA-GAN (Kim et al., "Lip to Speech Synthesis with Visual Context Attentional GAN",
NeurIPS 2021) learns its own spectrograms, not lipflow's stored ``mel`` (800-sample
frames, 200 hop, dB scale). They are computed here from the stored 16 kHz ``wav`` so the
feature store needs no change. Per item, as the original's GRID dataset does:

1. a 7th-order Butterworth high-pass at 55 Hz, applied forward and backward
   (:func:`high_pass`, ``scipy.signal.filtfilt``);
2. peak normalisation ``a / max|a| * 0.9``;
3. pre-emphasis ``y[n] = x[n] - 0.97 x[n-1]``, then clamp to [-1, 1];
4. STFT: periodic Hann, ``n_fft = win = 640`` (40 ms), hop 160 (10 ms, 100 frames per
   second, 4 per video frame at 25 fps), reflect padding of 320 on each side; magnitude
   ``spec`` of 321 bins, unnormalised (the original's conv-STFT computes the same
   unscaled DFT);
5. ``mel = ln(clamp(B @ spec, 1e-5))`` with ``B`` the 80 Slaney-scale, Slaney-normalised
   bands from 55 to 7500 Hz (``librosa.filters.mel``, computed once);
6. ``mel_n = (mel - ln 1e-5) / (-ln 1e-5 / 2) - 1``, in [-1, 1];
7. cropped or zero-padded (in the normalised space, as the original pads) to ``4 T``
   frames.

Where the high-pass runs, and why: on the host, in numpy, inside
:func:`vcagan_targets`. The original filters offline with ``filtfilt``; a zero-phase
filter on the device would be a sequential IIR loop over every sample (torch has no
``lfilter`` without torchaudio) or an FFT approximation that differs from ``filtfilt``
near the edges. A training batch (22 x 25,600 int16 samples, 1.1 MB) goes to the host
and back once a step and ``filtfilt`` over it takes a few milliseconds, far below a GAN
step; every later stage runs on the batch's device with ``torch.stft``.

Differences from the original, inherent in windows cut by lipflow's dataset: the
original filters and peak-normalises the whole 3-s clip and then cuts the 40-frame
window out of its spectrogram; here a training window's own samples are filtered and
normalised (its own peak) and the STFT reflects at the window's edges, so the first and
last frame or two of a window differ slightly. Whole clips (validation, test) are the
same as the original's. A silent window (all zeros) is divided by ``1e-8`` instead of
0, so its features are the floor (``mel_n = -1``) rather than NaN.

:func:`reference_targets` computes the same formula in numpy (float64, its own framing
and ``numpy.fft``); the tests compare the two.
"""

from __future__ import annotations

import math
from functools import cache

import numpy as np
import torch

SAMPLE_RATE_HZ = 16000
N_FFT = 640
HOP_SAMPLES = 160
WIN_SAMPLES = 640
N_MELS = 80
N_BINS = N_FFT // 2 + 1  # 321
FMIN_HZ = 55.0
FMAX_HZ = 7500.0
HIGH_PASS_HZ = 55.0
HIGH_PASS_ORDER = 7
PEAK = 0.9
PREEMPHASIS = 0.97
LOG_FLOOR = 1e-5
LOG_FLOOR_LN = math.log(LOG_FLOOR)
SILENCE_PEAK = 1e-8
#: spectrogram frames per video frame at 25 fps (100 frames per second)
FRAMES_PER_SECOND = SAMPLE_RATE_HZ // HOP_SAMPLES


@cache
def mel_basis() -> np.ndarray:
    """(80, 321) float32 Slaney mel filters, 55-7500 Hz (librosa's defaults: htk=False)."""
    import librosa

    return librosa.filters.mel(sr=SAMPLE_RATE_HZ, n_fft=N_FFT, n_mels=N_MELS, fmin=FMIN_HZ,
                               fmax=FMAX_HZ, htk=False, norm="slaney").astype(np.float32)


@cache
def _butter() -> tuple[np.ndarray, np.ndarray]:
    from scipy import signal

    b, a = signal.butter(HIGH_PASS_ORDER, HIGH_PASS_HZ / (SAMPLE_RATE_HZ / 2), "high")
    return b, a


def high_pass(wav: np.ndarray) -> np.ndarray:
    """Zero-phase 55 Hz high-pass of (..., samples) float audio, along the last axis.

    The original's filter: ``butter(7, 55 / 8000, 'high')`` in (b, a) form through
    ``filtfilt`` with its default odd padding, in float64.
    """
    from scipy import signal

    b, a = _butter()
    x = np.asarray(wav, dtype=np.float64)
    if x.shape[-1] <= 3 * max(len(a), len(b)):  # filtfilt's padding needs a longer signal
        return x.copy()
    return np.ascontiguousarray(signal.filtfilt(b, a, x, axis=-1))


def as_float(wav: np.ndarray | torch.Tensor) -> np.ndarray:
    """(..., samples) audio as float64 numpy; int16 is scaled by 1/32768."""
    x = wav.detach().cpu().numpy() if isinstance(wav, torch.Tensor) else np.asarray(wav)
    scale = 1.0 / 32768.0 if x.dtype == np.int16 else 1.0
    return x.astype(np.float64) * scale


def mel_scale(log_mel: torch.Tensor) -> torch.Tensor:
    """Natural-log mel -> [-1, 1] (step 6 of the module doc)."""
    return (log_mel - LOG_FLOOR_LN) / (-LOG_FLOOR_LN / 2) - 1


def mel_unscale(mel_n: torch.Tensor) -> torch.Tensor:
    """[-1, 1] -> natural-log mel (the ``denorm`` of VCA-GAN's reconstruction loss)."""
    return (mel_n + 1) * (-LOG_FLOOR_LN / 2) + LOG_FLOOR_LN


def _fit_frames(x: torch.Tensor, frames: int) -> torch.Tensor:
    """Crop or zero-pad the last axis to ``frames``."""
    have = x.shape[-1]
    if have >= frames:
        return x[..., :frames]
    return torch.nn.functional.pad(x, (0, frames - have))


class VcaGanFeatures(torch.nn.Module):
    """Stored wav -> (mel_n (B, 1, 80, 4T), spec (B, 1, 321, 4T)), on the wav's device.

    A module so that the mel filters and the window are buffers: they move with the
    model (``.to(device)``) and are built once.
    """

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mel_basis", torch.from_numpy(mel_basis()), persistent=False)
        self.register_buffer("window", torch.hann_window(WIN_SAMPLES, periodic=True),
                             persistent=False)

    def forward(self, wav: torch.Tensor, frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``wav`` (B, samples) int16 or float; ``frames`` = 4 x video frames."""
        device = self.mel_basis.device
        filtered = high_pass(as_float(wav))  # host, float64 (see module doc)
        x = torch.from_numpy(filtered).to(device=device, dtype=torch.float32)
        with torch.autocast(device.type, enabled=False):
            peak = x.abs().amax(dim=-1, keepdim=True).clamp_min(SILENCE_PEAK)
            x = x / peak * PEAK
            x = torch.cat([x[..., :1], x[..., 1:] - PREEMPHASIS * x[..., :-1]], dim=-1)
            x = x.clamp(-1.0, 1.0)
            stft = torch.stft(x, n_fft=N_FFT, hop_length=HOP_SAMPLES, win_length=WIN_SAMPLES,
                              window=self.window, center=True, pad_mode="reflect",
                              return_complex=True)
            spec = stft.abs()  # (B, 321, N)
            mel = torch.log(torch.clamp(self.mel_basis @ spec, min=LOG_FLOOR))
            mel_n = _fit_frames(mel_scale(mel), frames)
            spec = _fit_frames(spec, frames)
        return mel_n.unsqueeze(1), spec.unsqueeze(1)


def reference_targets(wav: np.ndarray, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """The module doc's formula in numpy float64: (mel_n (80, F), spec (321, F)) of one item.

    Its own framing (reflect pad, strided frames) and ``numpy.fft.rfft``, so that it
    checks :class:`VcaGanFeatures`' use of ``torch.stft`` rather than repeating it.
    """
    x = high_pass(as_float(wav))
    x = x / max(np.abs(x).max(), SILENCE_PEAK) * PEAK
    x = np.concatenate([x[:1], x[1:] - PREEMPHASIS * x[:-1]])
    x = np.clip(x, -1.0, 1.0)
    pad = N_FFT // 2
    padded = np.pad(x, pad, mode="reflect")
    count = 1 + (len(padded) - N_FFT) // HOP_SAMPLES
    idx = np.arange(N_FFT)[None, :] + HOP_SAMPLES * np.arange(count)[:, None]
    window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)  # periodic Hann
    spec = np.abs(np.fft.rfft(padded[idx] * window, axis=-1)).T  # (321, count)
    mel = np.log(np.maximum(mel_basis().astype(np.float64) @ spec, LOG_FLOOR))
    mel_n = (mel - LOG_FLOOR_LN) / (-LOG_FLOOR_LN / 2) - 1

    def fit(a: np.ndarray) -> np.ndarray:
        return a[:, :frames] if a.shape[1] >= frames else np.pad(
            a, ((0, 0), (0, frames - a.shape[1])))

    return fit(mel_n), fit(spec)
