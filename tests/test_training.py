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

from lipflow.models import registry, runtime, training
from lipflow.tasks.common.errors import ConfigError
from tests.support.seed_models import fake_clip, one_thread, tiny_cfg  # noqa: F401


def _loader(kind: str, n: int, batch_size: int = 2, frames: int = 25, shuffle=False):
    items = [fake_clip(i, frames=frames, kind=kind, mouth_hw=(30, 50)) for i in range(n)]
    return DataLoader(items, batch_size=batch_size, shuffle=shuffle)


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open() as handle:
        return list(csv.DictReader(handle))


def test_registry_and_device() -> None:
    assert set(registry.MODELS) == {"lip2wav", "avsync", "gabor"}
    assert runtime.select_device().type in ("cpu", "cuda")
    assert runtime.select_device("cpu").type == "cpu"
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
    loader = _loader(kind, n=2, batch_size=2)
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
    )
    first = training.train(
        "gabor",
        train_loader,
        val_loader,
        {**cfg, "epochs": 2},
        tmp_path / "b",
        plots_path=tmp_path / "plots/b.csv",
    )
    assert first.epochs_completed == 2
    ckpt = torch.load(first.checkpoint, weights_only=False)
    assert ckpt["epoch"] == 2 and "optimiser" in ckpt and "rng" in ckpt
    resumed = training.train(
        "gabor",
        train_loader,
        val_loader,
        {**cfg, "epochs": 3},
        tmp_path / "b",
        plots_path=tmp_path / "plots/b.csv",
    )
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3]
    for a, b in zip(straight.history, resumed.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-5)
        assert a["val_loss"] == pytest.approx(b["val_loss"], rel=1e-5)
    rows = _read_csv(tmp_path / "plots/b.csv")
    assert [r["epoch"] for r in rows] == ["1", "2", "3"]
    assert set(rows[0]) == set(training.HISTORY_FIELDS)
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


