"""GaborFea2Speech and GaborPic2Speech as the original repository built them: the seven
features on real GRID mouth frames against a hand computation of the formulas, the
390-step time base and 26-step slices, the networks' published sizes, the autoencoder
target, the -corr2 + MSE loss, and a tiny overfit."""

from __future__ import annotations

import math
from functools import cache

import cv2
import numpy as np
import pytest
import torch
from scipy import ndimage

from lipflow.models.nets import gabor, gaborpic
from lipflow.models.nets import gabor_features as gf
from lipflow.tasks.common.errors import ConfigError
from tests.support.seed_models import SAMPLE_CLIP, fake_clip, fit, one_thread, tiny_cfg  # noqa: F401

#: the mouth of s1/bbaf2n.mpg (360x288, the speaker still): rows 183-242, cols 110-209
MOUTH = (slice(183, 243), slice(110, 210))


@cache
def grid_mouths() -> np.ndarray:
    """(75, 60, 100) uint8 grey mouth crops of a real GRID clip."""
    cap = cv2.VideoCapture(str(SAMPLE_CLIP))
    frames = []
    while True:
        ok, frame = cap.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)[MOUTH])
    cap.release()
    return np.stack(frames)


# ------------------------------------------------------------------ by hand, from formulas


def _kernel_by_hand() -> np.ndarray:
    """The Gabor formula on x, y = -6..6: exp(-(x'^2 + g^2 y'^2) / 2s^2) cos(2 pi x'/l + psi),
    x' = x cos t + y sin t, y' = -x sin t + y cos t; OpenCV's kernel is indexed [ymax - y,
    xmax - x] (flipped)."""
    sigma, theta, lambd, gamma, psi = 5.0, math.pi / 2, 10.0, 0.5, 0.0
    y, x = np.mgrid[6:-7:-1, 6:-7:-1].astype(np.float64)
    xr = x * math.cos(theta) + y * math.sin(theta)
    yr = -x * math.sin(theta) + y * math.cos(theta)
    return np.exp(-(xr**2 + gamma**2 * yr**2) / (2 * sigma**2)) * np.cos(
        2 * math.pi * xr / lambd + psi)


def _yen_by_hand(image: np.ndarray) -> int:
    """Yen's criterion on the 256-bin histogram: the t maximising
    -log(sum_{<=t} p^2 * sum_{>t} p^2) + 2 log(P(t) (1 - P(t)))."""
    hist = np.bincount(image.ravel(), minlength=256).astype(np.float64)
    levels = np.nonzero(hist)[0]
    p = hist[levels] / hist.sum()
    best, best_t = -np.inf, levels[0]
    for i in range(len(levels) - 1):
        lo, hi = p[: i + 1], p[i + 1 :]
        big = lo.sum()
        crit = -math.log((lo**2).sum() * (hi**2).sum()) + 2 * math.log(big * (1 - big))
        if crit > best:
            best, best_t = crit, levels[i]
    return int(best_t)


def _features_by_hand(picture: np.ndarray) -> np.ndarray:
    h, w = picture.shape
    cx, cy = (w - 1) / 2, (h - 1) / 2
    mask = picture >= _yen_by_hand(picture)
    labels, n = ndimage.label(mask, structure=np.ones((3, 3)))
    best, bdx, bdy = None, 1000.0, 1000.0
    for k in range(1, n + 1):  # label order = raster order of first pixels, as skimage
        rows, cols = np.nonzero(labels == k)
        dx, dy = abs(cx - cols.mean()), abs(rows.mean() - cy)
        if dx < bdx and dy < bdy:
            best, bdx, bdy = (rows, cols), dx, dy
    rows, cols = best
    vx, vy = cols.var(), rows.var()
    cov = ((cols - cols.mean()) * (rows - rows.mean())).mean()
    return np.array([
        cols.max() - cols.min() + 1, rows.max() - rows.min() + 1, len(rows),
        cols.mean(), rows.mean(), picture[rows, cols].mean(),
        0.5 * math.atan2(2 * cov, vx - vy),
    ])


# ------------------------------------------------------------------ features


