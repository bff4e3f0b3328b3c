"""DataLoaders over the active split's stores, one per split part.

The split (``train.split``, a ``splits.<name>`` section) picks the stores and which
clips are train, val and test; the registry picks which video stream a model reads
(:attr:`lipflow.models.registry.ModelSpec.modality`) and the batch size comes from the
model's size preset. Every part must have one frame rate: the models' time axes are
built from it, so the rate is returned for :func:`lipflow.models.registry.model_config`.

Each loader has its own ``torch.Generator``; the trainer reseeds the train loader's at
the start of every epoch from ``(train.seed, epoch)``
(:func:`lipflow.models.training.seed_epoch`), so epoch 3's order is the same whether the
run started at epoch 1 or resumed at 3. Random draws inside dataset workers would not be
covered (persistent workers keep their RNG across epochs); the dataset draws none, and
augmentation belongs in a model's ``train_step``, on the device.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lipflow.models.dataset import ClipWindowDataset, loader_start_method
from lipflow.models.registry import model_config, size_preset, spec
from lipflow.models.splits import part_filter, split_config, split_stores
from lipflow.tasks.common.errors import ConfigError


def split_loaders(
    params: Mapping[str, Any], model: str, parts: tuple[str, ...]
) -> tuple[list[torch.utils.data.DataLoader], float]:
    """DataLoaders over the active split's stores, one per part, and the stores' fps."""
    modality = spec(model).modality
    train_params = params["train"]
    cfg = split_config(params, train_params.get("split", "sample"))
    stores = split_stores(params, cfg)
    seed = int(train_params.get("seed", 0))
    workers = int(train_params.get("loader_workers", 0))
    loaders = []
    fps = None
    windows = train_windows(train_params, model)
    for part in parts:
        dataset = ClipWindowDataset(stores, modality=modality,
                                    split_filter=part_filter(cfg, part, seed),
                                    **(windows if part == "train" else {}))
        rates = {t.fps for t in dataset.timings}
        if len(rates) != 1:
            raise ConfigError(f"split mixes frame rates {sorted(rates)}; train one rate at a time")
        fps = rates.pop()
        loaders.append(part_loader(
            dataset, part, int(size_preset(train_params, model).get("batch_size", 2)),
            seed, workers))
    return loaders, float(fps)


def train_windows(train_params: Mapping[str, Any], model: str) -> dict[str, int]:
    """``ClipWindowDataset`` window arguments of a model's train part: empty (whole clips)
    unless its registry entry trains on windows; then ``window_frames`` and
    ``window_stride_frames`` of its merged config (stride default 1: every window, as
    VCA-GAN's random 40-frame crop of each clip samples all of them over epochs)."""
    if not spec(model).train_windows:
        return {}
    cfg = model_config(train_params, model)
    if not cfg.get("window_frames"):
        raise ConfigError(f"train.{model} trains on windows: set its window_frames")
    return {"window_frames": int(cfg["window_frames"]),
            "stride_frames": int(cfg.get("window_stride_frames") or 1)}


def part_loader(dataset: torch.utils.data.Dataset, part: str, batch_size: int, seed: int,
                workers: int = 0) -> torch.utils.data.DataLoader:
    """The DataLoader of one split part: shuffled for ``train`` (by its own generator, which
    the trainer reseeds each epoch), in order for ``val`` and ``test``."""
    return torch.utils.data.DataLoader(
        dataset, batch_size=batch_size, shuffle=(part == "train"), num_workers=workers,
        generator=torch.Generator().manual_seed(seed),
        multiprocessing_context=loader_start_method() if workers else None,
        persistent_workers=bool(workers))
