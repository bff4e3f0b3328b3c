"""Model-agnostic training: the epoch loop every model is trained with, a GAN included.

:func:`train` talks only to the registry interface (:mod:`lipflow.models.registry`:
``build``, ``loss``, ``predict`` and the optional hooks ``optimisers``, ``schedulers``,
``train_step``, ``to_waveform``; the step contract is :mod:`lipflow.models.training_step`),
so the flows and DVC stages are the same for every model. Each epoch ends with a
checkpoint (:mod:`lipflow.models.checkpoints`), so an interrupted run resumes where it
stopped and repeats an uninterrupted one exactly: weights, optimiser, scheduler and
scaler states and the RNGs are restored, and the training order is a function of
``(seed, epoch)`` alone (:func:`seed_epoch`), not of how many epochs this process ran.
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

import numpy as np
import torch

from lipflow.models.checkpoints import BEST_NAME, LAST_NAME, resume_last, save_best, save_last
from lipflow.models.outputs import json_safe
from lipflow.models.registry import ModelSpec, best_criterion, defaults, spec
from lipflow.models.runtime import (
    TrainingError,
    autocast_mode,
    batch_size,
    seed_everything,
    select_device,
    to_device,
)
from lipflow.models.training_step import StepContext
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


#: The CSV columns every model has; a model's own step figures (``train_<key>`` for each
#: key ``train_step`` returns besides ``loss``) and, with several optimisers, each one's
#: learning rate (``lr_<name>``) follow them, in the order they first appear.
HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "val_stoi", "seconds", "lr")


def _write_history(history: list[dict[str, float]], plots_path: Path) -> None:
    """The per-epoch rows as CSV at ``plots_path`` (a DVC plot) and JSON beside it."""
    fields = list(HISTORY_FIELDS)
    fields += [k for k in dict.fromkeys(k for row in history for k in row) if k not in fields]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if _nan(row.get(k)) else row.get(k)) for k in fields})
    write_bytes_atomic(plots_path, buf.getvalue().encode())
    write_bytes_atomic(
        plots_path.with_suffix(".json"), json.dumps(json_safe(history), indent=1).encode()
    )


def _nan(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _is_empty(loader: Iterable[Any]) -> bool:
    """Whether a loader yields nothing, by its length when it has one (no batch is read)."""
    try:
        return len(loader) == 0  # type: ignore[arg-type]
    except TypeError:
        return next(iter(loader), None) is None


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of one epoch's training order: distinct for every ``(seed, epoch)``."""
    state = np.random.SeedSequence([int(seed) % 2**64, int(epoch)]).generate_state(2)
    return int(state[0]) << 32 | int(state[1])


def seed_epoch(loader: Iterable[Any], seed: int, epoch: int) -> None:
    """Make ``loader``'s order for ``epoch`` a function of ``(seed, epoch)``.

    A DataLoader's shuffling (and its workers' base seed) draws from its ``generator``,
    which otherwise runs on from epoch to epoch: a resumed run would start again from the
    seeded state and replay epoch 1's order. Reseeding it at each epoch start removes
    that memory; a sampler with ``set_epoch`` (``DistributedSampler``) is told the epoch.
    A loader with neither draws from torch's global RNG, which ``last.pt`` restores.
    """
    generator = getattr(loader, "generator", None)
    if isinstance(generator, torch.Generator):
        generator.manual_seed(epoch_seed(seed, epoch))
    sampler = getattr(loader, "sampler", None)
    if hasattr(sampler, "set_epoch"):
        sampler.set_epoch(epoch)


@dataclass
class Validation:
    """One validation pass: mean loss over every val clip, mean STOI over the first few."""

    loss: float
    stoi: float


