"""VCA-GAN's audio targets: the torch features match a numpy float64 reference of the same
formula on real GRID speech, for whole clips, training windows and short audio."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lipflow.models.nets import vcagan_features as vf
from tests.support.seed_models import grid_speech_16k


@pytest.mark.parametrize(("samples", "frames"), [(48000, 300), (25600, 160), (20000, 160)])
def test_torch_features_match_the_numpy_reference(samples: int, frames: int) -> None:
    wav = grid_speech_16k()[:samples]
    mel, spec = vf.VcaGanFeatures()(torch.from_numpy(wav.copy())[None], frames)
    assert mel.shape == (1, 1, 80, frames) and spec.shape == (1, 1, 321, frames)
    ref_mel, ref_spec = vf.reference_targets(wav, frames)
    np.testing.assert_allclose(mel[0, 0].numpy(), ref_mel, atol=1e-4, rtol=0)
    np.testing.assert_allclose(spec[0, 0].numpy(), ref_spec, atol=1e-4 * ref_spec.max(), rtol=0)
    assert -1.0 <= float(mel.min()) and float(mel.max()) <= 1.0


def test_short_audio_is_padded_with_zeros_and_silence_is_the_floor() -> None:
    features = vf.VcaGanFeatures()
    wav = torch.from_numpy(grid_speech_16k()[:16000].copy())[None]  # 101 STFT frames
    mel, spec = features(wav, 160)
    assert bool((mel[..., 101:] == 0).all()) and bool((spec[..., 101:] == 0).all())
    silent_mel, silent_spec = features(torch.zeros(2, 6400, dtype=torch.int16), 40)
    assert bool((silent_mel == -1.0).all()) and bool((silent_spec == 0).all())


def test_the_high_pass_removes_hum_and_keeps_speech_band() -> None:
    t = np.arange(32000) / vf.SAMPLE_RATE_HZ
    hum, tone = np.sin(2 * np.pi * 20 * t), np.sin(2 * np.pi * 1000 * t)
    mid = slice(4000, 28000)  # away from the edges
    assert np.abs(vf.high_pass(hum)[mid]).max() < 0.01
    assert np.abs(vf.high_pass(tone)[mid] - tone[mid]).max() < 0.01


def test_mel_scaling_round_trips_and_the_basis_is_slaney() -> None:
    basis = vf.mel_basis()
    assert basis.shape == (80, 321) and basis.dtype == np.float32
    import librosa

    np.testing.assert_array_equal(basis, librosa.filters.mel(
        sr=16000, n_fft=640, n_mels=80, fmin=55.0, fmax=7500.0).astype(np.float32))
    x = torch.linspace(np.log(1e-5), 2.0, 7)
    torch.testing.assert_close(vf.mel_unscale(vf.mel_scale(x)), x)
    assert float(vf.mel_scale(torch.tensor(np.log(1e-5)))) == pytest.approx(-1.0)
