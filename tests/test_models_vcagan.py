"""VCA-GAN: the paper's parameter counts, output shapes, every loss term of its two-step
GAN update, where v_front's gradients come from, a 2-clip overfit, the test protocol and
its vocoder, and ``lipflow models``."""

from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from lipflow.flows.cli import app
from lipflow.models.model_sizes import module_parameters
from lipflow.models.nets import vcagan
from lipflow.models.runtime import TrainingError
from lipflow.models.training_step import StepContext
from lipflow.tasks.common.errors import ConfigError
from tests.support.seed_models import fake_clip, one_thread, tiny_cfg  # noqa: F401

#: The original classes built on CPU (specs/vcagan.md), in millions, to the shown precision.
PAPER_MILLIONS = {"v_front": 19.59, "gen": 30.48, "post": 1.74, "dis1": 3.26, "dis2": 9.85,
                  "dis3": 32.92, "sync_D": 4.10}
#: This module's exact counts at the full config (each rounds to the table above).
FULL_COUNTS = {"v_front": 19_588_096, "gen": 30_477_283, "post": 1_744_896,
               "dis1": 3_263_202, "dis2": 9_850_594, "dis3": 32_921_314, "sync_D": 4_100_224}


@pytest.fixture(scope="module")
def full_model() -> vcagan.VcaGan:
    torch.manual_seed(0)
    return vcagan.build(tiny_cfg("vcagan", **_full_sizes())).eval()


def _full_sizes() -> dict:
    from lipflow.models.registry import model_config
    from lipflow.tasks.settings.project import load_params

    return model_config(load_params()["train"], "vcagan", size="full")


def _batch(b: int = 2, t: int = 20, hw: tuple[int, int] = (96, 96), seed: int = 0) -> dict:
    items = [fake_clip(seed + i, frames=t, kind="mouth", mouth_hw=hw) for i in range(b)]
    for item in items:  # a window: its own audio span, as the dataset cuts it
        item["wav"] = item["wav"][: t * 640]
    return torch.utils.data.default_collate(items)


def _ctx(amp: bool = False, dtype: torch.dtype = torch.bfloat16) -> StepContext:
    return StepContext(device=torch.device("cpu"), autocast_enabled=amp, autocast_dtype=dtype,
                       scaler=torch.amp.GradScaler("cpu", enabled=False), grad_clip=0.0,
                       epoch=1, step=0, model_name="vcagan")


def test_full_config_has_the_papers_parameter_counts(full_model: vcagan.VcaGan) -> None:
    counts = module_parameters(full_model)
    assert list(counts) == list(vcagan.TOP_MODULES)  # the features hold no parameters
    assert counts == FULL_COUNTS
    assert {k: round(v / 1e6, 2) for k, v in counts.items()} == PAPER_MILLIONS


@pytest.mark.parametrize("t", [40, 75])
def test_full_size_forward_shapes(full_model: vcagan.VcaGan, t: int) -> None:
    video = _batch(1, t, hw=(112, 112))["video"]
    with torch.no_grad():
        x = full_model.video_input(video)
        assert x.shape == (1, 1, t, 112, 112)
        phon, sent = full_model.v_front(x)
        g1, g2, g3 = full_model.gen(sent, phon, torch.tensor([t]))
        spec = full_model.post(g3)
    assert phon.shape == (1, t, 512) and sent.shape == (1, 512, t)
    assert (g1.shape, g2.shape, g3.shape) == ((1, 1, 20, t), (1, 1, 40, 2 * t),
                                              (1, 1, 80, 4 * t))
    assert spec.shape == (1, 1, 321, 4 * t)
    assert g3.abs().max() <= 1.0  # tanh heads: the normalised mel's range


