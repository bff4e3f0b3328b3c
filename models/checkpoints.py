"""Checkpoint files: what ``last.pt`` and ``best.pt`` hold, and reading them back.

``last.pt`` is everything a resumed run needs to repeat an uninterrupted one: model,
optimiser and grad-scaler state, the epoch, the RNG state of Python, NumPy and torch,
the history so far, the config and the best validation loss. ``best.pt`` holds only the
weights (with model name, config and epoch) of the epoch with the lowest validation
loss; :func:`lipflow.models.evaluation.load_model` rebuilds a model from either.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lipflow.models.runtime import TrainingError
from lipflow.tasks.common.atomic import atomic_path

LAST_NAME = "last.pt"
BEST_NAME = "best.pt"


def rng_state() -> dict[str, Any]:
    """The state of every random number generator training draws from."""
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(obj: dict[str, Any], path: Path) -> None:
    """``torch.save`` through a temp file and a rename: never a half-written checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def read_checkpoint(path: Path, model_name: str, device: torch.device) -> dict[str, Any]:
    """A checkpoint's contents, checked to hold a ``model_name`` model."""
    ckpt = torch.load(path, map_location=device, weights_only=False)
    if ckpt.get("model_name") != model_name:
        raise TrainingError(
            f"{path} holds a {ckpt.get('model_name')!r} model, not {model_name!r}"
        )
    return ckpt


def save_best(path: Path, model_name: str, model: torch.nn.Module, cfg: Mapping[str, Any],
              epoch: int) -> None:
    """Write ``best.pt``: the weights of ``epoch``."""
    save_checkpoint(
        {"model_name": model_name, "model": model.state_dict(), "cfg": cfg, "epoch": epoch},
        path,
    )


def save_last(
    path: Path,
    model_name: str,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    epoch: int,
    history: list[dict[str, float]],
    cfg: Mapping[str, Any],
    best_val: float,
) -> None:
    """Write ``last.pt``: the whole training state after ``epoch`` (RNG state included)."""
    save_checkpoint(
        {
            "model_name": model_name,
            "model": model.state_dict(),
            "optimiser": optimiser.state_dict(),
            "scaler": scaler.state_dict(),
            "epoch": epoch,
            "rng": rng_state(),
            "history": history,
            "cfg": cfg,
            "best_val": best_val,
        },
        path,
    )


def resume_last(
    path: Path,
    model_name: str,
    model: torch.nn.Module,
    optimiser: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    device: torch.device,
) -> tuple[list[dict[str, float]], float, int]:
    """Load ``last.pt`` into the model, optimiser, scaler and RNGs.

    Returns ``(history, best validation loss, next epoch)``. A checkpoint of another
    model, or of the same model with another architecture, raises :class:`TrainingError`.
    """
    ckpt = read_checkpoint(path, model_name, device)
    try:
        model.load_state_dict(ckpt["model"])
        optimiser.load_state_dict(ckpt["optimiser"])
    except (RuntimeError, ValueError) as err:
        raise TrainingError(
            f"{path} was trained with another architecture; remove it or pass resume=False "
            f"({str(err).splitlines()[0]})"
        ) from err
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    return list(ckpt["history"]), float(ckpt.get("best_val", math.inf)), int(ckpt["epoch"]) + 1
