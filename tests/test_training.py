"""The model-agnostic trainer on a tiny in-memory dataset of random clips
(real GRID speech as the audio): loss goes down, checkpoints resume. Evaluation has its
own tests (tests/test_evaluation.py)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lipflow.models import registry, runtime, speech, training
from lipflow.models.loaders import part_loader
from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.settings.project import load_params, section
from tests.support import pair_nets
from tests.support.seed_models import fake_clip, one_thread, tiny_cfg  # noqa: F401

#: features.mel with 4 Griffin-Lim rounds: the val STOI of every epoch in seconds, not minutes
FAST_MEL = {**section(load_params(), "features.mel"), "griffin_lim_iters": 4}


def _loader(kind: str, n: int, batch_size: int = 2, frames: int = 25, shuffle=False,
            mouth_hw: tuple[int, int] = (30, 50)):
    items = [fake_clip(i, frames=frames, kind=kind, mouth_hw=mouth_hw) for i in range(n)]
    return DataLoader(items, batch_size=batch_size, shuffle=shuffle)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_registry_and_device() -> None:
    assert {"lip2wav", "avsync", "gabor"} <= set(registry.MODELS)
    assert runtime.select_device().type in ("cpu", "cuda")
    assert runtime.select_device("cpu").type == "cpu"
    with pytest.raises(runtime.TrainingError, match="unknown device 'gpu0'"):
        runtime.select_device("gpu0")
    if not torch.cuda.is_available():
        with pytest.raises(runtime.TrainingError, match="sees no CUDA GPU"):
            runtime.select_device("cuda")
    with pytest.raises(ConfigError, match="unknown model"):
        registry.spec("wavenet")


def test_model_config_presets_and_overrides() -> None:
    train = {
        "seed": 3,
        "size": "tiny",
        "lip2wav": {
            "lr": 0.5,
            "tiny": {"epochs": 2, "lr": 0.1, "hidden": 8},
            "full": {"epochs": 9},
        },
    }
    cfg = registry.model_config(train, "lip2wav", fps=30.0)
    assert cfg["lr"] == 0.5 and cfg["hidden"] == 8 and cfg["epochs"] == 2  # direct key wins
    assert cfg["seed"] == 3 and cfg["fps"] == 30.0 and cfg["size"] == "tiny"
    assert registry.model_config(train, "lip2wav", size="full")["epochs"] == 9
    with pytest.raises(ConfigError, match="train.lip2wav.huge"):
        registry.model_config(train, "lip2wav", size="huge")


def test_seed_everything_repeats_draws() -> None:
    runtime.seed_everything(7)
    a = (torch.rand(3), np.random.rand(3))
    runtime.seed_everything(7)
    b = (torch.rand(3), np.random.rand(3))
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1])


@pytest.mark.parametrize("model_name", ["lip2wav", "gabor", "avsync"])
def test_loss_decreases_when_overfitting_one_batch(model_name: str, tmp_path: Path) -> None:
    kind = "face" if model_name == "lip2wav" else "mouth"
    # avsync takes 60x100 (cnn3d) crops; its tiny preset reads their central 60x96
    loader = _loader(kind, n=2, batch_size=2,
                     mouth_hw=(60, 100) if model_name == "avsync" else (30, 50))
    cfg = tiny_cfg(model_name, epochs=8, lr=3e-3, seed=0)
    result = training.train(model_name, loader, None, cfg, tmp_path, progress=False)
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 8
    assert np.mean(losses[-3:]) < np.mean(losses[:3])


def test_checkpoint_resume_continues_and_matches_an_uninterrupted_run(tmp_path: Path) -> None:
    train_loader = _loader("mouth", n=4, batch_size=2, shuffle=True)
    val_loader = _loader("mouth", n=2, batch_size=2)
    cfg = tiny_cfg("gabor", seed=1)
    straight = training.train(
        "gabor",
        train_loader,
        val_loader,
        {**cfg, "epochs": 3},
        tmp_path / "a",
        plots_path=tmp_path / "plots/a.csv",
        mel_params=FAST_MEL,
    )
    first = training.train(
        "gabor",
        train_loader,
        val_loader,
        {**cfg, "epochs": 2},
        tmp_path / "b",
        plots_path=tmp_path / "plots/b.csv",
        mel_params=FAST_MEL,
    )
    assert first.epochs_completed == 2
    ckpt = torch.load(first.checkpoint, weights_only=False)
    assert ckpt["epoch"] == 2 and set(ckpt["optimisers"]) == {"model"} and "rng" in ckpt
    assert ckpt["schedulers"] == {} and ckpt["best_by"] == "stoi"
    resumed = training.train(
        "gabor",
        train_loader,
        val_loader,
        {**cfg, "epochs": 3},
        tmp_path / "b",
        plots_path=tmp_path / "plots/b.csv",
        mel_params=FAST_MEL,
    )
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    rows = _read_csv(tmp_path / "plots/b.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert list(rows[0]) == list(training.HISTORY_FIELDS)  # the one-loss step adds nothing
    assert all(0.0 < float(r["val_stoi"]) < 1.0 for r in rows)
    assert all(float(r["val_loss"]) > 0 for r in rows)
    assert len(json.loads((tmp_path / "plots/b.json").read_text())) == 3
    assert resumed.best_checkpoint is not None and resumed.best_checkpoint.is_file()
    # nothing left to do: a rerun trains no epoch and keeps the history
    again = training.train("gabor", train_loader, val_loader, {**cfg, "epochs": 3}, tmp_path / "b")
    assert again.epochs_completed == 3


def test_resume_with_another_model_is_a_clear_error(tmp_path: Path) -> None:
    loader = _loader("mouth", n=2)
    training.train("gabor", loader, None, tiny_cfg("gabor", epochs=1), tmp_path)
    with pytest.raises(runtime.TrainingError, match="'gabor' model"):
        training.train("avsync", loader, None, tiny_cfg("avsync", epochs=1), tmp_path)
    with pytest.raises(runtime.TrainingError, match="another architecture"):
        training.train("gabor", loader, None, tiny_cfg("gabor", epochs=2, hidden=16), tmp_path)




# --- exact resume ----------------------------------------------------------------------


def _clip(i: int, frames: int = 25, valid: int | None = None) -> dict:
    """A mouth clip whose audio is as long as its video (640 samples a frame), as in a store."""
    item = fake_clip(i, frames=frames, kind="mouth", mouth_hw=(30, 50))
    item["wav"] = item["wav"][: frames * 640].clone()
    item["valid_frames"] = torch.tensor(frames if valid is None else valid)
    return item


def _loaders(seed: int) -> tuple[DataLoader, DataLoader]:
    """Train and val loaders as lipflow's split loaders make them (own seeded generator)."""
    train = part_loader([_clip(i) for i in range(6)], "train", batch_size=2, seed=seed)
    val = part_loader([_clip(10 + i) for i in range(3)], "val", batch_size=2, seed=seed)
    return train, val


