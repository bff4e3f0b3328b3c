"""Audio features: Lip2Wav mel (against a straight-line numpy reference), its inverse, MFEC.

The reference mel below is written from the formula alone (own reflect padding, framing,
periodic Hann window, rfft, Slaney mel filterbank), with numpy only, so it shares no code
with ``lipflow.tasks.features.mel`` (which uses librosa and scipy).
"""

from __future__ import annotations

import numpy as np
import pytest
import speechpy

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.features.mel import inv_mel_spectrogram, mel_settings, mel_spectrogram
from lipflow.tasks.features.mfec import _speechpy_filterbank, mfec_cube, mfec_settings
from lipflow.tasks.features.speechpy_compat import ensure_speechpy_numpy2
from lipflow.tasks.features.waveform import AudioInputError
from lipflow.tasks.settings.project import load_params
from lipflow.tasks.settings.schema import Mel, Mfec
from tests.support.audio_features import CLIP_SAMPLES, chirp, grid_clip

# ---------------------------------------------------------------- reference (numpy only)


def _slaney_hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear (200/3 Hz per mel) below 1 kHz, log step ln(6.4)/27 above."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz / (200.0 / 3.0)
    log = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) / (np.log(6.4) / 27.0)
    return np.where(hz >= 1000.0, log, linear)


def _slaney_mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * (200.0 / 3.0)
    log = 1000.0 * np.exp((np.log(6.4) / 27.0) * (mel - 15.0))
    return np.where(mel >= 15.0, log, linear)


def _reference_mel_basis(sr, n_fft, n_mels, fmin, fmax):
    """Triangles between n_mels + 2 Slaney-spaced edges, each scaled by 2 / (f[i+2] - f[i])."""
    bins_hz = np.arange(n_fft // 2 + 1) * sr / n_fft
    edges = _slaney_mel_to_hz(
        np.linspace(_slaney_hz_to_mel(fmin), _slaney_hz_to_mel(fmax), n_mels + 2)
    )
    basis = np.zeros((n_mels, bins_hz.size))
    for i in range(n_mels):
        left, centre, right = edges[i], edges[i + 1], edges[i + 2]
        rising = (bins_hz - left) / (centre - left)
        falling = (right - bins_hz) / (right - centre)
        basis[i] = np.maximum(0.0, np.minimum(rising, falling)) * 2.0 / (right - left)
    return basis


def _reference_mel(wav, p: Mel = Mel(), pad: str = "reflect") -> np.ndarray:
    """Lip2Wav's melspectrogram written out step by step; returns (frames, n_mels)."""
    x = np.asarray(wav, dtype=np.float64)
    if np.asarray(wav).dtype == np.int16:
        x = x / 32768.0
    emphasised = x.copy()
    emphasised[1:] -= p.preemphasis * x[:-1]
    half = p.n_fft // 2
    if pad == "reflect":  # x[half..1], x, x[-2..-half-1]: the edge sample is not repeated
        head, tail = emphasised[1 : half + 1][::-1], emphasised[-half - 1 : -1][::-1]
    else:  # librosa >= 0.10's default
        head, tail = np.zeros(half), np.zeros(half)
    padded = np.concatenate([head, emphasised, tail])
    n_frames = 1 + (padded.size - p.n_fft) // p.hop_samples
    n = np.arange(p.win_samples)
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / p.win_samples)  # periodic Hann
    offset = (p.n_fft - p.win_samples) // 2
    full_window = np.zeros(p.n_fft)
    full_window[offset : offset + p.win_samples] = window
    frames = np.stack(
        [padded[i * p.hop_samples : i * p.hop_samples + p.n_fft] for i in range(n_frames)]
    )
    magnitude = np.abs(np.fft.rfft(frames * full_window, axis=1))  # (frames, bins)
    basis = _reference_mel_basis(p.sample_rate_hz, p.n_fft, p.n_mels, p.fmin_hz, p.fmax_hz)
    mel = magnitude @ basis.T
    db = 20.0 * np.log10(np.maximum(1e-5, mel)) - 20.0
    return np.clip(8.0 * (db + 100.0) / 100.0 - 4.0, -4.0, 4.0)


# ---------------------------------------------------------------- params


def test_defaults_equal_params_yaml(project_root):
    features = load_params(project_root / "params.yaml")["features"]
    assert Mel() == mel_settings(features["mel"])
    assert Mfec() == mfec_settings(features["mfec"])