def test_kernel_is_the_gabor_formula() -> None:
    k = gf.gabor_kernel()
    assert k.shape == (13, 13)
    assert np.allclose(k, _kernel_by_hand(), atol=1e-6)


def test_gabor_picture_is_the_8_bit_squared_response() -> None:
    frame = grid_mouths()[30]
    by_hand = ndimage.correlate(frame / 255.0, _kernel_by_hand(), mode="mirror") ** 2
    by_hand = np.clip(np.rint(by_hand), 0, 255).astype(np.uint8)
    raw = gf.gabor_picture(frame, jpeg=False)
    assert raw.dtype == np.uint8 and raw.shape == frame.shape
    assert np.abs(raw.astype(int) - by_hand).max() <= 1  # float32 vs float64 rounding
    assert np.mean(raw != by_hand) < 0.01
    # the original read the picture back from a JPEG (cv2.imwrite's quality 95)
    ok, buf = cv2.imencode(".jpg", raw, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert np.array_equal(gf.gabor_picture(frame), cv2.imdecode(buf, cv2.IMREAD_GRAYSCALE))


@pytest.mark.parametrize("t", [0, 10, 30, 50, 70])
def test_seven_features_on_real_frames_match_the_formulas(t: int) -> None:
    picture = gf.gabor_picture(grid_mouths()[t])
    assert gf.picture_features(picture) == pytest.approx(_features_by_hand(picture), abs=1e-4)


def test_mean_intensity_is_the_gabor_pictures_not_the_crops() -> None:
    frame = grid_mouths()[30]
    feats = gf.picture_features(gf.gabor_picture(frame))
    # the region lies on the bright (high-energy) part of the Gabor picture, whose values
    # are far below the grey crop's (about 140 on this frame)
    assert frame.mean() > 120 and feats[5] < 110
    picture = gf.gabor_picture(frame)
    assert feats[5] >= _yen_by_hand(picture)  # every pixel of it passed the threshold


def test_threshold_is_yen_on_the_8_bit_picture_and_the_mask_inclusive() -> None:
    from skimage.filters import threshold_yen

    for t in (10, 30, 60):
        picture = gf.gabor_picture(grid_mouths()[t])
        assert threshold_yen(picture) == _yen_by_hand(picture)
    # ">=": a bar of 7 on zeros has threshold 0, so every pixel is kept (one region, the
    # whole crop); ">" would have kept the bar alone
    flat = np.zeros((20, 30), np.uint8)
    flat[8:12, 5:25] = 7
    f = gf.picture_features(flat)
    assert f[2] == 600 and f[5] == pytest.approx(80 * 7 / 600)


def test_region_rule_needs_both_axes_closer() -> None:
    """A region nearer the centre (49.5, 29.5) in Euclidean distance but farther on one
    axis does not replace the current choice, as in the original's loop."""
    from skimage.measure import label, regionprops

    def chosen(mask: np.ndarray) -> tuple[float, float]:
        region = gf.choose_region(regionprops(label(mask)), (49.5, 29.5))
        return region.centroid[1], region.centroid[0]

    mask = np.zeros((60, 100), bool)
    mask[2:6, 40:60] = True  # first in label order: centroid (49.5, 3.5): dx 0, dy 26
    mask[26:34, 64:70] = True  # (66.5, 29.5): dx 17, dy 0: nearer (17 < 26), not on both
    assert chosen(mask) == (pytest.approx(49.5), pytest.approx(3.5))
    mask[2:6, 40:60] = False
    mask[1:3, 60:62] = True  # first now: (60.5, 1.5): dx 11, dy 28
    assert chosen(mask) == (pytest.approx(60.5), pytest.approx(1.5))  # 17 > 11: kept
    mask[10:12, 50:52] = True  # (50.5, 10.5): dx 1, dy 19, after it in label order: wins
    assert chosen(mask) == (pytest.approx(50.5), pytest.approx(10.5))


def test_features_of_a_clip_and_bad_shapes() -> None:
    feats = gf.gabor_features(grid_mouths()[:5])
    assert feats.shape == (5, 7) and feats.dtype == np.float32
    assert np.all(np.abs(feats[:, 6]) <= math.pi / 2)
    with pytest.raises(ConfigError, match=r"\(T, H, W\)"):
        gf.gabor_features(np.zeros((4, 60, 100, 3), np.uint8))


# ------------------------------------------------------------------ time base, slices


def test_time_base_is_390_steps_for_a_3_s_clip() -> None:
    assert gf.time_steps(75, 25.0) == 390  # 375 auditory frames - 2 -> 15 x 26
    assert gf.steps_for_aud_frames(375) == 390
    assert gf.time_steps(90, 30.0) == 390
    assert gf.steps_for_aud_frames(30) == 52  # 28 frames -> 2 slices


def test_interpolation_is_the_originals_map_coordinates() -> None:
    raw = gf.gabor_features(grid_mouths()[:75])
    out = gf.interpolate_features(raw, 390)
    assert out.shape == (390, 7)
    assert np.allclose(out[0], raw[0], atol=1e-3) and np.allclose(out[-1], raw[-1], atol=1e-3)
    # step k sits at video frame k * 74 / 389: a cubic spline through the frames
    k = 200
    pos = k * 74 / 389
    expected = ndimage.map_coordinates(raw.astype(np.float64), [[pos] * 7, list(range(7))])
    assert np.allclose(out[k], expected, atol=1e-3)


def test_slices_hold_features_and_their_differences() -> None:
    x = np.tile(np.arange(10, dtype=np.float32)[:, None] ** 2, (1, 7))  # t^2 per column
    parts = gf.with_differences(x)
    assert np.array_equal(parts[1][1:, 0], np.diff(x[:, 0])) and parts[1][0, 0] == 0
    assert np.allclose(parts[2][2:, 0], 2.0)  # second difference of t^2
    slices = gf.feature_inputs(gf.gabor_features(grid_mouths()), 390)
    assert slices.shape == (15, 26, 21)
    whole = gf.interpolate_features(gf.gabor_features(grid_mouths()), 390)
    assert np.allclose(slices[3, :, :7], whole[78:104])  # slice 3 = steps 78..103


def test_picture_slices_layout() -> None:
    pics = gf.gabor_pictures(grid_mouths()[:75])
    cube = gf.picture_inputs(pics, 390, (40, 80))
    assert cube.shape == (15, 3, 40, 80, 26)  # slices, (picture, d1, d2), h, w, steps
    first = cv2.resize(pics[0], (80, 40)).astype(np.float32)
    assert np.allclose(cube[0, 0, :, :, 0], first)
    assert np.all(cube[0, 1, :, :, 0] == 0)


# ------------------------------------------------------------------ networks and target


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_full_networks_have_the_papers_parameter_counts() -> None:
    """Keras' model.summary() of the original, counted by hand (docs/params.md): trainable
    parameters, plus torch's second LSTM bias (4 x 512 per LSTM) and, in GaborPic2Speech,
    a batch norm over the 16 conv channels where Keras' default axis (-1) normalised the
    26 time steps (32 vs 52 trainable)."""
    fea = gabor.build({})
    assert _params(fea.lip) == 30_068_544 + 2_048
    assert _params(fea.autoencoder) == 170_848
    pic = gaborpic.build({})
    assert _params(pic.lip) == 58_341_524 + 2 * 2_048 - 20


def test_corr2_mse_is_the_originals_formula() -> None:
    a, b = torch.rand(4, 32, 26), torch.rand(4, 32, 26)
    ac, bc = a - a.mean(), b - b.mean()
    r = float((ac * bc).sum() / torch.sqrt((ac * ac).sum() * (bc * bc).sum()))
    assert float(gabor.corr2_mse(a, b)) == pytest.approx(-r + float(((ac - bc) ** 2).mean()))
    assert float(gabor.corr2_mse(a, a)) == pytest.approx(-1.0)
    zero = torch.zeros(2, 3, requires_grad=True)
    gabor.corr2_mse(zero + torch.rand(2, 3), torch.zeros(2, 3)).backward()
    assert torch.isfinite(zero.grad).all()  # a silent clip's constant target


def test_auditory_target_of_real_speech() -> None:
    item = fake_clip(0, kind="mouth")
    batch = {"video": item["video"][None], "wav": item["wav"][None]}
    spec = gabor.target(batch)
    assert spec.shape == (1, 390, 128) and float(spec.min()) >= 0
    assert float(spec[0, :300].std()) > 0


def _batch(n: int = 2) -> dict[str, torch.Tensor]:
    items = [fake_clip(i, kind="mouth") for i in range(n)]
    items[0]["video"] = torch.from_numpy(grid_mouths().copy())
    return {k: torch.stack([it[k] for it in items]) for k in items[0]}


@pytest.mark.parametrize("module", [gabor, gaborpic])
def test_tiny_model_overfits_with_corr2_mse(module) -> None:
    torch.manual_seed(0)
    name = "gabor" if module is gabor else "gaborpic"
    model = module.build(tiny_cfg(name))
    batch = _batch()
    model.eval()
    pred = module.predict(model, batch)
    assert pred.shape == (2, 390, 128) and float(pred.min()) >= 0
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = fit(module.loss, model, batch, optimiser, 25)
    assert losses[-1] < losses[0] - 0.3, losses
    assert losses[-1] < -0.3  # both corr2 terms well above zero


def test_bottleneck_slices_round_trip() -> None:
    x = torch.arange(2 * 390 * 32, dtype=torch.float32).view(2, 390, 32)
    slices = gabor._to_slices(x)
    assert slices.shape == (30, 32, 26)
    assert torch.equal(slices[1, :, 0], x[0, 26])  # slice 1 starts at step 26
    assert torch.equal(gabor._from_slices(slices, 2), x)


def test_precomputed_features_and_waveform() -> None:
    model = gabor.build(tiny_cfg("gabor")).eval()
    batch = {"gabor": torch.rand(1, 75, 7) * 50, "video": torch.zeros(1, 75, 60, 100,
                                                                      dtype=torch.uint8)}
    pred = gabor.predict(model, batch)
    assert pred.shape == (1, 390, 128)
    wave = gabor.to_waveform(pred[0].numpy())
    assert wave.shape == ((390 + 2) * 64 * 2,) and np.all(np.abs(wave) <= 1.0)


def test_bad_inputs_kind_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="features or pictures"):
        gabor.GaborConfig.from_dict({"inputs": "pixels"})


