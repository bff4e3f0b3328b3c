"""Metric functions against known values, on real GRID speech where the metric needs speech."""

from __future__ import annotations

import math

import numpy as np
import pytest

from lipflow.models import metrics
from tests.support.seed_models import grid_speech_16k


@pytest.fixture(scope="module")
def speech() -> np.ndarray:
    wav = grid_speech_16k().astype(np.float64) / 32768.0
    assert len(wav) > 16000 * 2  # a real clip of about 3 s
    return wav


@pytest.fixture(scope="module")
def noisy(speech: np.ndarray) -> np.ndarray:
    rng = np.random.default_rng(0)
    return speech + rng.normal(0, 0.05, size=speech.shape) * np.abs(speech).max()


def test_stoi_and_estoi_of_identical_signals_are_one(speech: np.ndarray) -> None:
    assert metrics.stoi_score(speech, speech) == pytest.approx(1.0, abs=1e-6)
    assert metrics.estoi_score(speech, speech) == pytest.approx(1.0, abs=1e-6)


def test_stoi_drops_with_noise(speech: np.ndarray, noisy: np.ndarray) -> None:
    assert metrics.stoi_score(speech, noisy) < 0.99
    assert metrics.estoi_score(speech, noisy) < metrics.stoi_score(speech, speech)


def test_stoi_accepts_int16_and_longer_degraded(speech: np.ndarray) -> None:
    as_int = (speech * 32768).astype(np.int16)
    longer = np.concatenate([speech, np.zeros(800)])
    assert metrics.stoi_score(as_int, longer) == pytest.approx(1.0, abs=1e-3)


def test_pesq_of_a_signal_with_itself_is_its_maximum(speech, noisy) -> None:
    for score in (metrics.pesq_lip2wav, metrics.pesq_vcagan):
        clean = score(speech, speech)
        assert clean >= 4.4, score.__name__
        assert score(speech, noisy) < clean - 0.5, score.__name__


def test_pesq_of_silence_is_nan_not_a_crash() -> None:
    silence = np.zeros(32000)
    assert math.isnan(metrics.pesq_lip2wav(silence, silence))


def test_pesq_lip2wav_rejects_other_rates(speech: np.ndarray) -> None:
    with pytest.raises(metrics.MetricError, match="16 kHz"):
        metrics.pesq_lip2wav(speech, speech, sample_rate_hz=8000)


def test_peak_normalisation_and_clipping_known_values() -> None:
    wav = np.array([0.0, 1.05, -2.1, 0.525])
    assert metrics.peak_normalise_int16(wav).tolist() == [0, 16383, -32767, 8191]
    assert metrics.peak_normalise_int16(np.zeros(4)).tolist() == [0, 0, 0, 0]
    assert metrics.clip_unit(wav).tolist() == [0.0, 1.0, -1.0, 0.525]


def test_lip2wav_protocol_ignores_level_and_vcagan_protocol_sees_clipping(speech) -> None:
    loud = 2.1 * speech / np.abs(speech).max()  # Griffin-Lim-like peak level
    l2w = metrics.lip2wav_protocol(speech, loud)
    assert l2w["stoi"] == pytest.approx(1.0, abs=1e-3) and l2w["pesq"] > 4.4
    vca = metrics.vcagan_protocol(speech, loud)
    assert vca["pesq"] < l2w["pesq"] - 0.3  # clipping at 1 distorts the loud signal
    assert vca["stoi"] < l2w["stoi"]


def test_vcagan_pesq_is_scored_on_8khz(speech) -> None:
    from pesq import pesq
    from scipy.signal import resample_poly

    noisy = 0.5 * speech + np.random.default_rng(1).normal(0, 0.01, speech.shape)
    assert np.abs(noisy).max() < 1.0  # nothing to clip: only the resampling is tested
    expected = pesq(8000, resample_poly(speech, 1, 2), resample_poly(noisy, 1, 2), "nb")
    assert metrics.vcagan_protocol(speech, noisy)["pesq"] == pytest.approx(expected, abs=1e-9)
    assert metrics.pesq_vcagan(speech, noisy) == pytest.approx(expected, abs=1e-9)


def test_protocols_name_why_a_clip_is_not_scored(speech) -> None:
    silent = np.zeros_like(speech)
    for protocol in (metrics.lip2wav_protocol, metrics.vcagan_protocol):
        assert protocol(silent, speech) == dict.fromkeys(
            ("stoi", "estoi", "pesq"), metrics.Excluded("silent_reference"))
        assert protocol(speech, silent)["pesq"] == metrics.Excluded("silent_output")
        assert protocol(speech[:2000], speech[:2000])["stoi"] == metrics.Excluded(
            "too_short_for_stoi")
    with pytest.raises(metrics.MetricError, match="16 kHz"):
        metrics.lip2wav_protocol(speech, speech, sample_rate_hz=8000)


def test_mcd_identical_is_zero_and_grows_with_difference() -> None:
    rng = np.random.default_rng(1)
    mel = rng.uniform(-4, 4, size=(240, 80))
    ln = metrics.lip2wav_mel_to_ln(mel)
    assert metrics.mel_cepstral_distortion(ln, ln) == 0.0
    small = metrics.mel_cepstral_distortion(ln, ln + rng.normal(0, 0.01, ln.shape))
    big = metrics.mel_cepstral_distortion(ln, ln + rng.normal(0, 0.5, ln.shape))
    assert 0 < small < big


