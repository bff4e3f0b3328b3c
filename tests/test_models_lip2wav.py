"""Lip2Wav model: shapes, time kept by the encoder, both decoders train, masks, config errors."""

from __future__ import annotations

import time

import pytest
import torch

from lipflow.models.nets import lip2wav
from lipflow.tasks.common.errors import ConfigError
from tests.support.seed_models import one_thread, tiny_cfg  # noqa: F401


def _batch(b: int = 2, t: int = 75, m: int = 240) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "video": torch.randint(0, 256, (b, t, 96, 96, 3), generator=g, dtype=torch.uint8),
        "mel": torch.rand(b, m, 80, generator=g) * 8 - 4,
        "valid_frames": torch.tensor([t, t - 15][:b]),
    }


def test_encoder_keeps_every_frame() -> None:
    model = lip2wav.build(tiny_cfg("lip2wav"))
    enc = model.encoder(_batch()["video"])
    assert enc.shape == (2, 75, 32)
    # stride 1 in time: changing only the last frame leaves early features untouched
    video = _batch()["video"]
    other = video.clone()
    other[:, -1] = 0
    model.eval()
    with torch.no_grad():
        a, b = model.encoder(video), model.encoder(other)
    assert torch.allclose(a[:, :60], b[:, :60])
    assert not torch.allclose(a[:, -1], b[:, -1])


@pytest.mark.parametrize("decoder", ["nonautoregressive", "attention"])
def test_decoders_overfit_a_batch_quickly(decoder: str) -> None:
    torch.manual_seed(0)
    model = lip2wav.build(tiny_cfg("lip2wav", decoder=decoder))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = _batch()
    losses, times = [], []
    for _ in range(6):
        t0 = time.perf_counter()
        value = lip2wav.loss(model, batch)
        optimiser.zero_grad()
        value.backward()
        optimiser.step()
        times.append(time.perf_counter() - t0)
        losses.append(float(value.detach()))
    assert losses[-1] < losses[0]
    # tiny config: a B=2, T=75 step well under a second (generous for a crowded CI box)
    assert min(times) < 1.0, times


@pytest.mark.parametrize("decoder", ["nonautoregressive", "attention"])
def test_predict_shapes_follow_fps_and_target(decoder: str) -> None:
    model = lip2wav.build(tiny_cfg("lip2wav", decoder=decoder)).eval()
    batch = _batch(b=1, t=30, m=96)
    assert lip2wav.predict(model, batch).shape == (1, 96, 80)
    no_target = {"video": batch["video"]}
    assert lip2wav.predict(model, no_target).shape == (1, 96, 80)  # 30 frames * 80/25
    model30 = lip2wav.build(tiny_cfg("lip2wav", decoder=decoder, fps=30.0)).eval()
    assert lip2wav.predict(model30, no_target).shape == (1, 80, 80)  # 30 frames * 80/30
    # the stored mels have 241 frames: the target fixes M
    assert lip2wav.predict(model, {**batch, "mel": torch.zeros(1, 97, 80)}).shape == (1, 97, 80)


def test_attention_decoder_free_runs_at_inference() -> None:
    torch.manual_seed(0)
    model = lip2wav.build(tiny_cfg("lip2wav", decoder="attention")).eval()
    batch = _batch(b=1, t=20, m=64)
    out1 = lip2wav.predict(model, batch)
    out2 = lip2wav.predict(model, {**batch, "mel": torch.full_like(batch["mel"], 3.0)})
    # inference never looks at the target values, only its length
    torch.manual_seed(1)
    out3 = lip2wav.predict(model, batch)
    torch.manual_seed(1)
    out4 = lip2wav.predict(model, {**batch, "mel": torch.full_like(batch["mel"], 3.0)})
    assert out1.shape == out2.shape
    assert torch.equal(out3, out4)


def test_loss_ignores_padded_frames() -> None:
    batch = _batch(b=2)
    batch["valid_frames"] = torch.tensor([75, 30])
    mel = batch["mel"]
    mask = lip2wav.valid_mel_mask(batch, mel, 25.0)
    assert mask[0].sum() == 240 and mask[1].sum() == 96
    pred = mel.clone()
    pred[1, 96:] += 10.0  # wrong only where clip 1 is padding
    assert float(lip2wav.masked_l1(pred, mel, mask)) == 0.0
    pred[1, 95] += 8.0
    assert float(lip2wav.masked_l1(pred, mel, mask)) > 0.0


def test_unknown_decoder_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="decoder"):
        lip2wav.build(tiny_cfg("lip2wav", decoder="diffusion"))


def test_bad_video_shape_is_reported() -> None:
    model = lip2wav.build(tiny_cfg("lip2wav"))
    with pytest.raises(ValueError, match=r"\(B, T, H, W, 3\)"):
        model(torch.zeros(1, 10, 60, 100, dtype=torch.uint8))
