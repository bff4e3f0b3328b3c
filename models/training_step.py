"""One optimisation step: the contract between the epoch loop and a model's nets module.

Most models learn from one scalar loss with one optimiser, and :func:`single_loss_step`
does that for them. A GAN (VCA-GAN) needs a discriminator step and then a generator step,
two optimisers and gradients that must not be zeroed in between, which no generic loop
can guess. So a nets module may define, beside ``build`` / ``loss`` / ``predict``:

- ``optimisers(model, cfg) -> dict[str, torch.optim.Optimizer]`` (default
  :func:`default_optimisers`: one Adam named ``"model"`` over every parameter);
- ``schedulers(optimisers, cfg) -> dict[str, LRScheduler]`` (default none), stepped once
  at the end of every epoch;
- ``train_step(model, batch, optimisers, ctx) -> dict[str, float]`` (default
  :func:`single_loss_step`): does its own ``zero_grad`` / ``backward`` / ``step`` and
  returns the numbers to log; it must include ``"loss"`` (the figure ``train_loss`` is
  averaged from).

Every optimiser's and scheduler's state goes into ``last.pt`` by its name. The loop
averages every number ``train_step`` returns over the epoch's clips (``train_loss`` from
``"loss"``, ``train_<key>`` from the others) into the training history.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import torch

from lipflow.models.runtime import TrainingError


@dataclass
class StepContext:
    """What a step needs from the loop besides the model, the batch and the optimisers."""

    device: torch.device
    autocast_enabled: bool
    autocast_dtype: torch.dtype
    scaler: torch.amp.GradScaler
    grad_clip: float
    epoch: int
    step: int
    model_name: str = ""
    #: the run's merged config (loss weights and the like a step reads)
    cfg: Mapping[str, Any] = field(default_factory=dict)

    def autocast(self) -> torch.autocast:
        """The autocast context of this run (a no-op on CPU)."""
        return torch.autocast(self.device.type, dtype=self.autocast_dtype,
                              enabled=self.autocast_enabled)


def default_optimisers(model: torch.nn.Module,
                       cfg: Mapping[str, Any]) -> dict[str, torch.optim.Optimizer]:
    """One Adam over every parameter, with ``lr`` and ``weight_decay`` from the config."""
    return {"model": torch.optim.Adam(model.parameters(), lr=float(cfg["lr"]),
                                      weight_decay=float(cfg["weight_decay"]))}


def single_loss_step(model: torch.nn.Module, batch: Mapping[str, Any],
                     optimisers: Mapping[str, torch.optim.Optimizer], ctx: StepContext,
                     loss_fn: Any) -> dict[str, float]:
    """``loss_fn(model, batch)``, backward (through the grad scaler), clip, step."""
    (optimiser,) = optimisers.values()
    with ctx.autocast():
        value = loss_fn(model, batch)
    if not torch.isfinite(value):
        raise TrainingError(
            f"{ctx.model_name} loss became {float(value)} at epoch {ctx.epoch} step {ctx.step}; "
            f"lower train.{ctx.model_name}.lr"
        )
    optimiser.zero_grad(set_to_none=True)
    ctx.scaler.scale(value).backward()
    if ctx.grad_clip:
        ctx.scaler.unscale_(optimiser)
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(ctx.grad_clip))
    ctx.scaler.step(optimiser)
    ctx.scaler.update()
    return {"loss": float(value.detach())}
