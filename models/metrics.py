"""Scores for generated speech and for audio-visual sync, as the seed papers computed them.

Speech (per clip, 16 kHz float waveforms in [-1, 1]):

* :func:`stoi_score` / :func:`estoi_score` -- pystoi at 16 kHz (it resamples to 10 kHz
  internally, as the reference implementation does).
* :func:`pesq_lip2wav` -- ``pesq(16000, ref, deg, 'nb')``, the call Lip2Wav's scoring
  script makes (narrow-band mode on 16 kHz input).
* :func:`pesq_vcagan` -- both signals resampled to 8 kHz with
  ``scipy.signal.resample_poly`` and scored narrow band, as VCA-GAN reported it. The two
  PESQ variants differ by a few tenths on the same pair, so papers are only comparable
  within one variant; we report both.
* :func:`lip2wav_protocol` / :func:`vcagan_protocol` -- STOI, ESTOI and PESQ of one
  clip the way each paper prepared the waveform (peak-normalised int16 / clipped to
  [-1, 1]); a score that cannot be computed is an :class:`Excluded` with its reason, so
  evaluation can count exclusions instead of dropping NaNs.
* :func:`mel_cepstral_distortion` -- MCD in dB between two mel spectrograms (formula in
  the function docstring).
* :func:`mel_l1` -- mean absolute difference of two (normalised) mels.
* :func:`spectrogram_correlation` -- 2-D Pearson correlation (MATLAB ``corr2``), the
  GaborFea2Speech score; on a Lip2Wav log-mel for the mel models (``spectrogram_correlation``
  in the summaries) and on the NSL auditory spectrogram for the Gabor models
  (``aud_corr2``, the paper's representation), where :func:`outlier_trimmed_mean` gives
  the paper's average (clips beyond 2 standard deviations left out).

Sync / verification (labels 1 = genuine pair, scores: higher = more likely genuine):
:func:`equal_error_rate`, :func:`roc_auc`, :func:`average_precision` and
:func:`kfold_scores` (mean and std over stratified folds, the paper's 10-fold protocol).
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.fft import dct
from scipy.signal import resample_poly

from lipflow.tasks.common.errors import LipflowError

#: ``10 * sqrt(2) / ln(10)``: turns a natural-log cepstral distance into decibels.
MCD_CONSTANT_DB = 10.0 * math.sqrt(2.0) / math.log(10.0)


class MetricError(LipflowError):
    """Inputs a metric cannot score (wrong rate, empty, mismatched shapes)."""


# --------------------------------------------------------------------------- speech


def _as_float_wave(x: np.ndarray, name: str) -> np.ndarray:
    """Float64 mono waveform in [-1, 1]; int16 input is scaled by 1/32768."""
    arr = np.asarray(x)
    if arr.ndim != 1 or arr.size == 0:
        raise MetricError(f"{name} must be a non-empty 1-D waveform, got shape {arr.shape}")
    if arr.dtype == np.int16:
        return arr.astype(np.float64) / 32768.0
    return arr.astype(np.float64)


def _pair(ref: np.ndarray, deg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both waveforms as floats, truncated to the shorter (generated audio may be longer)."""
    r, d = _as_float_wave(ref, "reference"), _as_float_wave(deg, "degraded")
    n = min(len(r), len(d))
    return r[:n], d[:n]


def stoi_score(ref: np.ndarray, deg: np.ndarray, sample_rate_hz: int = 16000) -> float:
    """Short-time objective intelligibility (0..1) of ``deg`` against ``ref``."""
    from pystoi import stoi

    r, d = _pair(ref, deg)
    return float(stoi(r, d, sample_rate_hz, extended=False))


def estoi_score(ref: np.ndarray, deg: np.ndarray, sample_rate_hz: int = 16000) -> float:
    """Extended STOI (Jensen & Taal 2016), the variant lip-to-speech papers report as ESTOI."""
    from pystoi import stoi

    r, d = _pair(ref, deg)
    return float(stoi(r, d, sample_rate_hz, extended=True))


def _pesq(rate: int, ref: np.ndarray, deg: np.ndarray) -> float:
    """PESQ narrow band; NaN when pesq finds no utterance (silence) rather than a crash."""
    from pesq import PesqError, pesq

    if not np.any(ref) or not np.any(deg):
        return float("nan")  # silence: pesq would divide by zero and find no utterance
    try:
        return float(pesq(rate, ref, deg, "nb"))
    except PesqError:
        return float("nan")


