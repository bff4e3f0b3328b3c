"""Checkpoint files: what ``last.pt`` and ``best.pt`` hold, and reading them back.

``last.pt`` is everything a resumed run needs to repeat an uninterrupted one: model
state, every optimiser's and scheduler's state by the name its hook gave it
(``optimisers``, ``schedulers``), the grad-scaler state, the epoch, the RNG state of
Python, NumPy and torch, the history so far, the config, and the criterion ``best.pt``
is chosen by with its best value so far (``best_by``, ``best_value``). ``best.pt`` holds
only the weights (with model name, config, epoch, ``best_by`` and ``best_value``) of the
best epoch; :func:`lipflow.models.evaluation.load_model` rebuilds a model from either.
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
              epoch: int, best_by: str | None = None, best_value: float | None = None) -> None:
    """Write ``best.pt``: the weights of ``epoch``, and the criterion and value that chose
    them (``best_by`` ``"stoi"``: highest val STOI; ``"loss"``: lowest val loss)."""
    save_checkpoint(
        {"model_name": model_name, "model": model.state_dict(), "cfg": cfg, "epoch": epoch,
         "best_by": best_by, "best_value": best_value},
        path,
    )


def save_last(
    path: Path,
    model_name: str,
    model: torch.nn.Module,
    optimisers: Mapping[str, torch.optim.Optimizer],
    schedulers: Mapping[str, Any],
    scaler: torch.amp.GradScaler,
    epoch: int,
    history: list[dict[str, float]],
    cfg: Mapping[str, Any],
    best_by: str,
    best_value: float | None,
) -> None:
    """Write ``last.pt``: the whole training state after ``epoch`` (RNG state included)."""
    save_checkpoint(
        {
            "model_name": model_name,
            "model": model.state_dict(),
            "optimisers": {name: opt.state_dict() for name, opt in optimisers.items()},
            "schedulers": {name: sched.state_dict() for name, sched in schedulers.items()},
            "scaler": scaler.state_dict(),
            "epoch": epoch,
            "rng": rng_state(),
            "history": history,
            "cfg": cfg,
            "best_by": best_by,
            "best_value": best_value,
        },
        path,
    )


def _same_names(path: Path, what: str, saved: Mapping[str, Any], built: Mapping[str, Any]) -> None:
    if set(saved) != set(built):
        raise TrainingError(
            f"{path} holds {what} {sorted(saved)} but the model now makes {sorted(built)}; "
            f"remove it or pass resume=False"
        )


def resume_last(
    path: Path,
    model_name: str,
    model: torch.nn.Module,
    optimisers: Mapping[str, torch.optim.Optimizer],
    schedulers: Mapping[str, Any],
    scaler: torch.amp.GradScaler,
    device: torch.device,
    best_by: str,
) -> tuple[list[dict[str, float]], float | None, int]:
    """Load ``last.pt`` into the model, optimisers, schedulers, scaler and RNGs.

    Returns ``(history, best value so far or None, next epoch)``. A checkpoint of another
    model, of the same model with another architecture or other optimisers / schedulers,
    or one whose ``best.pt`` was chosen by another criterion than ``best_by`` raises
    :class:`TrainingError`. A ``last.pt`` from before named optimisers (one
    ``"optimiser"``, best by loss) is read as optimiser ``"model"``.
    """
    ckpt = read_checkpoint(path, model_name, device)
    saved_opts = ckpt.get("optimisers")
    if saved_opts is None and "optimiser" in ckpt:
        saved_opts = {"model": ckpt["optimiser"]}
    saved_opts = saved_opts or {}
    saved_scheds = ckpt.get("schedulers") or {}
    _same_names(path, "optimisers", saved_opts, optimisers)
    _same_names(path, "schedulers", saved_scheds, schedulers)
    saved_by = ckpt.get("best_by", "loss")
    if saved_by != best_by:
        raise TrainingError(
            f"{path} chose best.pt by val {saved_by}, but best_by is now {best_by}; set "
            f"train.{model_name}.best_by: {saved_by}, or remove {path.parent} to start over"
        )
    try:
        model.load_state_dict(ckpt["model"])
        for name, opt in optimisers.items():
            opt.load_state_dict(saved_opts[name])
    except (RuntimeError, ValueError) as err:
        raise TrainingError(
            f"{path} was trained with another architecture; remove it or pass resume=False "
            f"({str(err).splitlines()[0]})"
        ) from err
    for name, sched in schedulers.items():
        sched.load_state_dict(saved_scheds[name])
    scaler.load_state_dict(ckpt["scaler"])
    set_rng_state(ckpt["rng"])
    if "best_value" in ckpt:
        best = ckpt["best_value"]
    else:  # before best_by: the best val loss, inf while none was finite
        old = float(ckpt.get("best_val", math.inf))
        best = old if math.isfinite(old) else None
    return list(ckpt["history"]), (None if best is None else float(best)), int(ckpt["epoch"]) + 1
