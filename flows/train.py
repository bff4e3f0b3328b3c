"""Train, evaluate and sync-score flows: Zarr stores in, checkpoints/metrics/plots out.

Paths are fixed by convention so that ``dvc.yaml`` can declare them:
checkpoints ``data/models/<model>/{last,best}.pt`` (DVC outs), per-epoch curves
``plots/<model>/train.csv`` (DVC plots), scores ``metrics/<model>.json`` (DVC metrics),
generated wavs and per-clip scores ``data/eval/<model>/``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from prefect import flow, task

from lipflow.tasks.settings.project import load_params, resolve

#: Which video stream each model reads.
MODALITY = {"lip2wav": "face", "avsync": "mouth", "gabor": "mouth"}


def checkpoint_dir(model: str) -> Path:
    return resolve(f"data/models/{model}")


def plots_path(model: str) -> Path:
    return resolve(f"plots/{model}/train.csv")


def metrics_path(model: str) -> Path:
    return resolve(f"metrics/{model}.json")


def eval_dir(model: str) -> Path:
    return resolve(f"data/eval/{model}")


def _loaders(params: Mapping[str, Any], model: str, parts: tuple[str, ...]) -> tuple[Any, float]:
    """DataLoaders over the active split's stores, one per part, and the stores' fps."""
    import torch

    from lipflow.models.dataset import ClipWindowDataset, loader_start_method
    from lipflow.models.splits import part_filter, split_config, split_stores

    train_params = params["train"]
    cfg = split_config(params, train_params.get("split", "sample"))
    stores = split_stores(params, cfg)
    seed = int(train_params.get("seed", 0))
    workers = int(train_params.get("loader_workers", 0))
    loaders = []
    fps = None
    for part in parts:
        dataset = ClipWindowDataset(stores, modality=MODALITY[model],
                                    split_filter=part_filter(cfg, part, seed))
        rates = {t.fps for t in dataset.timings}
        if len(rates) != 1:
            from lipflow.tasks.common.errors import ConfigError

            raise ConfigError(f"split mixes frame rates {sorted(rates)}; train one rate at a time")
        fps = rates.pop()
        generator = torch.Generator().manual_seed(seed)
        loaders.append(torch.utils.data.DataLoader(
            dataset, batch_size=int(_size_preset(train_params, model).get("batch_size", 2)),
            shuffle=(part == "train"), num_workers=workers, generator=generator,
            multiprocessing_context=loader_start_method() if workers else None,
            persistent_workers=bool(workers)))
    return loaders, float(fps)


def _size_preset(train_params: Mapping[str, Any], model: str) -> Mapping[str, Any]:
    section = train_params.get(model) or {}
    return section.get(train_params.get("size", "tiny"), {})


@task(name="train-model", task_run_name="train-{model}")
def train_task(model: str, params: dict[str, Any], progress: bool | None) -> Path:
    """Fit one model on the split's train part, validating each epoch."""
    from lipflow.models.training import model_config, train

    (train_loader, val_loader), fps = _loaders(params, model, ("train", "val"))
    cfg = model_config(params["train"], model, fps=fps)
    result = train(model, train_loader, val_loader, cfg, checkpoint_dir(model),
                   plots_path=plots_path(model), progress=progress)
    return Path(result.checkpoint)


@task(name="evaluate-model", task_run_name="evaluate-{model}")
def evaluate_task(model: str, params: dict[str, Any]) -> dict[str, float]:
    """Score the best checkpoint on the split's test part."""
    from lipflow.models.training import evaluate, model_config

    (test_loader,), fps = _loaders(params, model, ("test",))
    cfg = model_config(params["train"], model, fps=fps)
    return evaluate(model, checkpoint_dir(model) / "best.pt", test_loader, cfg, eval_dir(model),
                    metrics_path=metrics_path(model),
                    mel_params=params.get("features", {}).get("mel"))


@flow(name="train", log_prints=True)
def train_flow(model: str, params: dict[str, Any] | None = None,
               progress: bool | None = None) -> Path:
    """Train one seed model (``lip2wav``, ``avsync`` or ``gabor``); params default to the file."""
    return train_task(model, params or load_params(), progress)


@flow(name="evaluate", log_prints=True)
def evaluate_flow(model: str, params: dict[str, Any] | None = None) -> dict[str, float]:
    """Evaluate one trained model and write ``metrics/<model>.json``."""
    return evaluate_task(model, params or load_params())


@flow(name="sync-score", log_prints=True)
def sync_score_flow(store: Path, checkpoint: Path, max_offset_frames: int = 15) -> Path:
    """Write each clip's audio-visual sync score and best offset into its clip manifest."""
    from lipflow.models.sync_scores import score_store

    return score_store(Path(store), Path(checkpoint), max_offset_frames)
