"""Audio features of a clip: Lip2Wav's mel spectrogram (and its inverse) and MFEC cubes.

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

MFEC (``features.mfec``): the log mel-filterbank energy cube of the coupled 3D CNN work
(Torfi et al.): ``speechpy.feature.lmfe`` then ``speechpy.feature.extract_derivative_feature``,
computed by speechpy itself (made to run on numpy 2 by
:mod:`lipflow.tasks.features.speechpy_compat`).
Quirks of speechpy that are kept on purpose, because the contract is "equal to speechpy":

- ``stack_frames(zero_padding=False)`` makes ``floor((N - L) / S)`` frames, one fewer than
  fit: 48000 samples with 320-sample frames give 149, not 150;
- ``low_frequency=0`` is read as "unset" (``low_freq or 300``): the filters span 300 Hz to
  Nyquist;
- ``derivative_extraction`` works along the *filter* axis with edge padding, and its
  subtraction sits on a line of its own (a no-op statement), so the "delta" channels are
  ``(F[j+1] + 2 F[j+2]) / 10`` (then the same again of that), not temporal differences.

Input scaling for MFEC is ``features.mfec.input_units``: ``float`` feeds samples in
[-1, 1) (int16 / 32768), which is what the original project's input pipeline ended up
feeding (``code/speech-input/input_feature.py`` reads with ``scipy.io.wavfile`` and then
re-reads with ``soundfile.read``, whose floats win); ``int16`` feeds int16-valued floats
(``scipy.io.wavfile`` alone). The choice shifts the static channel by ``2 ln 32768``.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import librosa
import numpy as np
import scipy.signal
import speechpy

from lipflow.tasks.common.errors import ConfigError, MediaError
from lipflow.tasks.features.speechpy_compat import ensure_speechpy_numpy2

ensure_speechpy_numpy2()

INT16_FULL_SCALE = 32768.0


class AudioInputError(MediaError):
    """A waveform or mel given to a feature function has the wrong shape, type or values."""


def _from_mapping(cls: type, params: Mapping[str, Any] | None, section: str) -> Any:
    """Build a params dataclass from a ``params.yaml`` section (partial sections allowed)."""
    if params is None:
        return cls()
    if not isinstance(params, Mapping):
        raise ConfigError(f"params.yaml '{section}' must be a mapping, got {type(params).__name__}")
    known = {f.name: f.type for f in fields(cls)}
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ConfigError(
            f"params.yaml '{section}' has unknown key(s) {unknown}; known: {sorted(known)}"
        )
    values: dict[str, Any] = {}
    defaults = cls()
    for key, value in params.items():
        expected = type(getattr(defaults, key))
        if expected is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not isinstance(value, expected) or isinstance(value, bool):
            raise ConfigError(
                f"params.yaml '{section}.{key}' must be {expected.__name__}, got {value!r}"
            )
        values[key] = value
    return cls(**values)


@dataclass(frozen=True)
class MelParams:
    """``features.mel`` in ``params.yaml``; defaults are Lip2Wav's hparams (and the file's)."""

    sample_rate_hz: int = 16000
    preemphasis: float = 0.97
    n_fft: int = 800
    hop_samples: int = 200
    win_samples: int = 800
    n_mels: int = 80
    fmin_hz: float = 55.0
    fmax_hz: float = 7600.0
    ref_level_db: float = 20.0
    min_level_db: float = -100.0
    max_abs_value: float = 4.0
    griffin_lim_iters: int = 60
    power: float = 1.5

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> MelParams:
        """Validate a ``features.mel`` mapping (None = defaults) into :class:`MelParams`."""
        p = _from_mapping(cls, params, "features.mel")
        if not 0 <= p.fmin_hz < p.fmax_hz <= p.sample_rate_hz / 2:
            raise ConfigError(
                f"features.mel needs 0 <= fmin_hz < fmax_hz <= sample_rate_hz/2, got "
                f"fmin_hz={p.fmin_hz}, fmax_hz={p.fmax_hz}, sample_rate_hz={p.sample_rate_hz}"
            )
        if not 0 < p.win_samples <= p.n_fft or p.hop_samples <= 0:
            raise ConfigError(
                f"features.mel needs 0 < win_samples <= n_fft and hop_samples > 0, got "
                f"win_samples={p.win_samples}, n_fft={p.n_fft}, hop_samples={p.hop_samples}"
            )
        if p.n_mels <= 0 or p.griffin_lim_iters < 1 or p.power <= 0:
            raise ConfigError(
                f"features.mel needs n_mels > 0, griffin_lim_iters >= 1 and power > 0, got "
                f"{p.n_mels}, {p.griffin_lim_iters}, {p.power}"
            )
        if p.min_level_db >= 0 or p.max_abs_value <= 0:
            raise ConfigError(
                f"features.mel needs min_level_db < 0 and max_abs_value > 0, got "
                f"{p.min_level_db} and {p.max_abs_value}"
            )
        return p


@dataclass(frozen=True)
class MfecParams:
    """``features.mfec`` in ``params.yaml``; defaults are the coupled 3D CNN settings."""

    sample_rate_hz: int = 16000
    frame_seconds: float = 0.02
    stride_seconds: float = 0.02
    n_filters: int = 40
    n_fft: int = 1024
    input_units: str = "float"

    @classmethod
    def from_mapping(cls, params: Mapping[str, Any] | None) -> MfecParams:
        """Validate a ``features.mfec`` mapping (None = defaults) into :class:`MfecParams`."""
        p = _from_mapping(cls, params, "features.mfec")
        if p.input_units not in ("float", "int16"):
            raise ConfigError(
                f"features.mfec.input_units must be 'float' or 'int16', got {p.input_units!r}"
            )
        if p.frame_seconds <= 0 or p.stride_seconds <= 0 or p.n_filters <= 0:
            raise ConfigError(
                "features.mfec needs frame_seconds, stride_seconds and n_filters > 0, got "
                f"{p.frame_seconds}, {p.stride_seconds}, {p.n_filters}"
            )
        if p.n_fft < round(p.frame_seconds * p.sample_rate_hz):
            raise ConfigError(
                f"features.mfec.n_fft ({p.n_fft}) is shorter than a frame "
                f"({p.frame_seconds} s at {p.sample_rate_hz} Hz)"
            )
        return p


def _waveform(wav: np.ndarray, units: str = "float") -> np.ndarray:
    """Return a 1-D float64 copy of ``wav`` in ``units`` (int16 input is full scale 32768)."""
    arr = np.asarray(wav)
    if arr.ndim != 1 or arr.size == 0:
        raise AudioInputError(f"expected a non-empty mono waveform (1-D), got shape {arr.shape}")
    if arr.dtype == np.int16:
        out = arr.astype(np.float64)
        return out / INT16_FULL_SCALE if units == "float" else out
    if not np.issubdtype(arr.dtype, np.floating):
        raise AudioInputError(
            f"expected int16 samples or floats in [-1, 1], got dtype {arr.dtype}"
        )
    out = arr.astype(np.float64)
    if not np.all(np.isfinite(out)):
        raise AudioInputError("waveform holds NaN or infinite samples")
    return out * INT16_FULL_SCALE if units == "int16" else out


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


def _basis_key(p: MelParams) -> tuple[int, int, int, float, float]:
    return (p.sample_rate_hz, p.n_fft, p.n_mels, float(p.fmin_hz), float(p.fmax_hz))


def mel_spectrogram(wav: np.ndarray, params: Mapping[str, Any] | None = None) -> np.ndarray:
    """Lip2Wav's normalised log-mel spectrogram of ``wav``, shape (frames, n_mels), float32.

    ``wav``: mono samples at ``sample_rate_hz``, int16 (scaled by 1/32768) or float in
    [-1, 1]. ``params``: the ``features.mel`` mapping (None = the defaults, which equal
    ``params.yaml``). Frames = ``1 + len(wav) // hop_samples`` (241 for 3 s at 16 kHz).
    Values lie in ``[-max_abs_value, max_abs_value]``. Note the transpose relative to
    Lip2Wav, which returns (n_mels, frames).
    """
    p = MelParams.from_mapping(params)
    x = _waveform(wav)
    if x.size <= p.n_fft // 2:
        raise AudioInputError(
            f"waveform of {x.size} samples is too short for reflect-padded frames of "
            f"n_fft={p.n_fft} (needs more than {p.n_fft // 2})"
        )
    emphasised = scipy.signal.lfilter([1.0, -p.preemphasis], [1.0], x)
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
    mel: np.ndarray, params: Mapping[str, Any] | None = None, *, seed: int = 0
) -> np.ndarray:
    """Waveform (float32) from a :func:`mel_spectrogram` output, by Lip2Wav's recipe.

    Denormalise, dB to amplitude (adding ``ref_level_db`` back), pseudo-inverse of the mel
    basis (floored at 1e-10), raise to ``power`` (Lip2Wav's 1.5 sharpens harmonics),
    ``griffin_lim_iters`` rounds of plain Griffin-Lim (momentum 0, as Lip2Wav's loop; random
    initial phase from ``seed``, so the result is deterministic), inverse pre-emphasis.
    ``mel`` is time-major (frames, n_mels); the result has ``(frames - 1) * hop_samples``
    samples (48000 for 241 frames). For listening and scoring, not for training targets.
    """
    p = MelParams.from_mapping(params)
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
    wav = scipy.signal.lfilter([1.0], [1.0, -p.preemphasis], y)
    return wav.astype(np.float32)


@functools.cache
def _speechpy_filterbank(n_filters: int, coefficients: int, sample_rate_hz: int) -> np.ndarray:
    """``speechpy.feature.filterbanks`` as ``speechpy.feature.mfe`` calls it, built once.

    speechpy rebuilds it on every call, which costs as much as the rest of a clip's MFEC.
    """
    bank = speechpy.feature.filterbanks(n_filters, coefficients, sample_rate_hz, 0,
                                        sample_rate_hz / 2)
    bank.setflags(write=False)
    return bank


def _speechpy_lmfe(x: np.ndarray, p: MfecParams) -> np.ndarray:
    """``speechpy.feature.lmfe(x, ...)`` with lipflow's arguments, step for step.

    The same speechpy functions in the same order as its ``mfe`` + ``lmfe`` (float
    cast, rectangular frames without zero padding, power spectrum, zero handling, the
    filterbank product, log), except that the filterbank comes from a cache. Bit-equal
    to calling ``speechpy.feature.lmfe`` (tested).
    """
    frames = speechpy.processing.stack_frames(
        x.astype(float), sampling_frequency=p.sample_rate_hz, frame_length=p.frame_seconds,
        frame_stride=p.stride_seconds, filter=lambda n: np.ones((n,)), zero_padding=False,
    )
    power = speechpy.processing.power_spectrum(frames, p.n_fft)
    bank = _speechpy_filterbank(p.n_filters, power.shape[1], p.sample_rate_hz)
    energies = speechpy.functions.zero_handling(np.dot(power, bank.T))
    return np.log(energies)


def mfec_cube(wav: np.ndarray, params: Mapping[str, Any] | None = None) -> np.ndarray:
    """speechpy's MFEC cube of ``wav``: (frames, n_filters, 3) float32.

    Channels are static log mel-filterbank energies and speechpy's first and second
    "derivatives" (see the module docstring for what speechpy actually computes).
    Frames = ``floor((N - frame) / stride)``: 149 for 48000 samples at 20 ms / 20 ms.
    ``wav``: int16 or float in [-1, 1]; scaled to ``features.mfec.input_units``.
    """
    p = MfecParams.from_mapping(params)
    x = _waveform(wav, p.input_units)
    frame = int(round(p.frame_seconds * p.sample_rate_hz))
    stride = float(round(p.stride_seconds * p.sample_rate_hz))
    if (x.size - frame) // stride < 1:
        raise AudioInputError(
            f"waveform of {x.size} samples is too short for MFEC frames of {frame} samples "
            f"every {int(stride)} (needs at least {frame + int(stride)})"
        )
    lmfe = _speechpy_lmfe(x, p)
    cube = speechpy.feature.extract_derivative_feature(lmfe)
    return np.ascontiguousarray(cube, dtype=np.float32)