def test_bad_params_are_config_errors():
    with pytest.raises(ConfigError, match="n_mel"):
        mel_settings({"n_mel": 80})
    with pytest.raises(ConfigError, match="fmax_hz"):
        mel_spectrogram(np.zeros(4000), {"fmax_hz": 9000})
    with pytest.raises(ConfigError, match="input_units"):
        mfec_cube(np.zeros(4000), {"input_units": "volts"})
    with pytest.raises(ConfigError, match="n_fft"):
        mfec_settings({"n_fft": "1024"})


# ---------------------------------------------------------------- mel


def test_mel_matches_reference_on_grid_audio():
    wav = grid_clip()
    assert np.abs(wav.astype(np.int32)).max() > 1000  # real speech, not silence
    ours = mel_spectrogram(wav)
    ref = _reference_mel(wav)
    assert ours.shape == ref.shape == (241, 80)
    assert ref.max() - ref.min() > 3.0  # a non-trivial spectrogram, not all clipped
    assert np.abs(ours - ref).max() <= 1e-3


def test_mel_matches_reference_on_chirp():
    wav = chirp()
    ours = mel_spectrogram(wav)
    ref = _reference_mel(wav)
    assert ours.shape == (241, 80)
    # the sweep lights every band at some point
    assert np.all(ref.max(axis=0) > 0.0)
    assert np.abs(ours - ref).max() <= 1e-3


def test_mel_shape_dtype_range_and_input_scaling():
    wav = grid_clip()
    mel = mel_spectrogram(wav)
    assert mel.shape == (241, 80) and mel.dtype == np.float32
    assert mel.min() >= -4.0 and mel.max() <= 4.0
    # int16 is full scale 32768: the same samples as floats give the same mel
    np.testing.assert_allclose(mel, mel_spectrogram(wav / 32768.0), atol=1e-6)
    assert mel_spectrogram(chirp(16000)).shape == (81, 80)


def test_mel_uses_reflect_padding_not_zero_padding():
    """librosa >= 0.10 zero-pads by default; Lip2Wav's librosa 0.7 reflected."""
    wav = chirp()
    ours = mel_spectrogram(wav)
    zero = _reference_mel(wav, pad="zero")
    # only the first and last two frames reach into the padding (n_fft / 2 = 2 hops) ...
    assert np.abs(ours[2:-2] - zero[2:-2]).max() <= 1e-3
    # ... and there zero padding would be visibly different
    assert np.abs(ours[0] - zero[0]).max() > 0.1
    assert np.abs(ours[0] - _reference_mel(wav)[0]).max() <= 1e-3


def test_mel_bad_input_is_clear():
    with pytest.raises(AudioInputError, match="1-D"):
        mel_spectrogram(np.zeros((2, 48000)))
    with pytest.raises(AudioInputError, match="int32"):
        mel_spectrogram(np.zeros(48000, dtype=np.int32))
    with pytest.raises(AudioInputError, match="too short"):
        mel_spectrogram(np.zeros(300))
    with pytest.raises(AudioInputError, match="NaN"):
        mel_spectrogram(np.full(48000, np.nan))


# ---------------------------------------------------------------- inverse


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def test_inverse_round_trip_is_close_and_deterministic():
    wav = grid_clip()
    mel = mel_spectrogram(wav)
    back = inv_mel_spectrogram(mel)
    assert back.dtype == np.float32 and back.shape == (CLIP_SAMPLES,)
    assert np.all(np.isfinite(back))
    np.testing.assert_array_equal(back, inv_mel_spectrogram(mel))  # seeded

    # power 1 inverts the magnitude itself: the mel of the reconstruction is close
    plain = inv_mel_spectrogram(mel, {"power": 1.0})
    plain_mel = mel_spectrogram(plain)
    assert np.abs(plain_mel - mel).mean() < 0.15  # on a scale of [-4, 4]
    # Lip2Wav's power 1.5 sharpens levels (in dB, roughly x1.5), keeping the pattern
    assert _corr(mel_spectrogram(back), mel) > 0.9

    # control: another speaker's utterance is far from this mel on both measures
    other = mel_spectrogram(grid_clip("s16/" + _first_stem("s16")))
    assert np.abs(other - mel).mean() > 2 * np.abs(plain_mel - mel).mean()
    assert _corr(other, mel) < _corr(plain_mel, mel) - 0.2