def _step(module, model, batch, optimisers, epoch: int) -> None:
    from lipflow.models.training_step import StepContext

    ctx = StepContext(device=torch.device("cpu"), autocast_enabled=False,
                      autocast_dtype=torch.float32,
                      scaler=torch.amp.GradScaler("cpu", enabled=False), grad_clip=1.0,
                      epoch=epoch, step=0, model_name="gabor")
    module.train_step(model, batch, optimisers, ctx)


@pytest.mark.parametrize("module", [gabor, gaborpic])
def test_autoencoder_trains_alone_first_then_freezes(module) -> None:
    """The original's two stages: epochs 1..ae_epochs move only the autoencoder, later
    epochs only the lip network, on a bottleneck that no longer moves."""
    from lipflow.models.training_step import default_optimisers

    torch.manual_seed(0)
    name = "gabor" if module is gabor else "gaborpic"
    cfg = {**tiny_cfg(name), "ae_epochs": 2, "epochs": 4}
    model = module.build(cfg).train()
    optimisers = default_optimisers(model, {"lr": 1e-3, "weight_decay": 0.0})
    batch = _batch()

    def snapshot(part: torch.nn.Module) -> list[torch.Tensor]:
        return [p.detach().clone() for p in part.parameters()]

    def moved(before: list[torch.Tensor], part: torch.nn.Module) -> bool:
        return any(not torch.equal(a, b) for a, b in zip(before, part.parameters(),
                                                          strict=True))

    for epoch, ae_moves in ((1, True), (2, True), (3, False), (4, False)):
        lip, ae = snapshot(model.lip), snapshot(model.autoencoder)
        ae_stats = model.autoencoder.encoder[1].running_mean.clone()
        _step(module, model, batch, optimisers, epoch)
        assert moved(ae, model.autoencoder) is ae_moves, epoch
        assert moved(lip, model.lip) is not ae_moves, epoch
        # frozen means its batch-norm statistics too: the targets are the same every step
        assert torch.equal(ae_stats, model.autoencoder.encoder[1].running_mean) is not ae_moves
    assert gabor.phase(gabor.GaborConfig(ae_epochs=0), 1) == "both"


