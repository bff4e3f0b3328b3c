"""Lip2Wav as published: sizes against the original's, masks, schedules, windows, training."""

from __future__ import annotations

import time

import pytest
import torch

from lipflow.models.nets import lip2wav
from lipflow.models.training_step import StepContext
from lipflow.tasks.common.errors import ConfigError
from tests.support.seed_models import fit, one_thread, tiny_cfg  # noqa: F401


def _batch(b: int = 2, t: int = 75, m: int = 240, face: int = 96) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "video": torch.randint(0, 256, (b, t, face, face, 3), generator=g, dtype=torch.uint8),
        "mel": torch.rand(b, m, 80, generator=g) * 8 - 4,
        "valid_frames": torch.tensor([t, t - 15][:b]),
    }


# --------------------------------------------------------------------------- sizes


def original_parameters(face: int, init_filters: int, blocks: int, encoder_lstm: int,
                        decoder_lstm: int) -> dict[str, int]:
    """Trainable variables of the original TensorFlow model, counted by hand.

    From Rudrabha/Lip2Wav ``synthesizer/models/modules.py`` and ``tacotron.py`` with
    ``hparams.py``'s shared sizes (speaker embedding 256, prenet 2 x 256, 2 decoder LSTM
    layers, attention 128 with 32 filters of 31, r 2, 80 mels, postnet 5 x 512 kernel 5):

    - ``EncoderConvolutions3D``: per block ``i`` with ``c = init * 2**i`` channels, a
      ``tf.layers.conv3d`` (kernel 5 in block 0, else 3; kernel k^3*cin*c + bias c) and
      batch norm (gamma, beta: 2c), two residual 3x3x3 convs, and after the last block one
      more 3x3x3 conv of stride 3 (96 -> 3 -> 1 for chem, 48 -> 3 -> 1 for the others);
    - ``EncoderRNN``: two TF ``LSTMCell`` (kernel (d + u) x 4u, one bias 4u), d = c_last;
    - the memory is ``2u + 256`` wide (the zero speaker embedding is concatenated);
    - ``Prenet``: dense 80 -> 256 -> 256 with biases;
    - ``DecoderRNN``: LSTMCell(256 + memory -> D), LSTMCell(D -> D);
    - ``LocationSensitiveAttention``: query D x 128 and memory m x 128 (no bias), location
      conv 31 x 1 x 32 + 32, location dense 32 x 128, ``v_a`` 128, ``b_a`` 128;
    - ``FrameProjection``: (D + memory) x 160 + 160;
    - ``Postnet``: conv 5 x 80 x 512 and four 5 x 512 x 512, each + bias + batch norm, then
      the postnet projection 512 x 80 + 80.

    chem: 43,623,104 (about 44 M, the figure the issue quotes); chess, eh, hs: 31,588,528;
    dl: 16,418,992.
    """
    parts: dict[str, int] = {}
    total, cin, c, size = 0, 3, init_filters, face
    for i in range(blocks):
        k = 5 if i == 0 else 3
        total += k**3 * cin * c + 3 * c
        size = (size + 2 * (k // 2) - k) // 2 + 1
        total += 2 * (27 * c * c + 3 * c)
        cin = c
        if i == blocks - 1:
            total += 27 * c * c + 3 * c
            size = (size - 1) // 3 + 1
        c *= 2
    parts["encoder_convs"] = total
    d, u, dec, mem = size * size * cin, encoder_lstm, decoder_lstm, 2 * encoder_lstm + 256
    parts["encoder_lstm"] = 2 * ((d + u) * 4 * u + 4 * u)
    parts["prenet"] = 80 * 256 + 256 + 256 * 256 + 256
    parts["decoder_lstm"] = ((256 + mem + dec) * 4 * dec + 4 * dec
                             + (2 * dec) * 4 * dec + 4 * dec)
    parts["attention"] = dec * 128 + mem * 128 + 31 * 32 + 32 + 32 * 128 + 128 + 128
    parts["frame_projection"] = (dec + mem) * 160 + 160
    parts["postnet"] = (5 * 80 * 512 + 3 * 512 + 4 * (5 * 512 * 512 + 3 * 512)
                        + 512 * 80 + 80)
    return parts


ORIGINAL = {
    "chem": (96, 24, 5, 384, 1024, 43_623_104),
    "chess": (48, 32, 4, 256, 1024, 31_588_528),
    "dl": (48, 32, 4, 256, 256, 16_418_992),
    "eh": (48, 32, 4, 256, 1024, 31_588_528),
    "hs": (48, 32, 4, 256, 1024, 31_588_528),
}


@pytest.mark.parametrize("speaker", list(ORIGINAL))
def test_parameter_count_is_the_originals(speaker: str) -> None:
    """Each speaker preset has exactly the original's count, part by part (the figures are
    those of :func:`original_parameters`, which the params docs table quotes)."""
    *sizes, total = ORIGINAL[speaker]
    expected = original_parameters(*sizes)
    assert sum(expected.values()) == total
    model = lip2wav.build({"speaker": speaker})  # no size keys: the speaker's
    assert model.parameter_groups() == expected
    assert sum(p.numel() for p in model.parameters()) == total


def test_full_preset_is_chem_as_published() -> None:
    from lipflow.models.model_sizes import model_parameters
    from lipflow.tasks.settings.project import load_params

    train = load_params()["train"]
    counts = model_parameters(train, "lip2wav", "full")
    assert sum(counts.values()) == 43_623_104
    assert sum(model_parameters(train, "lip2wav", "tiny").values()) == 269_960


# --------------------------------------------------------------------------- shapes, masks


def test_encoder_keeps_every_frame() -> None:
    model = lip2wav.build(tiny_cfg("lip2wav")).eval()
    video = _batch()["video"]
    lengths = torch.tensor([75, 75])
    with torch.no_grad():
        enc = model.encoder(video, lengths)
        assert enc.shape == (2, 75, 64)  # BiLSTM 2 x 32, no speaker embedding in tiny
        other = video.clone()
        other[:, -1] = 0
        # a 3D conv reaches 1 frame per layer (2 in the first) and the BiLSTM reads all,
        # so only the forward half of early frames is untouched
        a, b = model.encoder(video, lengths), model.encoder(other, lengths)
    assert torch.allclose(a[:, :60, :32], b[:, :60, :32])
    assert not torch.allclose(a[:, -1], b[:, -1])


@pytest.mark.parametrize("decoder", ["attention", "nonautoregressive"])
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


def test_padded_frames_do_not_change_valid_outputs() -> None:
    """A clip padded to 75 frames gives the valid part exactly what the unpadded clip gives:
    whatever the padding holds (convs see zeros, the BiLSTM stops at the length, the
    attention masks padded steps, the postnet sees zeros past the valid mel)."""
    model = lip2wav.build(tiny_cfg("lip2wav")).eval()
    batch = _batch(b=1, t=75, m=240)
    valid = 50  # 160 mel frames
    short = {"video": batch["video"][:, :valid], "mel": batch["mel"][:, :160]}
    padded = {**batch, "valid_frames": torch.tensor([valid])}
    noisy = {**padded, "video": padded["video"].clone()}
    noisy["video"][:, valid:] = 255 - noisy["video"][:, valid:]
    outs = []
    for b in (short, padded, noisy):
        torch.manual_seed(3)  # the prenet's dropout stays on at inference
        with torch.no_grad():
            out = model.decode(b["video"], mel_frames=b["mel"].shape[1],
                               valid_frames=b.get("valid_frames"))
        outs.append(out)
    for other in outs[1:]:
        torch.testing.assert_close(other.before[:, :160], outs[0].before, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(other.after[:, :160], outs[0].after, atol=1e-5, rtol=1e-5)
        assert float(other.alignments[..., valid:].abs().max()) == 0.0  # never attended


def test_loss_ignores_padded_frames() -> None:
    batch = _batch(b=2)
    batch["valid_frames"] = torch.tensor([75, 30])
    mel = batch["mel"]
    mask = lip2wav.valid_mel_mask(batch, mel, 25.0)
    assert mask[0].sum() == 240 and mask[1].sum() == 96
    pred = mel.clone()
    pred[1, 96:] += 10.0  # wrong only where clip 1 is padding
    assert float(lip2wav.masked_l1(pred, mel, mask)) == 0.0
    assert float(lip2wav.masked_mse(pred, mel, mask)) == 0.0
    pred[1, 95] += 8.0
    assert float(lip2wav.masked_l1(pred, mel, mask)) > 0.0
    # 8^2 on every band of 1 of the 336 valid frames
    assert float(lip2wav.masked_mse(pred, mel, mask)) == pytest.approx(64 / 336)


def test_loss_is_the_originals_sum_of_terms() -> None:
    torch.manual_seed(0)
    model = lip2wav.build(tiny_cfg("lip2wav", stop_token=True, guided_attention=0.0)).train()
    terms = lip2wav.loss_terms(model, _batch())
    assert set(terms) == {"mse_before", "mse_after", "l1_before", "l2", "stop", "loss"}
    parts = sum(v for k, v in terms.items() if k != "loss")
    torch.testing.assert_close(terms["loss"], parts)
    reg = sum(p.square().sum() for p in lip2wav.regularised(model)) / 2 * 1e-7
    torch.testing.assert_close(terms["l2"], reg)
    # the L2 term leaves out LSTMs, biases and the projections, as tacotron.py's add_loss
    covered = {id(p) for p in lip2wav.regularised(model)}
    dec = model.decoder
    assert id(dec.frame_projection.weight) not in covered
    assert id(dec.attention.v) not in covered
    assert not any(id(p) in covered for p in dec.lstm.parameters())
    assert id(dec.attention.memory.weight) in covered
    assert id(model.encoder.convs[0].conv.weight) in covered
    assert id(model.encoder.convs[0].conv.bias) not in covered


def _band(steps: int, t: int, n_valid: int, t_valid: int, shift: float = 0.0) -> torch.Tensor:
    """One-hot alignments (1, steps, t) following the diagonal of the valid region, moved
    by ``shift`` of the clip."""
    a = torch.zeros(1, steps, t)
    for n in range(n_valid):
        k = int(((n + 0.5) / n_valid + shift) * t_valid) % t_valid
        a[0, n, k] = 1.0
    return a


def test_guided_attention_loss_penalises_off_diagonal_mass_of_valid_steps() -> None:
    loss = lip2wav.guided_attention_loss
    mel_valid, lengths = torch.tensor([60]), torch.tensor([30])
    diagonal = _band(14, 40, 12, 30)  # r 5: 12 valid steps; 30 of 40 frames valid
    off = _band(14, 40, 12, 30, shift=0.5)
    on_loss = loss(diagonal, mel_valid, lengths, 5, 0.2)
    off_loss = loss(off, mel_valid, lengths, 5, 0.2)
    assert float(on_loss) < 0.01 and float(off_loss) > 0.8
    # mass on padded steps or padded frames costs nothing
    padded = diagonal.clone()
    padded[0, 12:, 0] = 1.0
    padded[0, :12, 35] = 1.0
    torch.testing.assert_close(loss(padded, mel_valid, lengths, 5, 0.2), on_loss)
    # a diagonal over the whole padded clip is off the valid region's diagonal
    assert float(loss(_band(14, 40, 12, 40), mel_valid, lengths, 5, 0.2)) > 0.05


def test_guided_attention_is_an_opt_in_loss_term() -> None:
    torch.manual_seed(0)
    batch = _batch()
    plain = lip2wav.build(tiny_cfg("lip2wav", guided_attention=0.0)).train()
    assert "guided_attention" not in lip2wav.loss_terms(plain, batch)
    torch.manual_seed(0)
    guided = lip2wav.build(tiny_cfg("lip2wav", guided_attention=2.0)).train()
    terms = lip2wav.loss_terms(guided, batch)
    assert 0.0 < float(terms["guided_attention"].detach()) <= 2.0
    torch.testing.assert_close(terms["loss"], sum(v for k, v in terms.items() if k != "loss"))
    terms["loss"].backward()  # it trains the attention
    assert guided.decoder.attention.query.weight.grad.abs().sum() > 0
    # the published model has no such term
    assert lip2wav.Lip2WavConfig.from_dict({}).guided_attention == 0.0


def test_tiny_preset_leaves_full_teacher_forcing_within_a_cpu_budget() -> None:
    """Regression: tiny kept the published ratio 1 until step 29k, which a CPU-minutes run
    (about 1-3k steps) never leaves, so the decoder never learnt to read its own frames and
    free-running inference was worse than the mean mel. ``full`` keeps the published one."""
    from lipflow.models.registry import model_config
    from lipflow.tasks.settings.project import load_params

    train = load_params()["train"]
    tiny = lip2wav.Lip2WavConfig.from_dict(model_config(train, "lip2wav", size="tiny"))
    full = lip2wav.Lip2WavConfig.from_dict(model_config(train, "lip2wav", size="full"))
    assert lip2wav.teacher_forcing_ratio(1000, tiny) < 0.5
    assert (full.tf_start_decay, full.tf_decay_steps, full.guided_attention,
            full.bn_momentum) == (29000, 130000, 0.0, 0.01)


def test_batch_norm_momentum_is_the_originals_unless_set() -> None:
    """Published: TF's decay 0.99 (momentum 0.01) in every batch norm; ``bn_momentum``
    sets all of them (an opt-in for short runs)."""
    def momenta(model: lip2wav.Lip2Wav) -> set[float]:
        return {m.momentum for m in model.modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)}

    assert momenta(lip2wav.Lip2Wav(lip2wav.Lip2WavConfig.from_dict({}))) == {0.01}
    tiny = lip2wav.build(tiny_cfg("lip2wav"))
    assert momenta(tiny) == {0.01}
    assert momenta(lip2wav.build(tiny_cfg("lip2wav", bn_momentum=0.3))) == {0.3}
    # every batch norm of the encoder and the postnet
    assert len([m for m in tiny.modules()
                if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]) == (
        len(tiny.encoder.convs) + len(tiny.decoder.postnet.bns))


# --------------------------------------------------------------------------- schedules


def test_teacher_forcing_schedule_values() -> None:
    chem = lip2wav.Lip2WavConfig.from_dict({})
    ratio = lip2wav.teacher_forcing_ratio
    assert ratio(0, chem) == 1.0 and ratio(28_999, chem) == 1.0 and ratio(29_000, chem) == 1.0
    assert ratio(29_000 + 65_000, chem) == pytest.approx(0.5)
    assert ratio(29_000 + 32_500, chem) == pytest.approx(0.5 * (1 + 2 ** -0.5))
    assert ratio(159_000, chem) == pytest.approx(0.0, abs=1e-12)
    assert ratio(10**6, chem) == pytest.approx(0.0, abs=1e-12)
    chess = lip2wav.Lip2WavConfig.from_dict({"speaker": "chess"})
    assert ratio(74_999, chess) == 1.0 and ratio(175_000, chess) == pytest.approx(0.5)
    mine = lip2wav.Lip2WavConfig.from_dict({"tf_start_decay": 10, "tf_decay_steps": 20})
    assert ratio(20, mine) == pytest.approx(0.5) and ratio(30, mine) == pytest.approx(0.0)


def test_learning_rate_schedule_values() -> None:
    cfg = lip2wav.Lip2WavConfig.from_dict({"lr": 1e-3})
    lr = lip2wav.learning_rate
    assert lr(0, cfg) == 1e-3 and lr(150_000, cfg) == 1e-3
    assert lr(200_000, cfg) == pytest.approx(5e-4)
    assert lr(175_000, cfg) == pytest.approx(1e-3 * 0.5**0.5)
    assert lr(10**7, cfg) == 1e-5  # clipped at the final rate


def test_teacher_forcing_ratio_changes_training_outputs() -> None:
    model = lip2wav.build(tiny_cfg("lip2wav", dropout=0.0, zoneout=0.0)).train()
    batch = _batch(b=1)

    def run(ratio: float, seed: int) -> torch.Tensor:
        with torch.no_grad():
            return model.decode(batch["video"], target=batch["mel"], teacher_forcing=ratio,
                                generator=torch.Generator().manual_seed(seed)).before

    forced, free = run(1.0, 0), run(0.0, 0)
    assert not torch.allclose(forced, free)
    torch.testing.assert_close(run(0.5, 7), run(0.5, 7))  # same coins under the same seed


def test_zoneout_keeps_units_in_training_and_mixes_at_inference() -> None:
    cell = lip2wav.ZoneoutLSTMCell(4, 1000, 0.1)
    x = torch.randn(2, 4)
    h, c = torch.randn(2, 1000), torch.randn(2, 1000)
    cell.eval()
    out, (h2, c2) = cell(x, (h, c))
    torch.testing.assert_close(h2, 0.9 * out + 0.1 * h)
    cell.train()
    torch.manual_seed(0)
    _, (h3, _) = cell(x, (h, c))
    kept = (h3 == h).float().mean()
    assert 0.07 < float(kept) < 0.13


# --------------------------------------------------------------------------- windows


def _aligned_batch(t: int = 150) -> dict[str, torch.Tensor]:
    """Video frame i holds the value i; mel frame j holds j (80 per second at 25 fps)."""
    video = torch.arange(t).view(1, t, 1, 1, 1).expand(2, t, 2, 2, 3).to(torch.uint8)
    m = t * 80 // 25 + 1
    mel = torch.arange(m).float().view(1, m, 1).expand(2, m, 80).clone()
    return {"video": video, "mel": mel, "valid_frames": torch.tensor([t, 100])}


def test_random_windows_differ_per_step_and_repeat_under_a_seed() -> None:
    batch = _aligned_batch()

    def starts(seed: int, step: int) -> list[int]:
        out = lip2wav.random_windows(batch, 75, 25.0, 80.0, lip2wav.step_generator(seed, step))
        assert out["video"].shape == (2, 75, 2, 2, 3) and out["mel"].shape == (2, 240, 80)
        s = [int(out["video"][i, 0, 0, 0, 0]) for i in range(2)]
        for i, first in enumerate(s):  # the mel span is the window's (floor rule)
            assert int(out["mel"][i, 0, 0]) == first * 80 // 25
            assert torch.equal(out["video"][i, :, 0, 0, 0], torch.arange(first, first + 75)
                               .to(torch.uint8))
        assert 0 <= s[0] <= 75 and 0 <= s[1] <= 25  # inside the valid frames
        assert out["valid_frames"].tolist() == [75, 100 - s[1] if 100 - s[1] < 75 else 75]
        return s

    draws = [starts(0, step) for step in range(12)]
    assert len({tuple(d) for d in draws}) > 6  # afresh every step
    assert draws == [starts(0, step) for step in range(12)]  # reproducible
    assert draws != [starts(1, step) for step in range(12)]  # and the seed matters


def test_clips_no_longer_than_the_window_are_used_whole() -> None:
    batch = _batch()
    out = lip2wav.random_windows(batch, 75, 25.0, 80.0, lip2wav.step_generator(0, 0))
    assert out["video"] is batch["video"] and out["mel"] is batch["mel"]
    assert lip2wav.Lip2WavConfig.from_dict({"fps": 30.0}).window_frames == 90
    assert lip2wav.Lip2WavConfig.from_dict({"fps": 25.0}).window_frames == 75


# --------------------------------------------------------------------------- training


def _ctx(cfg: dict) -> StepContext:
    return StepContext(device=torch.device("cpu"), autocast_enabled=False,
                       autocast_dtype=torch.bfloat16,
                       scaler=torch.amp.GradScaler("cpu", enabled=False), grad_clip=1.0,
                       epoch=1, step=0, model_name="lip2wav", cfg=cfg)


def test_train_step_overfits_a_batch_and_counts_steps() -> None:
    """The tiny model's loss falls on one batch through the model's own ``train_step``
    (random windows, scheduled teacher forcing, the original's LR and loss)."""
    torch.manual_seed(0)
    cfg = tiny_cfg("lip2wav", lr=1e-2, tf_start_decay=4, tf_decay_steps=8)
    model = lip2wav.build(cfg)
    opts = lip2wav.optimisers(model, cfg)
    assert opts["model"].defaults["eps"] == 1e-6
    batch = {**_batch(t=90, m=288), "valid_frames": torch.tensor([90, 80])}
    # a learnable target: a fixed spectral tilt plus noise (the noise cannot be learnt)
    batch["mel"] = torch.linspace(-3, 3, 80).expand(2, 288, 80) + 0.3 * batch["mel"]
    figures, times = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        figures.append(lip2wav.train_step(model, batch, opts, _ctx(cfg)))
        times.append(time.perf_counter() - t0)
    losses = [f["loss"] for f in figures]
    assert max(losses[-3:]) < losses[0] * 0.5, losses
    assert int(model.step) == 10 and "step" in model.state_dict()
    assert [f["teacher_forcing"] for f in figures[:5]] == [1.0] * 5
    assert figures[-1]["teacher_forcing"] < 0.5
    assert min(times) < 1.5, times  # tiny: well under a second a step on one core


def test_nonautoregressive_decoder_still_learns() -> None:
    torch.manual_seed(0)
    model = lip2wav.build(tiny_cfg("lip2wav", decoder="nonautoregressive"))
    optimiser = torch.optim.Adam(model.parameters(), lr=3e-3)
    batch = _batch()
    losses = fit(lip2wav.loss, model, batch, optimiser, 6)
    assert losses[-1] < losses[0]


def test_attention_decoder_free_runs_at_inference() -> None:
    model = lip2wav.build(tiny_cfg("lip2wav")).eval()
    batch = _batch(b=1, t=20, m=64)
    torch.manual_seed(1)
    out1 = lip2wav.predict(model, batch)
    torch.manual_seed(1)
    out2 = lip2wav.predict(model, {**batch, "mel": torch.full_like(batch["mel"], 3.0)})
    assert torch.equal(out1, out2)  # inference never looks at the target values


# --------------------------------------------------------------------------- errors


def test_unknown_decoder_or_speaker_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="decoder"):
        lip2wav.build(tiny_cfg("lip2wav", decoder="diffusion"))
    with pytest.raises(ConfigError, match="speaker"):
        lip2wav.build(tiny_cfg("lip2wav", speaker="nobody"))


def test_a_face_size_other_than_the_presets_is_a_clear_error() -> None:
    model = lip2wav.build(tiny_cfg("lip2wav"))
    with pytest.raises(ConfigError, match="96x96 faces, got 48x48"):
        model(_batch(b=1, t=10, m=32, face=48)["video"])


def test_bad_video_shape_is_reported() -> None:
    model = lip2wav.build(tiny_cfg("lip2wav"))
    with pytest.raises(ValueError, match=r"\(B, T, H, W, 3\)"):
        model(torch.zeros(1, 10, 60, 100, dtype=torch.uint8))


def _encoder_norms(model: lip2wav.Lip2Wav) -> list[torch.nn.BatchNorm3d]:
    return [m for m in model.encoder.modules() if isinstance(m, torch.nn.BatchNorm3d)]


def test_precise_batch_norm_recomputes_the_encoders_statistics() -> None:
    """``recalibrate``: the encoder's running statistics become the plain average over
    ``precise_bn_batches`` batches whatever they were before; weights, the decoder's batch
    norms, momenta and the train/eval flag stay; 0 leaves everything as trained."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    batches = [{"video": torch.randint(0, 256, (2, 75, 96, 96, 3), generator=g,
                                       dtype=torch.uint8),
                "valid_frames": torch.tensor([75, 60])} for _ in range(3)]

    def stats(model: lip2wav.Lip2Wav) -> list[torch.Tensor]:
        return [t.clone() for m in _encoder_norms(model) for t in (m.running_mean,
                                                                    m.running_var)]

    off = lip2wav.build(tiny_cfg("lip2wav", precise_bn_batches=0)).train()
    before = stats(off)
    lip2wav.recalibrate(off, batches, torch.device("cpu"))
    assert all(torch.equal(a, b) for a, b in zip(before, stats(off), strict=True))

    cfg = tiny_cfg("lip2wav", precise_bn_batches=2)
    a = lip2wav.build(cfg).train()
    b = lip2wav.build(cfg).eval()
    b.load_state_dict(a.state_dict())
    for m in _encoder_norms(b):  # b's statistics: far from anything a batch gives
        m.running_mean.fill_(5.0)
        m.running_var.fill_(9.0)
    weights = {k: v.clone() for k, v in a.state_dict().items() if "running" not in k
               and "num_batches" not in k}
    post = [t.clone() for t in a.decoder.state_dict().values()]
    lip2wav.recalibrate(a, batches, torch.device("cpu"))
    lip2wav.recalibrate(b, batches, torch.device("cpu"))
    assert a.training and not b.training
    for x, y in zip(stats(a), stats(b), strict=True):
        torch.testing.assert_close(x, y)
    assert any(not torch.equal(x, y) for x, y in zip(before, stats(a), strict=True))
    assert all(torch.equal(v, a.state_dict()[k]) for k, v in weights.items())
    assert all(torch.equal(x, y) for x, y in zip(post, a.decoder.state_dict().values(),
                                                 strict=True))
    assert {m.momentum for m in _encoder_norms(a)} == {a.cfg.bn_momentum}
    # the third batch was not read: two batches give the same as three minus the last
    c = lip2wav.build(cfg).train()
    c.load_state_dict(a.state_dict())
    lip2wav.recalibrate(c, batches[:2], torch.device("cpu"))
    for x, y in zip(stats(a), stats(c), strict=True):
        torch.testing.assert_close(x, y)


def test_tiny_preset_recalibrates_and_full_does_not() -> None:
    assert tiny_cfg("lip2wav")["precise_bn_batches"] == 100
    from lipflow.models.registry import model_config
    from lipflow.tasks.settings.project import load_params

    full = model_config(load_params()["train"], "lip2wav", size="full", fps=30.0)
    assert lip2wav.Lip2WavConfig.from_dict(full).precise_bn_batches == 0
