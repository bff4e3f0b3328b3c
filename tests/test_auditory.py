"""The NSL auditory spectrogram (wav2aud) and its iterative inverse (aud2wav): layout,
frame rate, tonotopy and reconstruction, checked against properties of the model."""

from __future__ import annotations

import numpy as np
import pytest

from lipflow.tasks.features import auditory

P = auditory.AudParams()
FS = P.sample_rate


def _tone(freq: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * FS)) / FS
    return np.sin(2 * np.pi * freq * t)


def test_default_parameters_are_loadloads_at_8_khz() -> None:
    assert (P.frmlen, P.tc, P.fac, P.shft) == (8.0, 8.0, -2.0, -1.0)
    assert FS == 8000 and P.frame_samples == 64 and P.frames_per_second == 125.0
    assert auditory.AudParams(shft=0).sample_rate == 16000
    assert auditory.AudParams(shft=0).frame_samples == 128  # 8 ms at 16 kHz


def test_centre_frequencies_24_a_octave_around_440() -> None:
    cf = auditory.centre_frequencies(shft=0)
    assert cf.shape == (129,)
    assert cf[31] == pytest.approx(440.0)
    assert cf[55] == pytest.approx(880.0)  # one octave = 24 channels
    assert cf[0] == pytest.approx(179.73, abs=0.01)  # 440 * 2 ** (-31 / 24)
    assert cf[-1] == pytest.approx(7246.29, abs=0.01)  # 440 * 2 ** (97 / 24)
    assert np.allclose(auditory.centre_frequencies(shft=-1), cf / 2)


def test_shape_and_frame_rate() -> None:
    aud = auditory.wav2aud(_tone(500, 3.0))
    assert aud.shape == (375, 128)  # 3 s at 125 frames a second
    assert aud.dtype == np.float64 and float(aud.min()) >= 0
    assert auditory.wav2aud(np.ones(65) + np.arange(65)).shape == (2, 128)  # zero-padded


@pytest.mark.parametrize("channel", [20, 50, 80, 110])
def test_a_pure_tone_peaks_in_its_channel(channel: int) -> None:
    freq = auditory.centre_frequencies()[channel]
    profile = auditory.wav2aud(_tone(freq))[25:].mean(axis=0)
    # output channel k is filter k minus filter k + 1: the tone at filter k's centre
    # peaks at k or one below
    assert int(np.argmax(profile)) in (channel - 1, channel)
    assert profile.max() > 5 * np.median(profile)


def test_silence_and_bad_input() -> None:
    assert not auditory.wav2aud(np.zeros(800)).any()
    with pytest.raises(ValueError, match="1-D"):
        auditory.wav2aud(np.zeros((2, 100)))
    with pytest.raises(ValueError, match="128"):
        auditory.aud2wav(np.zeros((10, 64)))


def test_the_leaky_integration_follows_an_onset() -> None:
    x = np.concatenate([np.zeros(FS // 2), _tone(1000, 0.5)])
    level = auditory.wav2aud(x, normalise=False).sum(axis=1)
    onset = FS // 2 // P.frame_samples  # frame 62
    assert level[: onset - 1].max() == pytest.approx(0.0, abs=1e-12)
    assert level[onset + 3] > 0.5 * level[-5]  # 8-ms time constant: settled in ~3 frames


def test_inverse_reconstructs_a_tone_bursts_envelope() -> None:
    t = np.arange(2 * FS) / FS
    envelope = (np.sin(2 * np.pi * 2 * t) > 0).astype(float)  # 250-ms bursts
    freq = auditory.centre_frequencies()[60]
    x = envelope * np.sin(2 * np.pi * freq * t)
    aud = auditory.wav2aud(x)
    back = auditory.aud2wav(aud, iterations=10)
    assert back.shape == (aud.shape[0] * P.frame_samples,) and back.dtype == np.float32
    n = P.frame_samples

    def frame_rms(s: np.ndarray) -> np.ndarray:
        s = s[: len(s) // n * n]
        return np.sqrt((s.reshape(-1, n) ** 2).mean(axis=1))

    e1, e2 = frame_rms(x), frame_rms(back)[: len(frame_rms(x))]
    assert np.corrcoef(e1, e2)[0, 1] > 0.9
    again = auditory.wav2aud(back)
    assert np.corrcoef(aud.ravel(), again.ravel())[0, 1] > 0.9
    # the energy sits in the tone's channels
    assert abs(int(np.argmax(again.mean(axis=0))) - 60) <= 1