def _assert_same_run(a: Path, b: Path) -> None:
    """Two runs' checkpoints hold bit-identical weights, optimiser and scheduler states."""
    x, y = (torch.load(p / "last.pt", weights_only=False) for p in (a, b))
    assert x["model"].keys() == y["model"].keys()
    for key in x["model"]:
        assert torch.equal(x["model"][key], y["model"][key]), key
    assert x["optimisers"].keys() == y["optimisers"].keys()
    for name, state in x["optimisers"].items():
        other = y["optimisers"][name]["state"]
        for idx, slots in state["state"].items():
            for slot, value in slots.items():
                assert torch.equal(torch.as_tensor(value), torch.as_tensor(other[idx][slot]))
    assert x["schedulers"] == y["schedulers"]
    assert torch.equal(x["rng"]["torch"], y["rng"]["torch"])


def _same_history(a: list[dict], b: list[dict]) -> None:
    assert len(a) == len(b)
    for row_a, row_b in zip(a, b, strict=True):
        assert {k: v for k, v in row_a.items() if k != "seconds"} == {
            k: v for k, v in row_b.items() if k != "seconds"}


def test_seed_epoch_makes_the_train_order_a_function_of_seed_and_epoch() -> None:
    loader = part_loader(list(range(32)), "train", batch_size=32, seed=5)

    def order(seed: int, epoch: int) -> list[int]:
        training.seed_epoch(loader, seed, epoch)
        return next(iter(loader)).tolist()

    third = order(5, 3)
    for _ in range(3):
        list(loader)  # epochs run on without a reseed: the generator moves on
    assert order(5, 3) == third  # as a run resumed at epoch 3 sees it
    assert order(5, 1) != third and order(6, 3) != third
    assert sorted(third) == list(range(32))


