"""Coupled 3D CNN: embedding shapes, contrastive loss values, pair making and selection,
learning to tell aligned from shifted windows, and the per-clip sync offset."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lipflow.models.nets import avsync
from lipflow.tasks.common.errors import ConfigError
from tests.support.seed_models import one_thread, tiny_cfg  # noqa: F401


def test_branches_embed_windows_in_64_d() -> None:
    model = avsync.build(tiny_cfg("avsync"))
    cfg = model.cfg
    assert cfg.mfec_per_frame == 2 and cfg.window_frames == 8
    mouth = torch.randint(0, 256, (3, 8, 60, 100), dtype=torch.uint8)
    square = torch.randint(0, 256, (3, 8, 96, 96), dtype=torch.uint8)  # other crop presets
    mfec = torch.randn(3, 16, 40, 3)
    a, b = model(mouth, mfec)
    assert a.shape == b.shape == (3, 64)
    assert model.embed_mouth(square).shape == (3, 64)
    full = avsync.build(tiny_cfg("avsync", mouth_hw=[60, 100]))
    assert full.embed_mouth(mouth).shape == (3, 64)


def test_contrastive_loss_known_values() -> None:
    d = torch.tensor([0.5, 0.2, 2.0])
    y = torch.tensor([1, 0, 0])
    # genuine 0.25; impostor inside margin (1-0.2)^2 = 0.64; impostor beyond margin 0
    expected = (0.25 + 0.64 + 0.0) / 3
    assert float(avsync.contrastive_loss(d, y, margin=1.0)) == pytest.approx(expected)


def test_online_selection_keeps_genuine_and_hard_impostors() -> None:
    d = torch.tensor([0.4, 0.9, 1.0, 1.2, 3.0])
    y = torch.tensor([1, 1, 0, 0, 0])
    keep = avsync.select_pairs(d, y, selection_margin=0.2)
    assert keep.tolist() == [True, True, True, False, False]  # limit 0.9 + 0.2
    # no impostor under the limit: the closest one is kept
    keep = avsync.select_pairs(torch.tensor([0.1, 5.0, 4.0]), torch.tensor([1, 0, 0]), 0.1)
    assert keep.tolist() == [True, False, True]


def test_make_pairs_cuts_aligned_and_impostor_windows() -> None:
    cfg = avsync.AVSyncConfig(window_frames=8)
    b, t = 3, 40
    # frame index encoded in the pixels and the MFECs: alignment is checkable
    mouth = torch.arange(t).view(1, t, 1, 1).expand(b, t, 6, 10).to(torch.uint8).clone()
    mfec = (torch.arange(2 * t).view(1, 2 * t, 1, 1) // 2).expand(b, 2 * t, 40, 3).float().clone()
    mfec += torch.arange(b).view(b, 1, 1, 1) * 1000  # which clip
    g = torch.Generator().manual_seed(0)
    m, a, y = avsync.make_pairs(mouth, mfec, cfg, g, valid_frames=torch.tensor([40, 20, 40]))
    assert m.shape == (len(y), 8, 6, 10) and a.shape == (len(y), 16, 40, 3)
    assert int(y.sum()) == b and len(y) == 3 * b
    for k in range(len(y)):
        start_v = int(m[k, 0, 0, 0])
        start_a, clip_a = int(a[k, 0, 0, 0]) % 1000, int(a[k, 0, 0, 0]) // 1000
        if y[k] == 1:
            assert start_a == start_v
        else:
            assert start_a != start_v or clip_a != k // 3
    # clip 1 has 20 valid frames: its windows stay inside them
    assert int(m[3:6, -1, 0, 0].max()) < 20


def test_model_learns_to_separate_aligned_from_shifted() -> None:
    torch.manual_seed(0)
    cfg = tiny_cfg("avsync", mouth_channels=[4, 8], speech_channels=[4, 8], min_shift_frames=3)
    model = avsync.build(cfg)
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    # a synthetic talking clip: mouth brightness and MFEC energy follow the same signal
    g = torch.Generator().manual_seed(1)
    signal = torch.rand(4, 40, generator=g)
    video = (signal.view(4, 40, 1, 1) * 255).expand(4, 40, 30, 50).to(torch.uint8)
    mfec = signal.repeat_interleave(2, dim=1).view(4, 80, 1, 1).expand(4, 80, 40, 3).clone()
    batch = {"video": video, "mfec": mfec, "valid_frames": torch.tensor([40] * 4)}
    losses = []
    for _ in range(25):
        value = avsync.loss(model, batch)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        losses.append(float(value.detach()))
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    model.eval()
    scores, labels = avsync.predict(model, batch)
    assert scores[labels == 1].mean() > scores[labels == 0].mean()


def test_sync_offsets_finds_a_known_shift(monkeypatch: pytest.MonkeyPatch) -> None:
    """With embeddings that are the window's own per-frame signal, the distance is zero at
    the true offset: sync_offsets must find it and be confident."""
    model = avsync.build(tiny_cfg("avsync"))
    monkeypatch.setattr(model, "embed_mouth", lambda m: m.float().mean(dim=(2, 3)))
    monkeypatch.setattr(
        model, "embed_speech", lambda a: a.float().mean(dim=(2, 3)).reshape(len(a), -1, 2).mean(-1)
    )
    signal = np.random.default_rng(0).integers(0, 256, 60).astype(np.uint8)
    mouth = np.broadcast_to(signal[:, None, None], (60, 30, 50)).copy()

    def audio_for(shift: int) -> np.ndarray:
        # audio content lags the video by `shift` frames
        lagged = np.roll(signal.astype(np.float32), shift)
        return np.broadcast_to(np.repeat(lagged, 2)[:, None, None], (120, 40, 3)).copy()

    for shift in (5, 0, -3):
        score, offset = avsync.sync_offsets(model, mouth, audio_for(shift), max_offset_frames=8)
        assert offset == shift
        assert score > 10  # the matching offset stands far out
    # audio unrelated to the video: no offset stands out much
    noise = np.random.default_rng(1).integers(0, 256, 120).astype(np.float32)
    unrelated = np.broadcast_to(noise[:, None, None], (120, 40, 3)).copy()
    weak, _ = avsync.sync_offsets(model, mouth, unrelated, max_offset_frames=8)
    strong, _ = avsync.sync_offsets(model, mouth, audio_for(0), max_offset_frames=8)
    assert weak < strong / 2


def test_sync_offsets_runs_the_real_model_on_a_clip() -> None:
    model = avsync.build(tiny_cfg("avsync")).train()
    clip = np.random.default_rng(2).integers(0, 256, (30, 60, 100)).astype(np.uint8)
    score, offset = avsync.sync_offsets(
        model, clip, np.zeros((60, 40, 3), np.float32), max_offset_frames=15
    )
    assert np.isfinite(score) and score >= 0 and -15 <= offset <= 15
    assert model.training  # the mode is restored


def test_sync_offsets_rejects_clips_shorter_than_a_window() -> None:
    model = avsync.build(tiny_cfg("avsync"))
    with pytest.raises(ConfigError, match="shorter"):
        avsync.sync_offsets(model, np.zeros((5, 60, 100), np.uint8), np.zeros((10, 40, 3)))


def test_fps_that_does_not_divide_the_mfec_rate_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="whole multiple"):
        _ = avsync.build(tiny_cfg("avsync", fps=30.0)).cfg.mfec_per_frame
