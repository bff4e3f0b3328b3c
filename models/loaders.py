"""DataLoaders over the active split's stores, one per split part.

The split (``train.split``, a ``splits.<name>`` section) picks the stores and which
clips are train, val and test; the registry picks which video stream a model reads
(:attr:`lipflow.models.registry.ModelSpec.modality`) and the batch size comes from the
model's size preset. Every part must have one frame rate: the models' time axes are
built from it, so the rate is returned for :func:`lipflow.models.registry.model_config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

from lipflow.models.dataset import ClipWindowDataset, loader_start_method
from lipflow.models.registry import size_preset, spec
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
    for part in parts:
        dataset = ClipWindowDataset(stores, modality=modality,
                                    split_filter=part_filter(cfg, part, seed))
        rates = {t.fps for t in dataset.timings}
        if len(rates) != 1:
            raise ConfigError(f"split mixes frame rates {sorted(rates)}; train one rate at a time")
        fps = rates.pop()
        generator = torch.Generator().manual_seed(seed)
        loaders.append(torch.utils.data.DataLoader(
            dataset, batch_size=int(size_preset(train_params, model).get("batch_size", 2)),
            shuffle=(part == "train"), num_workers=workers, generator=generator,
            multiprocessing_context=loader_start_method() if workers else None,
            persistent_workers=bool(workers)))
    return loaders, float(fps)