def pesq_lip2wav(ref: np.ndarray, deg: np.ndarray, sample_rate_hz: int = 16000) -> float:
    """PESQ as Lip2Wav scored it: ``pesq(16000, ref, deg, 'nb')`` on 16 kHz audio.

    NaN when the reference holds no speech the algorithm can find.
    """
    if sample_rate_hz != 16000:
        raise MetricError(f"pesq_lip2wav needs 16 kHz audio, got {sample_rate_hz} Hz")
    r, d = _pair(ref, deg)
    return _pesq(16000, r, d)


def pesq_vcagan(ref: np.ndarray, deg: np.ndarray, sample_rate_hz: int = 16000) -> float:
    """PESQ as VCA-GAN scored it: both resampled to 8 kHz (polyphase), narrow band."""
    r, d = _pair(ref, deg)
    g = math.gcd(8000, int(sample_rate_hz))
    up, down = 8000 // g, int(sample_rate_hz) // g
    return _pesq(8000, resample_poly(r, up, down), resample_poly(d, up, down))


@dataclass(frozen=True)
class Excluded:
    """A clip a metric could not score, and why (``silent_reference``, ...)."""

    reason: str


Score = float | Excluded

#: The metrics each paper protocol reports, in the order they are written.
PROTOCOL_METRICS = ("stoi", "estoi", "pesq")


def peak_normalise_int16(wav: np.ndarray) -> np.ndarray:
    """``wav / max(abs(wav)) * 32767`` as int16, Lip2Wav's ``save_wav``; silence stays zeros.

    Lip2Wav scored the wav files it wrote, so its generated speech always peaks at full
    scale whatever the vocoder's level (Griffin-Lim peaks near 2 even on ground-truth
    mels): scoring the unnormalised float signal instead moves STOI by up to 0.06.
    """
    x = np.asarray(wav, dtype=np.float64)
    if x.ndim != 1 or x.size == 0:
        raise MetricError(f"expected a non-empty 1-D waveform, got shape {x.shape}")
    peak = float(np.max(np.abs(x)))
    if peak == 0.0 or not math.isfinite(peak):
        return np.zeros(len(x), dtype=np.int16)
    return (x / peak * 32767).astype(np.int16)


def clip_unit(wav: np.ndarray) -> np.ndarray:
    """The waveform clipped to [-1, 1], what writing float audio to 16-bit PCM does."""
    return np.clip(_as_float_wave(wav, "waveform"), -1.0, 1.0)


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower().removesuffix("_error")


def _stoi_checked(ref: np.ndarray, deg: np.ndarray, rate: int, extended: bool) -> Score:
    """pystoi's score, or Excluded where it returns its 1e-5 "not enough frames" stand-in."""
    from pystoi import stoi

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(ref, deg, rate, extended=extended))
    if any("Not enough STFT frames" in str(w.message) for w in caught):
        return Excluded("too_short_for_stoi")
    return value


def _pesq_checked(rate: int, ref: np.ndarray, deg: np.ndarray) -> Score:
    """PESQ narrow band, or Excluded naming why pesq could not score the pair."""
    from pesq import PesqError, pesq

    if not np.any(deg):
        return Excluded("silent_output")
    try:
        return float(pesq(rate, ref, deg, "nb"))
    except PesqError as err:
        return Excluded(_snake(type(err).__name__))