def validate(spec_: ModelSpec, model: torch.nn.Module, loader: Iterable[Any],
             device: torch.device, ctx: StepContext, stoi_clips: int,
             mel_params: Mapping[str, Any] | None) -> Validation:
    """Mean val loss over every clip, and mean STOI over the first ``stoi_clips``."""
    model.eval()
    total, count = 0.0, 0
    kept: list[Mapping[str, Any]] = []
    held = 0
    with torch.no_grad():
        for batch in loader:
            if held < stoi_clips:
                kept.append(batch)
                held += batch_size(batch)
            batch = to_device(batch, device)
            with ctx.autocast():
                value = spec_.loss(model, batch)
            n = batch_size(batch)
            total += float(value) * n
            count += n
    stoi = float("nan")
    if stoi_clips and kept:
        from lipflow.models.speech import val_stoi

        rate = int((mel_params or {}).get("sample_rate_hz", 16000))
        stoi = val_stoi(spec_, model, kept, mel_params, stoi_clips, rate)
    return Validation(total / count if count else float("nan"), stoi)


def improves(criterion: str, value: float, best: float | None) -> bool:
    if not math.isfinite(value):
        return False
    if best is None:
        return True
    return value > best if criterion == "stoi" else value < best


def _lrs(optimisers: Mapping[str, torch.optim.Optimizer]) -> dict[str, float]:
    """``lr`` (the first optimiser's) and, with several, ``lr_<name>`` of each."""
    rates = {name: float(opt.param_groups[0]["lr"]) for name, opt in optimisers.items()}
    out = {"lr": next(iter(rates.values()))}
    if len(rates) > 1:
        out.update({f"lr_{name}": lr for name, lr in rates.items()})
    return out