def test_mcd_ignores_a_constant_gain() -> None:
    # a gain is a shift of the log mel in every band: it only moves c0, which is excluded
    ln = metrics.lip2wav_mel_to_ln(np.random.default_rng(2).uniform(-4, 4, (50, 80)))
    assert metrics.mel_cepstral_distortion(ln, ln + 3.0) == pytest.approx(0.0, abs=1e-9)


def test_mcd_known_value_for_one_coefficient() -> None:
    # a pure cosine difference along the bands lives in exactly one DCT coefficient
    bands = 80
    k = 3
    basis = np.cos(np.pi * k * (2 * np.arange(bands) + 1) / (2 * bands)) * math.sqrt(2 / bands)
    a = np.zeros((10, bands))
    b = a + 0.5 * basis
    expected = 10 * math.sqrt(2) / math.log(10) * 0.5
    assert metrics.mel_cepstral_distortion(a, b) == pytest.approx(expected, rel=1e-9)


def test_lip2wav_mel_denormalisation_end_points() -> None:
    ln = metrics.lip2wav_mel_to_ln(np.array([[-4.0, 4.0]]))
    # -4 is min_level_db + ref (-80 dB amplitude), +4 is 0 dB + ref (20 dB)
    assert ln[0, 0] == pytest.approx(-80 * math.log(10) / 20)
    assert ln[0, 1] == pytest.approx(20 * math.log(10) / 20)


def test_mel_l1_and_correlation_known_values() -> None:
    a = np.arange(12, dtype=float).reshape(4, 3)
    assert metrics.mel_l1(a, a) == 0.0
    assert metrics.mel_l1(a, a + 0.5) == pytest.approx(0.5)
    assert metrics.spectrogram_correlation(a, a) == pytest.approx(1.0)
    assert metrics.spectrogram_correlation(a, -a) == pytest.approx(-1.0)
    assert metrics.spectrogram_correlation(a, 2 * a + 7) == pytest.approx(1.0)
    assert math.isnan(metrics.spectrogram_correlation(a, np.ones_like(a)))


def test_mel_metrics_reject_mismatched_bands() -> None:
    with pytest.raises(metrics.MetricError, match="bands"):
        metrics.mel_l1(np.zeros((4, 80)), np.zeros((4, 40)))


def test_eer_of_separable_scores_is_zero_and_inverted_is_one() -> None:
    labels = [1, 1, 1, 0, 0, 0]
    scores = [0.9, 0.8, 0.7, 0.3, 0.2, 0.1]
    assert metrics.equal_error_rate(labels, scores) == 0.0
    assert metrics.equal_error_rate(labels, [-s for s in scores]) == 1.0
    assert metrics.roc_auc(labels, scores) == 1.0
    assert metrics.roc_auc(labels, [-s for s in scores]) == 0.0
    assert metrics.average_precision(labels, scores) == 1.0


def test_eer_and_auc_known_partial_case() -> None:
    # one genuine pair scored below one impostor out of 2x2: AUC 3/4; EER 1/2
    labels = [1, 1, 0, 0]
    scores = [0.9, 0.4, 0.6, 0.1]
    assert metrics.roc_auc(labels, scores) == pytest.approx(0.75)
    assert metrics.equal_error_rate(labels, scores) == pytest.approx(0.5)


def test_eer_of_random_scores_is_near_half() -> None:
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 4000)
    assert metrics.equal_error_rate(labels, rng.random(4000)) == pytest.approx(0.5, abs=0.04)


def test_kfold_scores_mean_and_std() -> None:
    rng = np.random.default_rng(4)
    labels = np.repeat([1, 0], 100)
    separable = np.where(labels == 1, 1.0, 0.0) + rng.random(200) * 0.5
    out = metrics.kfold_scores(labels, separable, folds=10, seed=0)
    assert out["eer_mean"] == 0.0 and out["eer_std"] == 0.0
    assert out["auc_mean"] == 1.0 and out["ap_mean"] == pytest.approx(1.0)
    noisy = labels + rng.normal(0, 1.0, 200)
    a = metrics.kfold_scores(labels, noisy, folds=10, seed=0)
    b = metrics.kfold_scores(labels, noisy, folds=10, seed=0)
    assert a == b
    assert 0 < a["eer_mean"] < 0.5 and a["eer_std"] > 0


def test_verification_metrics_need_both_labels() -> None:
    with pytest.raises(metrics.MetricError, match="genuine"):
        metrics.equal_error_rate([1, 1], [0.2, 0.3])
    with pytest.raises(metrics.MetricError, match="folds"):
        metrics.kfold_scores([1, 0, 1, 0], [1, 0, 1, 0], folds=10)


def test_outlier_trimmed_mean_is_the_gabor_papers_remove_outliers() -> None:
    """Corr2d_eva.py's removeOutliers: keep values within mean +- 2 std (np.std), average."""
    values = [0.7, 0.72, 0.74, 0.76, 0.78, 0.8, 0.71, 0.73, 0.75, 0.77, -0.5]
    x = np.array(values)
    lo, hi = x.mean() - 2 * x.std(), x.mean() + 2 * x.std()
    assert lo > -0.5  # the -0.5 clip is an outlier by that rule
    expected = x[(x >= lo) & (x <= hi)].mean()
    assert metrics.outlier_trimmed_mean(values) == pytest.approx(expected)
    assert metrics.outlier_trimmed_mean(values) == pytest.approx(np.mean(values[:-1]))
    assert metrics.outlier_trimmed_mean([0.5, float("nan")]) == pytest.approx(0.5)
    assert math.isnan(metrics.outlier_trimmed_mean([]))
