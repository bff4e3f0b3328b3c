"""Coupled 3D CNN as published: parameter counts, shapes at each preset, MFEC planes as
channels, the contrastive loss and its margin, online pair selection in eval mode, the
optimiser, store mismatches as clear errors, learning, and the per-clip sync offset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lipflow.models import training
from lipflow.models.nets import avsync
from lipflow.models.registry import model_config
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.project import load_params
from tests.support.seed_models import fit, one_thread, tiny_cfg  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def preset(size: str, **overrides) -> dict:
    cfg = model_config(load_params(ROOT / "params.yaml")["train"], "avsync", size=size)
    cfg.update(overrides)
    return cfg


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_published_parameter_count() -> None:
    """The original's trainable variables, counted by hand from ``lipread_mouth.py`` and
    ``lipread_speech.py`` (astorfi/lip-reading-deeplearning). Every conv but the last of each
    net has weights (no bias: slim drops it under ``normalizer_fn=batch_norm``), a batch-norm
    beta (slim's default ``scale=False``: no gamma; moving mean/variance are not trainable)
    and a PReLU alpha per output channel, so ``in*out*kernel + 2*out``; the last conv has
    weights and a bias.

    Mouth (1 input channel, 1x3x3 kernels): conv1 1*16*9+32 = 176; conv2 16*32*9+64 = 4,672;
    conv31 32*64*9+128 = 18,560; conv32 64*64*9+128 = 36,992; conv4 64*128*9+256 = 73,984;
    fc5 (1x2x5) 128*256*10+512 = 328,192; last (9x1x1) 256*64*9+64 = 147,520;
    total 610,096.
    Speech (3 input channels): conv1 (1x5x1) 3*16*5+32 = 272; conv21 (1x4x1) 16*32*4+64 =
    2,112; conv22 32*32*4+64 = 4,160; conv31 (1x3x1) 32*64*3+128 = 6,272; conv32 64*64*3+128
    = 12,416; fc4 (1x2x1) 64*128*2+256 = 16,640; last (15x1x1) 128*64*15+64 = 122,944;
    total 164,816. Both nets: 774,912.
    GRID (8 frames, 16 MFEC frames) changes only the last convs: 256*64*8+64 = 131,136 and
    128*64*16+64 = 131,136: mouth 593,712, speech 173,008, total 766,720.
    """
    full = avsync.build(preset("full"))
    assert (count(full.mouth), count(full.speech), count(full)) == (610_096, 164_816, 774_912)
    grid = avsync.build(preset("grid"))
    assert (count(grid.mouth), count(grid.speech), count(grid)) == (593_712, 173_008, 766_720)
    assert count(avsync.build(preset("tiny"))) == 33_952  # the sample DAG's preset


def test_kernels_are_spatial_only_for_the_mouth_and_frequency_only_for_speech() -> None:
    model = avsync.build(preset("full"))
    convs = {n: m for n, m in model.named_modules() if isinstance(m, torch.nn.Conv3d)}
    mouth = {n: tuple(m.kernel_size) for n, m in convs.items() if n.startswith("mouth.")}
    speech = {n: tuple(m.kernel_size) for n, m in convs.items() if n.startswith("speech.")}
    assert mouth == {"mouth.conv1.0": (1, 3, 3), "mouth.conv2.0": (1, 3, 3),
                     "mouth.conv31.0": (1, 3, 3), "mouth.conv32.0": (1, 3, 3),
                     "mouth.conv4.0": (1, 3, 3), "mouth.fc5.0": (1, 2, 5),
                     "mouth.fc6": (9, 1, 1)}
    assert speech == {"speech.conv1.0": (1, 5, 1), "speech.conv21.0": (1, 4, 1),
                      "speech.conv22.0": (1, 4, 1), "speech.conv31.0": (1, 3, 1),
                      "speech.conv32.0": (1, 3, 1), "speech.fc4.0": (1, 2, 1),
                      "speech.fc5": (15, 1, 1)}
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm3d)]
    assert len(norms) == 12 and all(  # slim's batch_norm: decay 0.999, eps 1e-3, no scale
        m.momentum == pytest.approx(0.001) and m.eps == 1e-3 and not m.affine for m in norms)
    prelus = [m for m in model.modules() if isinstance(m, torch.nn.PReLU)]
    assert len(prelus) == 12 and all(float(p.weight.detach().abs().max()) == 0 for p in prelus)


@pytest.mark.parametrize(("size", "frames", "mfecs", "hw"), [
    ("full", 9, 15, (60, 100)), ("grid", 8, 16, (60, 100)), ("tiny", 8, 16, (60, 100)),
    ("tiny", 8, 16, (96, 96))])
def test_shapes_flow_through_every_preset_without_duplication(
        size: str, frames: int, mfecs: int, hw: tuple[int, int]) -> None:
    """Every time step reaches the last conv once: the mouth net keeps all ``frames`` and
    the speech net all ``mfecs`` up to the conv that spans them, with the spatial and
    frequency axes reduced to 1 exactly (no pooling to a larger size, no resize)."""
    model = avsync.build(preset(size)).eval()
    seen: dict[str, tuple[int, ...]] = {}
    for name in ("mouth.fc5", "speech.fc4"):
        model.get_submodule(name).register_forward_hook(
            lambda _m, _i, out, name=name: seen.__setitem__(name, tuple(out.shape)))
    a, b = model(torch.randint(0, 256, (2, frames, *hw), dtype=torch.uint8),
                 torch.randn(2, mfecs, 40, 3))
    emb = model.cfg.embedding
    assert a.shape == b.shape == (2, emb)
    assert seen["mouth.fc5"] == (2, model.cfg.mouth_fc, frames, 1, 1)
    assert seen["speech.fc4"] == (2, model.cfg.speech_fc, mfecs, 1, 1)


def test_mfec_planes_are_input_channels() -> None:
    model = avsync.build(preset("full")).eval()
    got = {}
    model.speech.conv1[0].register_forward_hook(lambda _m, i, _o: got.__setitem__("x", i[0]))
    mfec = torch.randn(2, 15, 40, 3)
    model.embed_speech(mfec)
    x = got["x"]
    assert x.shape == (2, 3, 15, 40, 1)  # (N, planes, time, frequency, 1)
    for plane in range(3):
        assert torch.equal(x[:, plane, :, :, 0], mfec[..., plane])
    assert model.speech.conv1[0].weight.shape == (16, 3, 1, 5, 1)


def test_contrastive_loss_with_the_original_margin() -> None:
    """(y d^2 + (1-y) max(100-d, 0)^2) / 2, averaged: genuine d=3 -> 4.5; impostor d=50 ->
    1250; impostor d=120 (beyond the margin) -> 0."""
    assert preset("full")["margin"] == 100.0
    d = torch.tensor([3.0, 50.0, 120.0])
    y = torch.tensor([1, 0, 0])
    assert float(avsync.contrastive_loss(d, y, margin=100.0)) == pytest.approx((4.5 + 1250) / 3)


def test_online_selection_keeps_genuines_and_hard_impostors() -> None:
    d = torch.tensor([2.0, 5.0, 12.0, 16.0, 40.0])
    y = torch.tensor([1, 1, 0, 0, 0])
    assert avsync.select_pairs(d, y, 10.0).tolist() == [True, True, True, False, False]
    # no impostor within max genuine + 10: the genuine pairs alone (the original's rule)
    assert avsync.select_pairs(torch.tensor([1.0, 30.0]), torch.tensor([1, 0]),
                               10.0).tolist() == [True, False]
    # no genuine pair: max genuine counts as 0
    assert avsync.select_pairs(torch.tensor([9.0, 11.0]), torch.tensor([0, 0]),
                               10.0).tolist() == [True, False]


def test_pair_selection_measures_in_eval_mode_and_trains_on_the_kept_pairs(
        monkeypatch: pytest.MonkeyPatch) -> None:
    model = avsync.build(tiny_cfg("avsync")).train()
    calls: list[tuple[bool, int]] = []
    real = avsync.pair_distance

    def spy(m, mouth, mfec):
        calls.append((m.training, len(mouth)))
        if not m.training:  # the selection pass: impostors at known distances
            return torch.tensor([1.0, 4.0, 30.0] * (len(mouth) // 3))
        return real(m, mouth, mfec)

    monkeypatch.setattr(avsync, "pair_distance", spy)
    batch = {"video": torch.randint(0, 256, (2, 30, 60, 100), dtype=torch.uint8),
             "mfec": torch.randn(2, 60, 40, 3), "valid_frames": torch.tensor([30, 30])}
    value = avsync.loss(model, batch)
    # per clip: genuine (1.0), other clip's audio (4.0), shifted (30.0 > 1 + 10: dropped)
    assert calls == [(False, 6), (True, 4)]
    assert model.training and value.requires_grad


def test_optimiser_and_decay_are_the_originals() -> None:
    cfg = preset("full")
    model = avsync.build(cfg)
    (opt,) = avsync.optimisers(model, cfg).values()
    group = opt.param_groups[0]
    assert (group["lr"], group["eps"], group["betas"], group["weight_decay"]) == (
        0.01, 1.0, (0.9, 0.999), 0.0)
    assert cfg["grad_clip"] == 0.0
    (sched,) = avsync.schedulers({"model": opt}, cfg).values()
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()  # no gradients: nothing moves, the epoch's step comes first as in training
        sched.step()
    assert lrs[:5] == [0.01] * 5 and lrs[5:] == pytest.approx([0.0094] * 5)


def test_make_pairs_aligns_mfec_windows_at_30_fps() -> None:
    cfg = avsync.AVSyncConfig()  # the paper: 9 frames at 30 fps, 15 MFEC frames
    b, t = 2, 45
    mouth = torch.arange(t).view(1, t, 1, 1).expand(b, t, 6, 10).to(torch.uint8).clone()
    k = 75  # 1.5 s of 20-ms frames
    mfec = torch.arange(k).view(1, k, 1, 1).expand(b, k, 40, 3).float().clone()
    m, a, y = avsync.make_pairs(mouth, mfec, cfg, torch.Generator().manual_seed(3))
    assert m.shape[1:] == (9, 6, 10) and a.shape[1:] == (15, 40, 3)
    for k_ in range(len(y)):
        start = int(m[k_, 0, 0, 0])
        if y[k_] == 1:
            assert int(a[k_, 0, 0, 0]) == start * 50 // 30


def test_mismatched_store_is_a_one_line_error_before_training(tmp_path: Path) -> None:
    square = {"video": torch.randint(0, 256, (2, 30, 96, 96), dtype=torch.uint8),
              "mfec": torch.randn(2, 60, 40, 3), "valid_frames": torch.tensor([30, 30])}
    grid = avsync.build(preset("grid", fps=25.0))
    with pytest.raises(ConfigError, match=r"takes 60x100 mouth crops, the store has 96x96.*"
                                          r"mouth_preset: cnn3d"):
        avsync.loss(grid, square)
    with pytest.raises(ConfigError, match="60x100"):
        avsync.sync_offsets(grid, square["video"][0].numpy(), square["mfec"][0].numpy())
    full = avsync.build(preset("full", fps=25.0))  # the 30 fps net on 25 fps video
    cnn3d = {**square, "video": torch.randint(0, 256, (2, 30, 60, 100), dtype=torch.uint8)}
    with pytest.raises(ConfigError, match="span 18 MFEC frames.*preset: grid"):
        avsync.predict(full, cnn3d)
    # through the trainer: the error comes before any step, and nothing is written
    with pytest.raises(ConfigError, match="cnn3d"):
        training.train("avsync", [square], None, preset("grid", fps=25.0, epochs=1),
                       tmp_path / "ckpt")
    assert not list((tmp_path / "ckpt").glob("*.pt"))
    for message in ("cnn3d", "grid"):
        with pytest.raises(ConfigError) as err:
            avsync.loss(grid if message == "cnn3d" else full,
                        square if message == "cnn3d" else cnn3d)
        assert "\n" not in str(err.value)


def test_tiny_reads_the_centre_of_either_crop_preset() -> None:
    """The tiny preset's 60x96 input is the centre of the cnn3d 60x100 crop and of the
    96x96 square crop alike (same mean-face scale and centre): no resize."""
    model = avsync.build(tiny_cfg("avsync")).eval()
    cnn3d = torch.randint(0, 256, (1, 8, 60, 100), dtype=torch.uint8)
    square = torch.randint(0, 256, (1, 8, 96, 96), dtype=torch.uint8)
    square[..., 18:78, :] = cnn3d[..., 2:98]
    assert torch.allclose(model.embed_mouth(cnn3d), model.embed_mouth(square))
    with pytest.raises(ConfigError, match="60x96"):
        model.embed_mouth(torch.zeros(1, 8, 48, 96, dtype=torch.uint8))


def test_tiny_learns_aligned_against_shifted_windows() -> None:
    """The tiny net, the contrastive loss and the online pair selection learn a synthetic
    talking clip: the loss falls and genuine pairs end up closer than impostors. Margin 1
    and Adam 1e-3 (eps 1e-8): at the published margin 100, lr 0.01, eps 1 this clip sits
    at the equal-distance optimum (loss ~1111 = min_d (d^2 + 2 (100 - d)^2) / 6 for one
    genuine to two impostors) for far more steps than a unit test takes; learning at the
    published settings is shown on real GRID s1 by ``benchmarks/learning_check.py``."""
    torch.manual_seed(0)
    cfg = tiny_cfg("avsync", min_shift_frames=3, margin=1.0, lr=1e-3, adam_eps=1e-8)
    model = avsync.build(cfg)
    (optimiser,) = avsync.optimisers(model, cfg).values()
    g = torch.Generator().manual_seed(1)
    signal = torch.rand(4, 40, generator=g)
    video = (signal.view(4, 40, 1, 1) * 255).expand(4, 40, 60, 100).to(torch.uint8)
    mfec = signal.repeat_interleave(2, dim=1).view(4, 80, 1, 1).expand(4, 80, 40, 3).clone()
    batch = {"video": video, "mfec": mfec, "valid_frames": torch.tensor([40] * 4)}
    model.train()
    losses = fit(avsync.loss, model, batch, optimiser, 60)
    assert np.mean(losses[-5:]) < 0.25 * np.mean(losses[:5]), losses
    model.eval()
    scores, labels = avsync.predict(model, batch)
    assert scores[labels == 1].mean() > scores[labels == 0].mean() + 0.3


def test_sync_offsets_finds_a_known_shift(monkeypatch: pytest.MonkeyPatch) -> None:
    """With embeddings that are the window's own per-frame signal, the distance is zero at
    the true offset: sync_offsets must find it and be confident."""
    model = avsync.build(tiny_cfg("avsync"))
    monkeypatch.setattr(model, "embed_mouth", lambda m: m.float().mean(dim=(2, 3)))
    monkeypatch.setattr(
        model, "embed_speech", lambda a: a.float().mean(dim=(2, 3)).reshape(len(a), -1, 2).mean(-1)
    )
    signal = np.random.default_rng(0).integers(0, 256, 60).astype(np.uint8)
    mouth = np.broadcast_to(signal[:, None, None], (60, 60, 100)).copy()

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


def test_a_preset_picked_per_model_wins_over_train_size() -> None:
    train = load_params(ROOT / "params.yaml")["train"]
    train = {**train, "avsync": {**train["avsync"], "preset": "grid"}}
    cfg = model_config(train, "avsync")
    assert (cfg["size"], cfg["window_frames"], cfg["mfec_frames"]) == ("grid", 8, 16)
    assert model_config(train, "lip2wav")["size"] == train["size"]


def test_tiny_batch_norm_statistics_settle_within_a_short_run() -> None:
    """Scoring and pair selection run in eval mode, on the moving statistics. At slim's
    decay 0.999 a few-minute run (~1000 steps) leaves them a third at their initial values
    (mean 0, var 1), which put held-out EER at chance on GRID s1; the tiny preset decays at
    0.9, the published presets keep 0.999."""
    assert preset("full")["bn_decay"] == preset("grid")["bn_decay"] == 0.999
    assert preset("tiny")["bn_decay"] == 0.9
    assert preset("tiny")["batch_size"] == 16  # 4 clips a step: noisy statistics, no learning

    def settled(decay: float) -> float:
        torch.manual_seed(0)
        model = avsync.build(preset("tiny", bn_decay=decay)).train()
        norm = model.speech.conv1[1].norm
        assert norm.momentum == pytest.approx(1.0 - decay)
        x = torch.randn(8, 3, 16, 40, 1) * 5.0 + 20.0
        with torch.no_grad():
            batch_mean = conv1_mean(model, x)
            for _ in range(60):
                model.speech(x)
        return float((norm.running_mean - batch_mean).abs().max()
                     / batch_mean.abs().max())

    assert settled(0.9) < 0.01  # 0.9 ** 60 = 0.002 of the initial value left
    assert settled(0.999) > 0.9  # 0.999 ** 60 = 0.94


def conv1_mean(model: avsync.AVSync, x: torch.Tensor) -> torch.Tensor:
    """Per-channel mean of the speech net's first conv output (what conv1's batch norm sees)."""
    return model.speech.conv1[0](x).mean(dim=(0, 2, 3, 4))