def _mel_params(mel_params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if mel_params is not None:
        return mel_params
    from lipflow.tasks.settings.project import load_params, section

    return section(load_params(), "features.mel")


def train(
    model_name: str,
    train_loader: Iterable[dict[str, torch.Tensor]],
    val_loader: Iterable[dict[str, torch.Tensor]] | None,
    cfg: Mapping[str, Any],
    out_dir: Path,
    resume: bool = True,
    plots_path: Path | None = None,
    progress: bool | None = None,
    mel_params: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train ``model_name`` for ``cfg['epochs']`` epochs, checkpointing every epoch.

    Each step is the nets module's ``train_step`` (default: one loss, one Adam); its
    optimisers and schedulers come from its ``optimisers`` / ``schedulers`` hooks, the
    schedulers stepped once at the end of every epoch. Writes ``out_dir/last.pt`` (model,
    every optimiser and scheduler by name, scaler, epoch, RNG state, history, config)
    after each epoch, and ``out_dir/best.pt`` (weights, with the criterion and value that
    chose them) when the epoch beats the best so far by ``cfg['best_by']``: highest val
    STOI (speech models' default; STOI of the first ``cfg['val_stoi_clips']`` val clips,
    their waveforms made by :mod:`lipflow.models.speech` with ``mel_params``, default
    ``features.mel`` of params.yaml) or lowest val loss. The per-epoch rows (every figure
    ``train_step`` returns, averaged over the epoch's clips, then ``val_loss``,
    ``val_stoi``, ``seconds``, ``lr``) go to ``plots_path`` (CSV, default
    ``out_dir/train.csv``) and a JSON twin. With ``resume`` and an existing ``last.pt``,
    training continues at the next epoch and repeats an uninterrupted run exactly.
    ``progress`` shows a tqdm bar (default: when stderr is a terminal).
    """
    spec_ = spec(model_name)
    cfg = {**defaults(model_name), **dict(cfg)}
    criterion = best_criterion(model_name, cfg)
    if val_loader is not None and _is_empty(val_loader):
        raise TrainingError(
            f"the validation part of the split holds no clips for {model_name}: best.pt, "
            f"which lipflow evaluate scores, is only written when the validation {criterion} "
            "improves; give train.split a val part with clips"
        )
    stoi_clips = int(cfg["val_stoi_clips"]) if spec_.kind == "speech" else 0
    if stoi_clips and val_loader is not None:
        mel_params = _mel_params(mel_params)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots_path = Path(plots_path) if plots_path else out_dir / "train.csv"
    last, best_path = out_dir / LAST_NAME, out_dir / BEST_NAME
    if int(cfg["cpu_threads"]) > 0:
        torch.set_num_threads(int(cfg["cpu_threads"]))
    device = select_device(cfg.get("device"))
    seed = int(cfg["seed"])
    seed_everything(seed)
    model = spec_.build(cfg).to(device)
    optimisers = dict(spec_.optimisers(model, cfg))
    if not optimisers:
        raise TrainingError(f"{model_name}'s optimisers hook returned no optimiser")
    schedulers = dict(spec_.schedulers(optimisers, cfg))
    amp_on, amp_dtype = autocast_mode(device, cfg["amp"])
    scaler = torch.amp.GradScaler(device.type, enabled=amp_on and amp_dtype == torch.float16)
    step_fn = spec_.train_step
    history: list[dict[str, float]] = []
    start = 1
    best: float | None = None
    if resume and last.is_file():
        history, best, start = resume_last(last, model_name, model, optimisers, schedulers,
                                           scaler, device, criterion)
    show = show_progress(progress)
    for epoch in range(start, int(cfg["epochs"]) + 1):
        t0 = time.perf_counter()
        seed_epoch(train_loader, seed, epoch)
        lrs = _lrs(optimisers)
        model.train()
        sums: dict[str, float] = {}
        count = 0
        batches = train_loader
        if show:
            from tqdm import tqdm

            batches = tqdm(train_loader, desc=f"{model_name} epoch {epoch}", leave=False)
        for step, batch in enumerate(batches):
            batch = to_device(batch, device)
            ctx = StepContext(device=device, autocast_enabled=amp_on, autocast_dtype=amp_dtype,
                              scaler=scaler, grad_clip=float(cfg["grad_clip"]), epoch=epoch,
                              step=step, model_name=model_name, cfg=cfg)
            figures = step_fn(model, batch, optimisers, ctx)
            loss = figures.get("loss") if isinstance(figures, Mapping) else None
            if loss is None:
                raise TrainingError(f"{model_name}'s train_step must return a dict with 'loss'")
            if not math.isfinite(float(loss)):
                raise TrainingError(
                    f"{model_name} loss became {float(loss)} at epoch {epoch} step {step}; "
                    f"lower train.{model_name}.lr (now {cfg['lr']})"
                )
            n = batch_size(batch)
            for key, value in figures.items():
                sums[key] = sums.get(key, 0.0) + float(value) * n
            count += n
        if count == 0:
            raise TrainingError(f"the training data for {model_name} yielded no batches")
        for scheduler in schedulers.values():
            scheduler.step()
        # before validation and last.pt, so a resumed run sees the same buffers
        spec_.recalibrate(model, train_loader, device)
        ctx = StepContext(device=device, autocast_enabled=amp_on, autocast_dtype=amp_dtype,
                          scaler=scaler, grad_clip=float(cfg["grad_clip"]), epoch=epoch,
                          step=0, model_name=model_name, cfg=cfg)
        val = (validate(spec_, model, val_loader, device, ctx, stoi_clips, mel_params)
               if val_loader is not None else Validation(float("nan"), float("nan")))
        means = {key: total / count for key, total in sums.items()}
        row: dict[str, float] = {"epoch": epoch, "train_loss": means.pop("loss"),
                                 "val_loss": val.loss, "val_stoi": val.stoi,
                                 "seconds": time.perf_counter() - t0, **lrs}
        row.update({f"train_{key}": value for key, value in means.items()})
        history.append(row)
        value = val.stoi if criterion == "stoi" else val.loss
        if improves(criterion, value, best):
            best = value
            save_best(best_path, model_name, model, cfg, epoch, criterion, value)
        save_last(last, model_name, model, optimisers, schedulers, scaler, epoch, history, cfg,
                  criterion, best)
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
