"""Lip2Wav's mel spectrogram of a clip (and its inverse, for listening and scoring).

Mel (``features.mel`` in ``params.yaml``): the same numbers as Lip2Wav's
``synthesizer/audio.py`` ``melspectrogram(wav, hparams)`` run with its pinned librosa 0.7,
so models and checkpoints trained on Lip2Wav's features read lipflow's:

1. pre-emphasis ``lfilter([1, -0.97], [1], wav)``;
2. STFT, n_fft 800, hop 200, window 800 (periodic Hann), *centred frames with reflect
   padding*: librosa 0.7's default. librosa >= 0.10 pads with zeros by default, which
   changes the first and last frames, so ``pad_mode='reflect'`` is passed explicitly;
3. magnitude (not power), Slaney mel basis (``htk=False``, ``norm='slaney'``), 80 bands,
   55-7600 Hz;
4. ``20 * log10(max(10 ** (min_level_db / 20), x)) - ref_level_db``;
5. symmetric normalisation ``clip(2m * (S - min_level_db) / -min_level_db - m, -m, m)``
   with ``m = max_abs_value``.

A 3-second clip (48000 samples) gives ``1 + 48000 // 200 = 241`` frames. Lip2Wav returns
``(80, frames)``; lipflow returns the transpose, ``(frames, 80)``, time-major like every
other per-clip array (Zarr chunks and Dataset windows slice along time). Computation is
float64 and the result is cast to float32; Lip2Wav's librosa 0.7 ran the STFT in
complex64, so the two agree to float32 rounding (far inside the 1e-3 the tests demand).

The inverse (Lip2Wav's ``inv_mel_spectrogram``) is for listening and scoring only.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

import librosa
import numpy as np

from lipflow.tasks.features.waveform import AudioInputError, waveform
from lipflow.tasks.settings.schema import Mel
from lipflow.tasks.settings.validation import typed_section


def mel_settings(params: Mel | Mapping[str, Any] | None) -> Mel:
    """``features.mel`` (a mapping, possibly partial; None = the schema's defaults), typed."""
    return typed_section(Mel, params, "features.mel")


@functools.cache
def _mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Slaney mel basis (n_mels, 1 + n_fft // 2), cached.

    librosa builds it in float32 (as 0.7 did for Lip2Wav); it is widened to float64 once
    here so the product with the float64 magnitudes runs in BLAS (a float32 @ float64
    product falls back to numpy's slow mixed-type loop: ~15x slower for one clip).
    """
    basis = librosa.filters.mel(
        sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney"
    ).astype(np.float64)
    basis.setflags(write=False)
    return basis


@functools.cache
def _inv_mel_basis(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> np.ndarray:
    """Moore-Penrose pseudo-inverse of :func:`_mel_basis`, as Lip2Wav's ``_mel_to_linear``."""
    inv = np.linalg.pinv(_mel_basis(sr, n_fft, n_mels, fmin, fmax))
    inv.setflags(write=False)
    return inv


def _basis_key(p: Mel) -> tuple[int, int, int, float, float]:
    return (p.sample_rate_hz, p.n_fft, p.n_mels, float(p.fmin_hz), float(p.fmax_hz))


def mel_spectrogram(wav: np.ndarray, params: Mel | Mapping[str, Any] | None = None) -> np.ndarray:
    """Lip2Wav's normalised log-mel spectrogram of ``wav``, shape (frames, n_mels), float32.

    ``wav``: mono samples at ``sample_rate_hz``, int16 (scaled by 1/32768) or float in
    [-1, 1]. ``params``: the ``features.mel`` section (None = the schema's defaults).
    Frames = ``1 + len(wav) // hop_samples`` (241 for 3 s at 16 kHz). Values lie in
    ``[-max_abs_value, max_abs_value]``. Note the transpose relative to Lip2Wav, which
    returns (n_mels, frames).
    """
    p = mel_settings(params)
    x = waveform(wav)
    if x.size <= p.n_fft // 2:
        raise AudioInputError(
            f"waveform of {x.size} samples is too short for reflect-padded frames of "
            f"n_fft={p.n_fft} (needs more than {p.n_fft // 2})"
        )
    from scipy.signal import lfilter  # here: the prepare driver imports this module

    emphasised = lfilter([1.0, -p.preemphasis], [1.0], x)
    stft = librosa.stft(
        emphasised,
        n_fft=p.n_fft,
        hop_length=p.hop_samples,
        win_length=p.win_samples,
        window="hann",
        center=True,
        pad_mode="reflect",
    )
    mel = _mel_basis(*_basis_key(p)) @ np.abs(stft)
    min_level = 10.0 ** (p.min_level_db / 20.0)
    db = 20.0 * np.log10(np.maximum(min_level, mel)) - p.ref_level_db
    m = p.max_abs_value
    normalised = np.clip(2.0 * m * (db - p.min_level_db) / -p.min_level_db - m, -m, m)
    return np.ascontiguousarray(normalised.T, dtype=np.float32)


def inv_mel_spectrogram(
    mel: np.ndarray, params: Mel | Mapping[str, Any] | None = None, *, seed: int = 0
) -> np.ndarray:
    """Waveform (float32) from a :func:`mel_spectrogram` output, by Lip2Wav's recipe.

    Denormalise, dB to amplitude (adding ``ref_level_db`` back), pseudo-inverse of the mel
    basis (floored at 1e-10), raise to ``power`` (Lip2Wav's 1.5 sharpens harmonics),
    ``griffin_lim_iters`` rounds of plain Griffin-Lim (momentum 0, as Lip2Wav's loop; random
    initial phase from ``seed``, so the result is deterministic), inverse pre-emphasis.
    ``mel`` is time-major (frames, n_mels); the result has ``(frames - 1) * hop_samples``
    samples (48000 for 241 frames). For listening and scoring, not for training targets.
    """
    p = mel_settings(params)
    arr = np.asarray(mel)
    if arr.ndim != 2 or arr.shape[1] != p.n_mels or arr.shape[0] < 2:
        raise AudioInputError(
            f"expected a mel spectrogram of shape (frames >= 2, {p.n_mels}), got {arr.shape}"
        )
    if not np.issubdtype(arr.dtype, np.floating) or not np.all(np.isfinite(arr)):
        raise AudioInputError(f"mel spectrogram must hold finite floats, got dtype {arr.dtype}")
    m = p.max_abs_value
    db = (np.clip(arr.T.astype(np.float64), -m, m) + m) * -p.min_level_db / (2 * m)
    db += p.min_level_db
    amplitude = np.power(10.0, (db + p.ref_level_db) * 0.05)
    linear = np.maximum(1e-10, _inv_mel_basis(*_basis_key(p)) @ amplitude)
    y = librosa.griffinlim(
        linear**p.power,
        n_iter=p.griffin_lim_iters,
        hop_length=p.hop_samples,
        win_length=p.win_samples,
        n_fft=p.n_fft,
        window="hann",
        center=True,
        pad_mode="reflect",
        momentum=0.0,
        init="random",
        random_state=np.random.default_rng(seed),
    )
    from scipy.signal import lfilter

    wav = lfilter([1.0], [1.0, -p.preemphasis], y)
    return wav.astype(np.float32)
