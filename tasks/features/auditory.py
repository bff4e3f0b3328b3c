"""The NSL toolbox's auditory spectrogram (``wav2aud``) and an iterative inverse (``aud2wav``).

Why our own: the Gabor lip-to-speech models (GaborFea2Speech, GaborPic2Speech) regress an
autoencoder's bottleneck of this spectrogram, and score corr2 on it; the maintained
Python port (``naplib``) does not install beside numpy 2 here.

The chain follows ``wav2aud.m`` (Chi, Ru & Shamma 2005; NSL toolbox, ``paras = [frmlen,
tc, fac, shft]``), channel by channel from the highest frequency down:

1. cochlear filter of channel ``ch`` (129 filters, 24 a octave, centre frequencies
   ``440 * 2 ** ((ch - 31) / 24 + shft)`` Hz, ch = 0..128);
2. hair cell: the compression ``fac`` (``> 0``: sigmoid ``1 / (1 + exp(-y / fac))``;
   ``0``: ``y > 0``; ``-1``: half-wave rectifier; ``-2``: linear), then, unless linear, a
   one-pole low-pass with a 0.5 ms time constant;
3. lateral inhibition: this channel minus the next higher one, half-wave rectified;
4. leaky integration with time constant ``tc`` ms, sampled every ``frmlen`` ms (the
   value at the last sample of each frame; ``tc = 0``: the frame mean).

128 output channels (the lowest 128 differences). Sample rate ``16 kHz * 2 ** shft``
(the NSL convention: ``shft = -1`` is 8 kHz, what the Gabor original ran with
``loadload``'s default ``paras = [8, 8, -2, -1]`` on 8-kHz audio: 125 frames a second).

The one deliberate difference: NSL's cochlear filters are coefficients shipped as a
data file (``aud24.mat``), which we neither have nor copy. Each channel's filter here is
a 4th-order IIR gammatone (``scipy.signal.gammatone``) at NSL's centre frequency; the rest
of the chain is the equations above. Values therefore differ from MATLAB's in scale and
filter shape, not in layout (channels, frames, frame rate) or meaning.

``aud2wav`` inverts by projection, as NSL's: start from noise; each iteration filters the
current signal through the cochlea, rescales every channel's output sample by
``target / current`` of its frame, and re-synthesises by time-reversed filtering (a
zero-phase sum over channels). Enough for listening and for waveform metrics.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
from scipy.signal import gammatone, lfilter

#: channels in the output (the filterbank has one more: inhibition takes differences)
N_CHANNELS = 128
#: filters per octave
PER_OCTAVE = 24
#: index (0-based) of the 440 Hz filter in the 129-filter bank
A4_INDEX = 31
#: hair-cell time constant (ms)
HAIRCELL_TC_MS = 0.5


@dataclass(frozen=True)
class AudParams:
    """NSL's ``paras``: frame length (ms), integration time constant (ms), compression
    factor, octave shift. The defaults are ``loadload``'s, which the Gabor original used."""

    frmlen: float = 8.0
    tc: float = 8.0
    fac: float = -2.0
    shft: float = -1.0

    @property
    def sample_rate(self) -> int:
        """Sample rate the parameters assume: 16 kHz shifted by ``shft`` octaves."""
        return int(round(16000 * 2.0**self.shft))

    @property
    def frame_samples(self) -> int:
        """``L_frm = round(frmlen * 2 ** (4 + shft))``: samples a frame."""
        return int(round(self.frmlen * 2.0 ** (4 + self.shft)))

    @property
    def frames_per_second(self) -> float:
        return self.sample_rate / self.frame_samples


def centre_frequencies(shft: float = -1.0) -> np.ndarray:
    """Centre frequencies (Hz) of the 129 cochlear filters, lowest first.

    ``440 * 2 ** ((k - 31) / 24 + shft)``: 180 Hz .. 7.2 kHz at 16 kHz (``shft = 0``),
    half that at 8 kHz. Output channel ``k`` (0..127) is filter ``k`` minus filter ``k+1``.
    """
    k = np.arange(N_CHANNELS + 1)
    return 440.0 * 2.0 ** ((k - A4_INDEX) / PER_OCTAVE + shft)


@functools.lru_cache(maxsize=8)
def _filterbank(shft: float) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    fs = 16000 * 2.0**shft
    return tuple(gammatone(float(f), "iir", fs=fs) for f in centre_frequencies(shft))