@pytest.mark.parametrize("t", [40, 75])
def test_tiny_shapes_and_discriminator_outputs(t: int) -> None:
    model = vcagan.build(tiny_cfg("vcagan"))
    batch = _batch(2, t)
    x = model.video_input(batch["video"])
    assert x.shape == (2, 1, t, 32, 32)  # resized to the preset's image_hw
    phon, sent = model.v_front(x)
    fakes = model.gen(sent, phon, batch["valid_frames"])
    assert [tuple(g.shape[2:]) for g in fakes] == [(20, t), (40, 2 * t), (80, 4 * t)]
    for dis, g in zip(model.discriminators(), fakes, strict=True):
        assert dis.main(g).shape[2:] == (5, t // 4)
        u, c = dis(g, sent)
        assert u.shape == c.shape == (2, 1)
    assert model.sync_D.embed(fakes[2]).shape == phon.shape


def test_attention_ignores_frames_past_the_clip() -> None:
    model = vcagan.build(tiny_cfg("vcagan")).eval()
    att = model.gen.att1
    g = torch.randn(1, 16, 20, 24)
    sent = torch.randn(1, 32, 24)
    other = sent.clone()
    other[:, :, 18:] = 100.0  # only frames past the valid 18 change
    lengths = torch.tensor([18])
    assert torch.allclose(att(g, sent, lengths), att(g, other, lengths))
    assert not torch.allclose(att(g, sent, torch.tensor([24])), att(g, other, torch.tensor([24])))


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
def test_every_loss_term_is_finite_and_r1_is_not_zero(amp: bool) -> None:
    torch.manual_seed(0)
    cfg = tiny_cfg("vcagan")
    model = vcagan.build(cfg)
    out = vcagan.train_step(model, _batch(), vcagan.optimisers(model, cfg), _ctx(amp=amp))
    assert set(out) == {"loss", "g_total", "g_adv", "sync_g", "d_loss", "d_adv", "sync", "r1"}
    assert all(math.isfinite(v) for v in out.values()), out
    assert out["r1"] > 0.0
    assert out["g_total"] == pytest.approx(out["g_adv"] + out["sync_g"] + 50 * out["loss"],
                                           rel=1e-5)
    assert out["d_loss"] == pytest.approx(out["d_adv"] + out["r1"] + out["sync"], rel=1e-5)


def _record_v_front_grads(model: vcagan.VcaGan, optimisers: dict) -> dict[str, list]:
    """v_front's gradients as each optimiser is about to step."""
    seen: dict[str, list] = {}
    for name, opt in optimisers.items():
        def hook(_opt, _args, _kwargs, name=name):
            seen[name] = [p.grad.clone() if p.grad is not None else torch.zeros_like(p)
                          for p in model.v_front.parameters()]
        opt.register_step_pre_hook(hook)
    return seen


def test_v_front_learns_from_infonce_and_from_the_generator_loss(monkeypatch) -> None:
    cfg = tiny_cfg("vcagan")
    torch.manual_seed(0)
    start = vcagan.build(cfg)
    batch = _batch()

    model = copy.deepcopy(start)
    opts = vcagan.optimisers(model, cfg)
    both = _record_v_front_grads(model, opts)
    torch.manual_seed(1)
    vcagan.train_step(model, batch, opts, _ctx())
    # at the D step only InfoNCE reaches v_front (the D sees sent.detach(), fakes detached)
    infonce = both["discriminator"]
    assert sum(float(g.abs().sum()) for g in infonce) > 0

    # the same step with InfoNCE cut off from v_front: v_front then sees L_G alone
    model = copy.deepcopy(start)
    opts = vcagan.optimisers(model, cfg)
    alone = _record_v_front_grads(model, opts)
    real_infonce = vcagan.SyncDiscriminator.infonce
    monkeypatch.setattr(vcagan.SyncDiscriminator, "infonce",
                        lambda self, phon, mel: real_infonce(self, phon.detach(), mel))
    torch.manual_seed(1)
    vcagan.train_step(model, batch, opts, _ctx())
    assert sum(float(g.abs().sum()) for g in alone["discriminator"]) == 0
    from_g = alone["generator"]
    assert sum(float(g.abs().sum()) for g in from_g) > 0
    # the G step stepped on both: InfoNCE's gradient was kept, L_G's added to it
    for total, a, b in zip(both["generator"], infonce, from_g, strict=True):
        torch.testing.assert_close(total, a + b, rtol=1e-4, atol=1e-7)


def test_two_clips_overfit_lowers_the_reconstruction_loss() -> None:
    torch.manual_seed(0)
    cfg = tiny_cfg("vcagan", lr=1e-3)
    model = vcagan.build(cfg)
    opts = vcagan.optimisers(model, cfg)
    batch = _batch()
    losses = [vcagan.train_step(model, batch, opts, _ctx())["loss"] for _ in range(40)]
    assert losses[-1] < 0.7 * losses[0], losses
    # noisy step to step (a fresh noise draw each step, the GAN terms), steady in blocks
    # of 10 (5-step blocks rose once on one CPU kind: 1.18 -> 1.25, then fell again)
    blocks = [sum(losses[i:i + 10]) / 10 for i in range(0, len(losses), 10)]
    assert all(b < a for a, b in zip(blocks[:-1], blocks[1:], strict=True)), blocks


def test_steps_refuse_fp16_and_short_windows() -> None:
    cfg = tiny_cfg("vcagan")
    model = vcagan.build(cfg)
    opts = vcagan.optimisers(model, cfg)
    with pytest.raises(TrainingError, match="fp16"):
        vcagan.train_step(model, _batch(), opts, _ctx(amp=True, dtype=torch.float16))
    with pytest.raises(TrainingError, match="window_frames"):
        vcagan.train_step(model, _batch(t=16), opts, _ctx())


def test_config_errors_are_one_line() -> None:
    with pytest.raises(ConfigError, match="25 fps"):
        vcagan.build(tiny_cfg("vcagan", fps=30.0))
    with pytest.raises(ConfigError, match="stage_channels"):
        vcagan.build(tiny_cfg("vcagan", stage_channels=[15, 8, 4]))


def test_optimisers_and_schedulers_follow_the_paper() -> None:
    cfg = tiny_cfg("vcagan")
    model = vcagan.build(cfg)
    opts = vcagan.optimisers(model, cfg)
    assert set(opts) == {"discriminator", "generator"}
    d_params = {id(p) for g in opts["discriminator"].param_groups for p in g["params"]}
    g_params = {id(p) for g in opts["generator"].param_groups for p in g["params"]}
    for name in ("dis1", "dis2", "dis3", "sync_D"):
        assert {id(p) for p in getattr(model, name).parameters()} <= d_params
    for name in ("v_front", "gen", "post"):
        assert {id(p) for p in getattr(model, name).parameters()} <= g_params
    assert not d_params & g_params
    assert len(d_params | g_params) == len(list(model.parameters()))
    group = opts["generator"].param_groups[0]
    assert (group["lr"], group["weight_decay"], group["amsgrad"]) == (1e-4, 1e-5, True)
    scheds = vcagan.schedulers(opts, cfg)
    assert set(scheds) == set(opts)
    assert dict(scheds["generator"].milestones) == {500: 1, 800: 1}
    assert scheds["generator"].gamma == 0.1


def test_augmentation_only_in_training_mode() -> None:
    model = vcagan.build(tiny_cfg("vcagan", image_hw=[112, 112]))
    video = _batch(4, 20, hw=(112, 112))["video"]
    model.eval()
    plain = model.video_input(video)
    assert torch.equal(plain, model.video_input(video))
    model.train()
    torch.manual_seed(3)
    augmented = model.video_input(video)
    for clip, base in zip(augmented, plain, strict=True):
        flipped = base.flip(3)
        zero = clip[0] == 0  # (T, H, W)
        assert torch.equal(zero, zero[:1].expand_as(zero))  # one patch, in every frame
        rows, cols = zero[0].any(1).sum(), zero[0].any(0).sum()
        assert 46 <= rows <= 56 and 46 <= cols <= 56  # 56x56, clipped by at most 10
        kept = ~zero
        assert (torch.equal(clip[0][kept], base[0][kept])
                or torch.equal(clip[0][kept], flipped[0][kept]))


def test_predict_target_and_waveform_lengths() -> None:
    model = vcagan.build(tiny_cfg("vcagan")).eval()
    batch = _batch(2, 25)
    pred = vcagan.predict(model, batch)
    assert pred.shape == (2, 100, 321) and pred.dtype == torch.float32
    truth = vcagan.target(batch)
    assert truth.shape == (2, 100, 321) and bool((truth >= 0).all())
    wav = vcagan.to_waveform(truth[0].numpy())
    assert wav.shape == (100 * 160,) and wav.dtype == np.float32
    assert np.abs(wav).max() <= 1.0 and np.abs(wav).max() > 0.01
    assert vcagan.to_waveform(pred[0].numpy(), {"n_fft": 800}).shape == (16000,)
    assert vcagan.SPECTROGRAM_FRAMES_PER_SECOND == 100 and vcagan.SAMPLE_RATE_HZ == 16000


def test_validation_loss_is_the_reconstruction_loss() -> None:
    torch.manual_seed(0)
    model = vcagan.build(tiny_cfg("vcagan")).eval()
    batch = _batch()
    with torch.no_grad():
        torch.manual_seed(5)
        value = vcagan.loss(model, batch)
        torch.manual_seed(5)
        video = model.video_input(batch["video"])
        phon, sent = model.v_front(video)
        g1, g2, g3 = model.gen(sent, phon, batch["valid_frames"])
        reals, spec = vcagan._targets(model, batch, 20)
        by_hand = vcagan.reconstruction((g1, g2, g3), model.post(g3), reals, spec)
    assert value.ndim == 0 and float(value) == pytest.approx(float(by_hand))


def test_lipflow_models_prints_vcagans_modules() -> None:
    result = CliRunner().invoke(app, ["models", "vcagan", "--size", "full"])
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0] == f"vcagan (full): {sum(FULL_COUNTS.values()):,} parameters"
    shown = {line.split()[0]: (line.split()[1], line.split()[2]) for line in lines[1:]}
    assert shown == {k: (f"{v:,}", f"{PAPER_MILLIONS[k]:.2f}") for k, v in FULL_COUNTS.items()}
    bad = CliRunner().invoke(app, ["models", "vcagan", "--size", "huge"])
    assert bad.exit_code == 2 and "--size must be one of tiny, full" in bad.output