def test_two_then_two_epochs_equal_four_with_the_split_loaders(tmp_path: Path) -> None:
    # on CPU: bit-identical weights are the claim; some CUDA backward kernels are not
    cfg = tiny_cfg("gabor", seed=2, epochs=4, val_stoi_clips=2, device="cpu")
    straight = training.train("gabor", *_loaders(2), cfg, tmp_path / "a", mel_params=FAST_MEL)
    training.train("gabor", *_loaders(2), {**cfg, "epochs": 2}, tmp_path / "b",
                   mel_params=FAST_MEL)
    resumed = training.train("gabor", *_loaders(2), cfg, tmp_path / "b", mel_params=FAST_MEL)
    _assert_same_run(tmp_path / "a", tmp_path / "b")
    _same_history(straight.history, resumed.history)
    assert len({row["train_loss"] for row in straight.history}) == 4
    best = torch.load(resumed.best_checkpoint, weights_only=False)
    stois = [row["val_stoi"] for row in resumed.history]
    assert best["best_by"] == "stoi" and best["best_value"] == max(stois)
    assert best["epoch"] == 1 + int(np.argmax(stois))


def test_a_two_optimiser_model_resumes_exactly(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.MODELS, "pair", pair_nets.pair_spec())
    cfg = {**registry.defaults("pair"), "lr": 1e-3, "epochs": 4, "seed": 3, "grad_clip": 0.0,
           "val_stoi_clips": 2, "device": "cpu"}
    straight = training.train("pair", *_loaders(3), cfg, tmp_path / "a", mel_params=FAST_MEL)
    training.train("pair", *_loaders(3), {**cfg, "epochs": 2}, tmp_path / "b",
                   mel_params=FAST_MEL)
    resumed = training.train("pair", *_loaders(3), cfg, tmp_path / "b", mel_params=FAST_MEL)
    _assert_same_run(tmp_path / "a", tmp_path / "b")
    _same_history(straight.history, resumed.history)
    last = torch.load(tmp_path / "b" / "last.pt", weights_only=False)
    assert set(last["optimisers"]) == set(last["schedulers"]) == {"generator", "discriminator"}
    assert last["schedulers"]["generator"]["last_epoch"] == 4
    rows = resumed.history
    # the lr each epoch ran with: StepLR halves the generator's, MultiStepLR cuts the other's
    assert [r["lr_generator"] for r in rows] == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])
    assert [r["lr_discriminator"] for r in rows] == pytest.approx([2e-3, 2e-3, 2e-4, 2e-4])
    assert [r["lr"] for r in rows] == [r["lr_generator"] for r in rows]
    csv_rows = _read_csv(tmp_path / "b" / "train.csv")
    assert list(csv_rows[0])[: len(training.HISTORY_FIELDS)] == list(training.HISTORY_FIELDS)
    assert {"train_d_loss", "train_rec", "lr_generator", "lr_discriminator"} <= set(csv_rows[0])
    assert all(float(r["train_d_loss"]) > 0 for r in csv_rows)
    # the per-epoch figure is the clip-weighted mean of what train_step returned
    assert all(r["train_rec"] > 0 and r["train_loss"] > 10 * r["train_rec"] for r in rows)
    # the val STOI went through the module's own to_waveform, 2 clips an epoch
    pair_nets.WAVEFORM_CALLS.clear()
    training.train("pair", *_loaders(3), {**cfg, "epochs": 1}, tmp_path / "c",
                   mel_params=FAST_MEL)
    assert pair_nets.WAVEFORM_CALLS == [(80, 80), (80, 80)]


def test_resume_with_other_optimisers_or_criterion_is_a_clear_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    loader = _loader("mouth", n=2)
    training.train("gabor", loader, None, tiny_cfg("gabor", epochs=1), tmp_path)
    with pytest.raises(runtime.TrainingError, match="chose best.pt by val stoi"):
        training.train("gabor", loader, None, tiny_cfg("gabor", epochs=2, best_by="loss"),
                       tmp_path)
    monkeypatch.setitem(registry.MODELS, "pair", pair_nets.pair_spec())
    cfg = {**registry.defaults("pair"), "epochs": 1, "val_stoi_clips": 0, "best_by": "loss"}
    training.train("pair", loader, None, cfg, tmp_path / "pair")
    monkeypatch.setattr(pair_nets, "optimisers", lambda model, cfg: {
        "model": torch.optim.Adam(model.parameters())})
    monkeypatch.setattr(pair_nets, "schedulers", lambda opts, cfg: {})
    with pytest.raises(runtime.TrainingError,
                       match=r"optimisers \['discriminator', 'generator'\] .* \['model'\]"):
        training.train("pair", loader, None, {**cfg, "epochs": 2}, tmp_path / "pair")


