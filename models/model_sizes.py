"""Parameter counts of each model's top-level modules, built from its params.yaml preset.

What ``lipflow models`` prints. Why a table of top-level modules: a reimplementation of
a published network (VCA-GAN's v_front, gen, post, dis1-3, sync_D) is first checked by
its modules' sizes, and a preset's size is the first thing to know before training it.
The models are built on the CPU and never run, so even the full sizes take seconds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from lipflow.models.registry import model_config, spec


def module_parameters(model: Any) -> dict[str, int]:
    """Parameters of each direct child module that has any, in definition order, or the
    model's own grouping when it has ``parameter_groups()`` (Lip2Wav: the original's parts)."""
    groups = getattr(model, "parameter_groups", None)
    if callable(groups):
        return dict(groups())
    counts = {name: sum(p.numel() for p in child.parameters())
              for name, child in model.named_children()}
    return {name: count for name, count in counts.items() if count}


def model_parameters(train_params: Mapping[str, Any], model_name: str,
                     size: str | None = None) -> dict[str, int]:
    """:func:`module_parameters` of ``model_name`` built from its ``size`` preset."""
    cfg = model_config(train_params, model_name, size=size)
    return module_parameters(spec(model_name).build(cfg))


def size_table(train_params: Mapping[str, Any], model_names: Sequence[str],
               size: str | None = None) -> str:
    """One block per model: ``name (size): total parameters``, then a row per module."""
    blocks = []
    for name in model_names:
        used = model_config(train_params, name, size=size)["size"]  # a model's own preset
        counts = model_parameters(train_params, name, used)
        width = max(len(k) for k in counts)
        rows = [f"{name} ({used}): {sum(counts.values()):,} parameters"]
        rows += [f"  {module:<{width}}  {count:>12,}  {count / 1e6:8.2f} M"
                 for module, count in counts.items()]
        blocks.append("\n".join(rows))
    return "\n".join(blocks)
