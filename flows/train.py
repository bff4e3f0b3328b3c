"""Train, evaluate and sync-score flows: Zarr stores in, checkpoints/metrics/plots out.

Only Prefect wrapping lives here: the loaders (:mod:`lipflow.models.loaders`), configs
and model names (:mod:`lipflow.models.registry`), the loops
(:mod:`lipflow.models.training`, :mod:`lipflow.models.evaluation`) and the output paths
``dvc.yaml`` declares (:mod:`lipflow.models.outputs`) are in ``lipflow.models``. The work
is imported inside the tasks, so importing the flows (``lipflow serve``, the CLI) does
not load torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from lipflow.tasks.settings.project import load_params


@task(name="train-model", task_run_name="train-{model}")
def train_task(model: str, params: dict[str, Any], progress: bool | None) -> Path:
    """Fit one model on the split's train part, validating each epoch (a speech model's
    val STOI is scored on waveforms made with ``features.mel``)."""
    from lipflow.models.loaders import split_loaders
    from lipflow.models.outputs import checkpoint_dir, plots_path
    from lipflow.models.registry import model_config
    from lipflow.models.training import train

    (train_loader, val_loader), fps = split_loaders(params, model, ("train", "val"))
    cfg = model_config(params["train"], model, fps=fps)
    result = train(model, train_loader, val_loader, cfg, checkpoint_dir(model),
                   plots_path=plots_path(model), progress=progress,
                   mel_params=params.get("features", {}).get("mel"))
    return Path(result.checkpoint)


@task(name="evaluate-model", task_run_name="evaluate-{model}")
def evaluate_task(model: str, params: dict[str, Any]) -> dict[str, float]:
    """Score the best checkpoint on the split's test part."""
    from lipflow.models.checkpoints import BEST_NAME
    from lipflow.models.evaluation import evaluate
    from lipflow.models.loaders import split_loaders
    from lipflow.models.outputs import checkpoint_dir, eval_dir, metrics_path
    from lipflow.models.registry import model_config

    (test_loader,), fps = split_loaders(params, model, ("test",))
    cfg = model_config(params["train"], model, fps=fps)
    return evaluate(model, checkpoint_dir(model) / BEST_NAME, test_loader, cfg,
                    eval_dir(model), metrics_path=metrics_path(model),
                    mel_params=params.get("features", {}).get("mel"))


@flow(name="train", log_prints=True)
def train_flow(model: str, params: dict[str, Any] | None = None,
               progress: bool | None = None) -> Path:
    """Train one seed model (see ``lipflow.models.registry``); params default to the file."""
    return train_task(model, params or load_params(), progress)


@flow(name="evaluate", log_prints=True)
def evaluate_flow(model: str, params: dict[str, Any] | None = None) -> dict[str, float]:
    """Evaluate one trained model and write ``metrics/<model>.json``."""
    return evaluate_task(model, params or load_params())


@flow(name="sync-score", log_prints=True)
def sync_score_flow(store: Path, checkpoint: Path, out: Path,
                    max_offset_frames: int = 15) -> Path:
    """Write each kept clip's audio-visual sync score and best offset to ``out``.

    ``out`` is the stage's own file (``data/sync/<corpus>/<speaker>.parquet``): the store
    and its clip manifest belong to ``prepare`` and are only read.
    """
    from lipflow.models.sync_scores import score_store

    return score_store(Path(store), Path(checkpoint), Path(out), max_offset_frames)