def test_the_lip_network_always_gets_an_epoch() -> None:
    phases = [gabor.phase(gabor.GaborConfig(ae_epochs=5, epochs=3), e) for e in (1, 2, 3)]
    assert phases == ["autoencoder", "autoencoder", "lip"]
    assert gabor.phase(gabor.GaborConfig(ae_epochs=1, epochs=1), 1) == "both"
    assert gabor.phase(gabor.GaborConfig(ae_epochs=2, epochs=0), 3) == "lip"  # time-bound
    with pytest.raises(ConfigError, match="ae_epochs must be >= 0"):
        gabor.build({**tiny_cfg("gabor"), "ae_epochs": -1})


@pytest.mark.parametrize("module", [gabor, gaborpic])
def test_recalibrate_restores_the_decoder_level_the_loss_cannot_see(module) -> None:
    """The published -corr2 + MSE centres both sides first, so a constant on the decoder's
    output is never learnt; ``** 3`` and the vocoder see it (on GRID s1 it put 69% of the
    decoded values under 0). ``recalibrate`` measures it on training frames and
    ``predict`` adds it back, so the output level no longer depends on it."""
    from lipflow.models.registry import spec

    assert spec(module.__name__.rsplit(".", 1)[-1]).recalibrate is gabor.recalibrate
    torch.manual_seed(0)
    name = "gabor" if module is gabor else "gaborpic"
    model = module.build(tiny_cfg(name))
    batch = _batch()
    ae = model.autoencoder
    flat = gabor._frames(model, batch).reshape(-1, 128)
    model.eval()
    with torch.no_grad():
        recon = ae(flat)
        assert float(gabor.corr2_mse(recon + 5.0, flat)) == pytest.approx(
            float(gabor.corr2_mse(recon, flat)), abs=1e-5)  # the loss is blind to it
    model.train()
    cpu = torch.device("cpu")
    module.recalibrate(model, [batch], cpu)
    assert model.training  # left as it was
    model.eval()
    with torch.no_grad():
        level = float(ae.decode(ae.encode(flat)).mean())
    assert level == pytest.approx(float(flat.mean()), abs=1e-4)
    before = module.predict(model, batch)
    with torch.no_grad():
        ae.decoder[-1].bias += 5.0  # what the loss lets training leave there
    shifted = module.predict(model, batch)
    module.recalibrate(model, [batch], cpu)
    after = module.predict(model, batch)
    assert float((shifted - before).abs().max()) > 10.0  # uncalibrated: far off
    torch.testing.assert_close(after, before, atol=1e-4, rtol=1e-4)
    state = model.state_dict()  # the level travels with the checkpoints
    assert float(state["autoencoder.level"]) == pytest.approx(float(ae.level))


def test_checkpoint_from_before_the_level_is_a_clear_error(tmp_path) -> None:
    """``best.pt`` written before ``autoencoder.level`` existed: one line naming the fix
    (train again), not a state-dict traceback from ``lipflow evaluate`` / ``synthesize``."""
    from lipflow.models.checkpoints import save_best
    from lipflow.models.evaluation import load_model
    from lipflow.models.runtime import TrainingError

    cfg = tiny_cfg("gabor")
    model = gabor.build(cfg)
    path = tmp_path / "best.pt"
    save_best(path, "gabor", model, cfg, epoch=1)
    loaded, _ = load_model("gabor", path, torch.device("cpu"))
    assert not loaded.training
    old = {k: v for k, v in model.state_dict().items() if k != "autoencoder.level"}
    torch.save({"model_name": "gabor", "model": old, "cfg": cfg, "epoch": 1}, path)
    with pytest.raises(TrainingError, match="does not fit today's gabor network; run "
                                            "lipflow train gabor again"):
        load_model("gabor", path, torch.device("cpu"))