def _unitseq(x: np.ndarray) -> np.ndarray:
    """NSL's ``unitseq``: zero mean, unit variance (a silent signal stays zeros)."""
    x = np.asarray(x, dtype=np.float64) - float(np.mean(x))
    sd = float(np.std(x))
    return x / sd if sd > 0 else x


def _haircell(y: np.ndarray, p: AudParams, beta: float) -> np.ndarray:
    if p.fac > 0:
        y = 1.0 / (1.0 + np.exp(-y / p.fac))
    elif p.fac == 0:
        y = (y > 0).astype(np.float64)
    elif p.fac == -1:
        y = np.maximum(y, 0.0)
    elif p.fac != -2:
        raise ValueError(f"unsupported compression factor fac={p.fac}")
    if p.fac != -2:
        y = lfilter([1.0], [1.0, -beta], y, axis=-1)
    return y


def _cochlea(x: np.ndarray, p: AudParams) -> np.ndarray:
    """(129, n) cochlear filter outputs of a padded signal."""
    return np.stack([lfilter(b, a, x) for b, a in _filterbank(p.shft)])


def _integrate(y1: np.ndarray, p: AudParams, frames: int) -> np.ndarray:
    """Steps 2-4 on the (129, n) cochlear outputs: (frames, 128)."""
    per_ms = 2.0 ** (4 + p.shft)  # samples a millisecond
    beta = math.exp(-1.0 / (HAIRCELL_TC_MS * per_ms))
    y2 = _haircell(y1, p, beta)
    y4 = np.maximum(y2[:-1] - y2[1:], 0.0)  # channel minus the next higher one
    length = p.frame_samples
    if p.tc:
        alpha = math.exp(-1.0 / (p.tc * per_ms))
        y5 = lfilter([1.0], [1.0, -alpha], y4, axis=-1)
        return y5[:, length - 1 :: length][:, :frames].T.copy()
    return y4.reshape(N_CHANNELS, frames, length).mean(axis=2).T.copy()


def wav2aud(x: np.ndarray, params: AudParams | None = None, normalise: bool = True) -> np.ndarray:
    """Waveform at ``params.sample_rate`` -> (frames, 128) auditory spectrogram (>= 0).

    ``frames = ceil(len(x) / frame_samples)`` (the signal is zero-padded to whole frames,
    as NSL does). ``normalise``: first make the signal zero mean, unit variance (NSL's
    ``unitseq``, which the Gabor original applied before ``wav2aud``).
    """
    p = params or AudParams()
    x = _unitseq(x) if normalise else np.asarray(x, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise ValueError(f"wav2aud needs a non-empty 1-D waveform, got shape {x.shape}")
    frames = math.ceil(x.size / p.frame_samples)
    padded = np.zeros(frames * p.frame_samples)
    padded[: x.size] = x
    return _integrate(_cochlea(padded, p), p, frames)


def aud2wav(
    aud: np.ndarray, params: AudParams | None = None, iterations: int = 20, seed: int = 0
) -> np.ndarray:
    """(frames, 128) auditory spectrogram -> waveform of ``frames * frame_samples`` samples.

    Iterative projection from seeded noise (see module doc); the result is scaled to unit
    variance (the spectrogram's own scale came from a ``unitseq`` signal), then to peak
    0.9 when louder, so it can be written as PCM.
    """
    p = params or AudParams()
    target = np.maximum(np.asarray(aud, dtype=np.float64), 0.0)
    if target.ndim != 2 or target.shape[1] != N_CHANNELS or target.shape[0] == 0:
        raise ValueError(f"aud2wav needs (frames, {N_CHANNELS}), got shape {target.shape}")
    frames, length = target.shape[0], p.frame_samples
    filters = _filterbank(p.shft)
    x = np.random.default_rng(seed).standard_normal(frames * length)
    for _ in range(max(1, iterations)):
        y1 = _cochlea(x, p)
        current = _integrate(y1, p, frames)
        gain = np.where(current > 1e-9, target / np.maximum(current, 1e-9), 0.0)
        gain = np.repeat(np.minimum(gain, 1e3), length, axis=0).T  # (128, samples)
        shaped = y1[:N_CHANNELS] * gain
        x = np.zeros(frames * length)
        for ch, (b, a) in enumerate(filters[:N_CHANNELS]):
            x += lfilter(b, a, shaped[ch][::-1])[::-1]
        x = _unitseq(x)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    return (x * (0.9 / peak) if peak > 0.9 else x).astype(np.float32)
