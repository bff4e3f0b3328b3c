"""Model-agnostic training: the epoch loop every seed model is trained with.

:func:`train` talks only to the registry interface (:mod:`lipflow.models.registry`:
``build``, ``loss``), so the flows and DVC stages are the same for every model. Each
epoch ends with a checkpoint (:mod:`lipflow.models.checkpoints`), so an interrupted run
resumes where it stopped and repeats an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from lipflow.models.checkpoints import BEST_NAME, LAST_NAME, resume_last, save_best, save_last
from lipflow.models.outputs import json_safe
from lipflow.models.registry import COMMON_DEFAULTS, ModelSpec, spec
from lipflow.models.runtime import (
    TrainingError,
    autocast_mode,
    batch_size,
    seed_everything,
    select_device,
    to_device,
)
from lipflow.tasks.common.atomic import write_bytes_atomic
from lipflow.tasks.common.progress import show_progress


@dataclass
class TrainResult:
    """Where the weights went and how the loss went, epoch by epoch."""

    model_name: str
    checkpoint: Path
    best_checkpoint: Path | None
    epochs_completed: int
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"


HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "seconds", "lr")


def _write_history(history: list[dict[str, float]], plots_path: Path) -> None:
    """The per-epoch rows as CSV at ``plots_path`` (a DVC plot) and JSON beside it."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if _nan(row.get(k)) else row.get(k)) for k in HISTORY_FIELDS})
    write_bytes_atomic(plots_path, buf.getvalue().encode())
    write_bytes_atomic(
        plots_path.with_suffix(".json"), json.dumps(json_safe(history), indent=1).encode()
    )


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _mean_loss(spec_: ModelSpec, model, loader, device, autocast) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast[1], enabled=autocast[0]):
                value = spec_.loss(model, batch)
            n = batch_size(batch)
            total += float(value) * n
            count += n
    return total / count if count else float("nan")


def _is_empty(loader: Iterable[Any]) -> bool:
    """Whether a loader yields nothing, by its length when it has one (no batch is read)."""
    try:
        return len(loader) == 0  # type: ignore[arg-type]
    except TypeError:
        return next(iter(loader), None) is None


def train(
    model_name: str,
    train_loader: Iterable[dict[str, torch.Tensor]],
    val_loader: Iterable[dict[str, torch.Tensor]] | None,
    cfg: Mapping[str, Any],
    out_dir: Path,
    resume: bool = True,
    plots_path: Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model_name`` for ``cfg['epochs']`` epochs, checkpointing every epoch.

    Writes ``out_dir/last.pt`` (model, optimiser, scaler, epoch, RNG state, history,
    config) after each epoch and ``out_dir/best.pt`` (weights) when the validation loss
    improves; the per-epoch rows go to ``plots_path`` (CSV, default ``out_dir/train.csv``)
    and a JSON twin. With ``resume`` and an existing ``last.pt``, training continues at the
    next epoch with the RNG state it stopped with, so a resumed run repeats an
    uninterrupted one. ``progress`` shows a tqdm bar (default: when stderr is a terminal).
    """
    spec_ = spec(model_name)
    if val_loader is not None and _is_empty(val_loader):
        raise TrainingError(
            f"the validation part of the split holds no clips for {model_name}: best.pt, "
            "which lipflow evaluate scores, is only written when the validation loss improves; "
            "give train.split a val part with clips"
        )
    cfg = {**COMMON_DEFAULTS, **dict(cfg)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots_path = Path(plots_path) if plots_path else out_dir / "train.csv"
    last, best_path = out_dir / LAST_NAME, out_dir / BEST_NAME
    if int(cfg["cpu_threads"]) > 0:
        torch.set_num_threads(int(cfg["cpu_threads"]))
    device = select_device(cfg.get("device"))
    seed_everything(int(cfg["seed"]))
    model = spec_.build(cfg).to(device)
    optimiser = torch.optim.Adam(
        model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
    )
    autocast = autocast_mode(device, cfg["amp"])
    scaler = torch.amp.GradScaler(device.type, enabled=autocast[0] and autocast[1] == torch.float16)
    history: list[dict[str, float]] = []
    start = 1
    best_val = math.inf
    if resume and last.is_file():
        history, best_val, start = resume_last(last, model_name, model, optimiser, scaler, device)
    show = show_progress(progress)
    for epoch in range(start, int(cfg["epochs"]) + 1):
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        batches = train_loader
        if show:
            from tqdm import tqdm

            batches = tqdm(train_loader, desc=f"{model_name} epoch {epoch}", leave=False)
        for step, batch in enumerate(batches):
            batch = to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast[1], enabled=autocast[0]):
                value = spec_.loss(model, batch)
            if not torch.isfinite(value):
                raise TrainingError(
                    f"{model_name} loss became {float(value)} at epoch {epoch} step {step}; "
                    f"lower train.{model_name}.lr (now {cfg['lr']})"
                )
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(value).backward()
            if cfg["grad_clip"]:
                scaler.unscale_(optimiser)
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
            scaler.step(optimiser)
            scaler.update()
            n = batch_size(batch)
            total += float(value.detach()) * n
            count += n
        if count == 0:
            raise TrainingError(f"the training data for {model_name} yielded no batches")
        val = _mean_loss(spec_, model, val_loader, device, autocast) if val_loader else float("nan")
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / count,
                "val_loss": val,
                "seconds": time.perf_counter() - t0,
                "lr": float(cfg["lr"]),
            }
        )
        if math.isfinite(val) and val < best_val:
            best_val = val
            save_best(best_path, model_name, model, cfg, epoch)
        save_last(last, model_name, model, optimiser, scaler, epoch, history, cfg, best_val)
        _write_history(history, plots_path)
    if not history:
        _write_history(history, plots_path)
    return TrainResult(
        model_name,
        last,
        best_path if best_path.is_file() else None,
        len(history),
        history,
        str(device),
    )