def _first_stem(speaker: str) -> str:
    from tests.support.audio_features import SAMPLE_GRID

    return sorted((SAMPLE_GRID / speaker).glob("*.mpg"))[0].stem


def test_inverse_bad_input_is_clear():
    with pytest.raises(AudioInputError, match=r"\(frames >= 2, 80\)"):
        inv_mel_spectrogram(np.zeros((80, 241), dtype=np.float32))


# ---------------------------------------------------------------- MFEC


def _speechpy_cube(signal: np.ndarray) -> np.ndarray:
    """speechpy's own MFEC cube with the coupled 3D CNN arguments."""
    lmfe = speechpy.feature.lmfe(
        signal, sampling_frequency=16000, frame_length=0.02, frame_stride=0.02,
        num_filters=40, fft_length=1024, low_frequency=0, high_frequency=None,
    )
    return speechpy.feature.extract_derivative_feature(lmfe)


def test_mfec_equals_speechpy_float_units():
    wav = grid_clip()
    cube = mfec_cube(wav)
    assert cube.shape == (149, 40, 3) and cube.dtype == np.float32
    expected = _speechpy_cube(wav.astype(np.float64) / 32768.0)
    np.testing.assert_array_equal(cube, expected.astype(np.float32))
    assert np.ptp(cube[..., 0]) > 5.0  # real speech: the static channel varies


def test_mfec_filterbank_is_built_once_per_shape():
    # speechpy rebuilds it on every call, as costly as the rest of a clip's cube: the
    # cache is the point (a decorator moved off it once and every clip paid again)
    mfec_cube(grid_clip())
    before = _speechpy_filterbank.cache_info()
    mfec_cube(grid_clip())
    after = _speechpy_filterbank.cache_info()
    assert after.hits == before.hits + 1 and after.misses == before.misses
    bank = _speechpy_filterbank(40, 257, 16000)
    assert bank is _speechpy_filterbank(40, 257, 16000) and not bank.flags.writeable


def test_mfec_equals_speechpy_int16_units():
    wav = grid_clip()
    cube = mfec_cube(wav, {"input_units": "int16"})
    expected = _speechpy_cube(wav.astype(np.float64))
    np.testing.assert_array_equal(cube, expected.astype(np.float32))
    # the units only shift log energies: static by 2 ln 32768 (speechpy "deltas" by 0.3 of it)
    shift = 2 * np.log(32768.0)
    float_cube = mfec_cube(wav)
    np.testing.assert_allclose(cube[..., 0] - float_cube[..., 0], shift, atol=1e-3)


def test_mfec_bad_input_is_clear():
    with pytest.raises(AudioInputError, match="too short"):
        mfec_cube(np.zeros(500, dtype=np.int16))


# ---------------------------------------------------------------- speechpy on numpy 2


def test_speechpy_shim_is_scoped_and_idempotent():
    ensure_speechpy_numpy2()
    ensure_speechpy_numpy2()
    if int(np.__version__.split(".")[0]) >= 2:
        assert not hasattr(np.lib, "pad")  # numpy itself is left as it is
        assert speechpy.processing.np.lib.pad is np.pad
    assert speechpy.processing.np.zeros is np.zeros


def test_speechpy_derivative_and_cmvnw_run_with_numpy1_semantics():
    rng = np.random.default_rng(7)
    feat = rng.standard_normal((20, 6))
    # speechpy's derivative_extraction as written: edge pad along features, sum of
    # Range * FEAT shifted right by Range (its subtraction is a separate no-op line)
    padded = np.pad(feat, ((0, 0), (2, 2)), mode="edge")
    expected = (1 * padded[:, 3:9] + 2 * padded[:, 4:10]) / 10.0
    got = speechpy.processing.derivative_extraction(feat, DeltaWindows=2)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)
    # cmvnw (the other np.lib.pad caller): symmetric padding over time, window mean
    normed = speechpy.processing.cmvnw(feat, win_size=5)
    sym = np.pad(feat, ((2, 2), (0, 0)), mode="symmetric")
    means = np.stack([sym[i : i + 5].mean(axis=0) for i in range(20)])
    np.testing.assert_allclose(normed, (feat - means).astype(np.float32), atol=1e-6)