# --- best checkpoint -------------------------------------------------------------------


def test_best_by_loss_and_the_stoi_cap_are_configurable(tmp_path: Path) -> None:
    train_loader, val_loader = _loaders(0)
    cfg = tiny_cfg("gabor", seed=0, epochs=3, lr=3e-3, best_by="loss", val_stoi_clips=0)
    result = training.train("gabor", train_loader, val_loader, cfg, tmp_path)
    losses = [row["val_loss"] for row in result.history]
    best = torch.load(result.best_checkpoint, weights_only=False)
    assert best["best_by"] == "loss" and best["best_value"] == min(losses)
    assert best["epoch"] == 1 + int(np.argmin(losses))
    assert all(np.isnan(row["val_stoi"]) for row in result.history)  # no STOI asked for
    assert {r["val_stoi"] for r in _read_csv(tmp_path / "train.csv")} == {""}


def test_sync_model_picks_best_by_loss_and_best_by_is_checked(tmp_path: Path) -> None:
    assert registry.model_config(load_params()["train"], "avsync")["best_by"] == "loss"
    assert registry.model_config(load_params()["train"], "gabor")["best_by"] == "stoi"
    loader = _loader("mouth", n=4, batch_size=4, mouth_hw=(60, 100))
    with pytest.raises(ConfigError, match="avsync makes no speech"):
        training.train("avsync", loader, loader, tiny_cfg("avsync", best_by="stoi"), tmp_path)
    with pytest.raises(ConfigError, match="best_by must be one of"):
        training.train("gabor", loader, loader, tiny_cfg("gabor", best_by="pesq"), tmp_path)
    with pytest.raises(ConfigError, match="val_stoi_clips is 0"):
        training.train("gabor", loader, loader, tiny_cfg("gabor", val_stoi_clips=0), tmp_path)
    with pytest.raises(ConfigError, match="val_stoi_clips must be an int"):
        training.train("gabor", loader, loader, tiny_cfg("gabor", val_stoi_clips=-1), tmp_path)
    assert not (tmp_path / "last.pt").exists()
    result = training.train("avsync", loader, loader, tiny_cfg("avsync", epochs=1, folds=2),
                            tmp_path)
    best = torch.load(result.best_checkpoint, weights_only=False)
    assert best["best_by"] == "loss" and best["best_value"] == result.history[0]["val_loss"]
    assert np.isnan(result.history[0]["val_stoi"])


# --- waveforms -------------------------------------------------------------------------


def test_model_waveforms_are_cut_to_each_clips_valid_samples(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(registry.MODELS, "pair", pair_nets.pair_spec())
    spec_ = registry.spec("pair")
    model = spec_.build({}).eval()
    batch = torch.utils.data.default_collate([_clip(0, valid=25), _clip(1, valid=10)])
    pair_nets.WAVEFORM_CALLS.clear()
    waves = speech.model_waveforms(spec_, model, batch, FAST_MEL)
    refs = speech.reference_waveforms(batch)
    assert [len(r) for r in refs] == [16000, 6400]  # 640 samples a valid frame
    # Griffin-Lim gives (rows - 1) hops, within the valid part (longer would be cut)
    assert [len(w) for w in waves] == [(80 - 1) * 200, (32 - 1) * 200]
    assert pair_nets.WAVEFORM_CALLS == [(80, 80), (32, 80)]  # rows of the valid frames only
    expected = batch["wav"][1, :6400].numpy().astype(np.float64) / 32768.0
    assert np.array_equal(refs[1], expected) and np.abs(refs[0]).max() <= 1.0
    # val STOI scores only the first clips asked for, across batches
    pair_nets.WAVEFORM_CALLS.clear()
    loader = DataLoader([_clip(i) for i in range(5)], batch_size=2)
    value = speech.val_stoi(spec_, model, loader, FAST_MEL, max_clips=3)
    assert len(pair_nets.WAVEFORM_CALLS) == 3 and 0.0 < value < 1.0
