"""Where training and evaluation write, and the JSON they write.

Paths are fixed by convention so that ``dvc.yaml`` can declare them: checkpoints
``data/models/<model>/{last,best}.pt`` (DVC outs), per-epoch curves
``plots/<model>/train.csv`` (DVC plots), scores ``metrics/<model>.json`` (DVC metrics),
generated wavs and per-clip scores ``data/eval/<model>/``. All are relative to the
project root (:func:`lipflow.tasks.settings.project.resolve`).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from lipflow.tasks.settings.project import resolve


def checkpoint_dir(model: str) -> Path:
    """The folder of ``last.pt`` and ``best.pt``."""
    return resolve(f"data/models/{model}")


def plots_path(model: str) -> Path:
    """The per-epoch CSV (a DVC plot; a JSON twin sits beside it)."""
    return resolve(f"plots/{model}/train.csv")


def metrics_path(model: str) -> Path:
    """The evaluation summary (a DVC metric)."""
    return resolve(f"metrics/{model}.json")


def eval_dir(model: str) -> Path:
    """Generated and reference wavs, per-clip scores."""
    return resolve(f"data/eval/{model}")


def json_safe(x: Any) -> Any:
    """NaN/inf become null: DVC and strict JSON readers reject them."""
    if isinstance(x, dict):
        return {k: json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x