def _protocol(ref: np.ndarray, deg: np.ndarray, sample_rate_hz: int,
              pesq_rate_hz: int) -> dict[str, Score]:
    if not np.any(ref):
        return dict.fromkeys(PROTOCOL_METRICS, Excluded("silent_reference"))
    n = min(len(ref), len(deg))
    r, d = ref[:n], deg[:n]
    scores: dict[str, Score] = {
        "stoi": _stoi_checked(r, d, sample_rate_hz, extended=False),
        "estoi": _stoi_checked(r, d, sample_rate_hz, extended=True),
    }
    if pesq_rate_hz != sample_rate_hz:
        g = math.gcd(pesq_rate_hz, sample_rate_hz)
        r = resample_poly(r, pesq_rate_hz // g, sample_rate_hz // g)
        d = resample_poly(d, pesq_rate_hz // g, sample_rate_hz // g)
    scores["pesq"] = _pesq_checked(pesq_rate_hz, r, d)
    return scores


def lip2wav_protocol(ref: np.ndarray, deg: np.ndarray,
                     sample_rate_hz: int = 16000) -> dict[str, Score]:
    """STOI, ESTOI and PESQ (``pesq(16000, ref, deg, 'nb')``) as Lip2Wav scored them.

    Both waveforms go through :func:`peak_normalise_int16` first, as Lip2Wav's test
    script wrote reference and generated audio to 16-bit wavs before scoring them; pass
    the int16 array :func:`peak_normalise_int16` returns to write the file scored here.
    """
    if sample_rate_hz != 16000:
        raise MetricError(f"the Lip2Wav protocol needs 16 kHz audio, got {sample_rate_hz} Hz")
    r = peak_normalise_int16(_as_float_wave(ref, "reference")).astype(np.float64) / 32768.0
    d = peak_normalise_int16(_as_float_wave(deg, "degraded")).astype(np.float64) / 32768.0
    return _protocol(r, d, 16000, 16000)


def vcagan_protocol(ref: np.ndarray, deg: np.ndarray,
                    sample_rate_hz: int = 16000) -> dict[str, Score]:
    """STOI and ESTOI at ``sample_rate_hz``, PESQ narrow band at 8 kHz, as VCA-GAN did.

    The generated waveform is clipped to [-1, 1] (:func:`clip_unit`); for PESQ both are
    resampled to 8 kHz with ``scipy.signal.resample_poly`` (as :func:`pesq_vcagan`).
    """
    r = _as_float_wave(ref, "reference")
    return _protocol(r, clip_unit(deg), int(sample_rate_hz), 8000)


def lip2wav_mel_to_ln(
    mel: np.ndarray,
    max_abs_value: float = 4.0,
    min_level_db: float = -100.0,
    ref_level_db: float = 20.0,
) -> np.ndarray:
    """Undo Lip2Wav's symmetric mel normalisation, giving natural-log mel amplitudes.

    Lip2Wav stores ``clip(2A * (dB - ref - min) / -min - A, -A, A)`` with ``A =
    max_abs_value`` and ``dB = 20 log10(amplitude)``; inverting gives dB, and
    ``ln(amplitude) = dB * ln(10) / 20``. Defaults match ``features.mel`` in params.yaml.
    """
    m = np.clip(np.asarray(mel, dtype=np.float64), -max_abs_value, max_abs_value)
    db = (m + max_abs_value) * (-min_level_db) / (2.0 * max_abs_value) + min_level_db
    db = db + ref_level_db
    return db * math.log(10.0) / 20.0


def _aligned(ref: np.ndarray, deg: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Two (frames, bands) arrays truncated to the common number of frames."""
    a, b = np.asarray(ref, dtype=np.float64), np.asarray(deg, dtype=np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or min(len(a), len(b)) == 0:
        raise MetricError(f"{name} needs two (frames, bands) arrays, got {a.shape} and {b.shape}")
    n = min(len(a), len(b))
    return a[:n], b[:n]


def mel_cepstral_distortion(
    ln_mel_ref: np.ndarray, ln_mel_deg: np.ndarray, n_coeffs: int = 13
) -> float:
    """Mel cepstral distortion in dB between two natural-log mel spectrograms (frames, bands).

    Cepstra are MFCC-like: ``c = DCT-II(ln_mel, norm='ortho')`` along the bands, keeping
    coefficients 1..``n_coeffs`` (c0, the frame energy, is excluded). Then::

        MCD = 10 * sqrt(2) / ln(10) * mean_t sqrt(sum_k (c_ref[t,k] - c_deg[t,k])^2)

    over frames truncated to the shorter input (no DTW: both come from the same clip
    span). Lip2Wav-normalised mels go through :func:`lip2wav_mel_to_ln` first.
    """
    a, b = _aligned(ln_mel_ref, ln_mel_deg, "mel_cepstral_distortion")
    ca = dct(a, type=2, norm="ortho", axis=1)[:, 1 : n_coeffs + 1]
    cb = dct(b, type=2, norm="ortho", axis=1)[:, 1 : n_coeffs + 1]
    return float(MCD_CONSTANT_DB * np.mean(np.sqrt(np.sum((ca - cb) ** 2, axis=1))))


def mel_l1(mel_ref: np.ndarray, mel_deg: np.ndarray) -> float:
    """Mean absolute difference between two mels (the training loss, as a score)."""
    a, b = _aligned(mel_ref, mel_deg, "mel_l1")
    return float(np.mean(np.abs(a - b)))


def spectrogram_correlation(spec_ref: np.ndarray, spec_deg: np.ndarray) -> float:
    """2-D Pearson correlation of two spectrograms (MATLAB ``corr2``), frames truncated.

    NaN when either is constant (the correlation is undefined).
    """
    a, b = _aligned(spec_ref, spec_deg, "spectrogram_correlation")
    a, b = a - a.mean(), b - b.mean()
    denom = math.sqrt(float(np.sum(a * a)) * float(np.sum(b * b)))
    if denom == 0.0:
        return float("nan")
    return float(np.sum(a * b) / denom)


def outlier_trimmed_mean(values: Sequence[float]) -> float:
    """Mean of the values within ``mean +- 2 std`` (``np.std``, ddof 0): the Gabor
    paper's ``removeOutliers`` (``Corr2d_eva.py``), how its 72-81% corr2 were averaged.
    NaN for no values."""
    x = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if x.size == 0:
        return float("nan")
    mean, std = float(x.mean()), float(x.std())
    kept = x[(x >= mean - 2 * std) & (x <= mean + 2 * std)]
    return float(kept.mean())


# --------------------------------------------------------------------------- verification


def _labels_scores(labels: Sequence[int], scores: Sequence[float]) -> tuple[np.ndarray, ...]:
    y, s = np.asarray(labels).astype(int).ravel(), np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise MetricError(f"{len(y)} labels but {len(s)} scores")
    if set(np.unique(y)) != {0, 1}:
        raise MetricError("verification scores need both genuine (1) and impostor (0) labels")
    return y, s


def equal_error_rate(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Error rate where false-positive rate equals false-negative rate (0 perfect, 1 inverted).

    From the ROC (``sklearn.metrics.roc_curve``, every threshold kept), linearly
    interpolated between the two operating points where FNR - FPR changes sign.
    """
    from sklearn.metrics import roc_curve

    y, s = _labels_scores(labels, scores)
    fpr, tpr, _ = roc_curve(y, s, drop_intermediate=False)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # starts at 1 (threshold +inf), ends at -1 or 0: decreasing
    i = int(np.argmax(diff <= 0))
    if i == 0:
        return float((fpr[0] + fnr[0]) / 2)
    d0, d1 = diff[i - 1], diff[i]
    w = d0 / (d0 - d1)  # where the straight line between the two points crosses zero
    return float(fpr[i - 1] + w * (fpr[i] - fpr[i - 1]))


def roc_auc(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Area under the ROC curve (``sklearn.metrics.roc_auc_score``)."""
    from sklearn.metrics import roc_auc_score

    y, s = _labels_scores(labels, scores)
    return float(roc_auc_score(y, s))


def average_precision(labels: Sequence[int], scores: Sequence[float]) -> float:
    """Average precision with genuine pairs as positives (sklearn)."""
    from sklearn.metrics import average_precision_score

    y, s = _labels_scores(labels, scores)
    return float(average_precision_score(y, s))


def kfold_scores(
    labels: Sequence[int], scores: Sequence[float], folds: int = 10, seed: int = 0
) -> dict[str, float]:
    """EER, AUC and AP on each of ``folds`` stratified folds: their mean and std.

    Torfi et al. report verification scores as mean +- std over 10 folds of the test
    pairs; the folds are seeded so reruns give the same numbers.
    """
    from sklearn.model_selection import StratifiedKFold

    y, s = _labels_scores(labels, scores)
    n_min = int(min(np.sum(y == 0), np.sum(y == 1)))
    if n_min < folds:
        raise MetricError(f"{folds} folds need at least {folds} pairs of each label, got {n_min}")
    per: dict[str, list[float]] = {"eer": [], "auc": [], "ap": []}
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for _, idx in splitter.split(s, y):
        per["eer"].append(equal_error_rate(y[idx], s[idx]))
        per["auc"].append(roc_auc(y[idx], s[idx]))
        per["ap"].append(average_precision(y[idx], s[idx]))
    out: dict[str, float] = {}
    for key, values in per.items():
        out[f"{key}_mean"] = float(np.mean(values))
        out[f"{key}_std"] = float(np.std(values))
    out["folds"] = float(folds)
    return out
