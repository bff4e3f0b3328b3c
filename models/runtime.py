"""Where and how a model runs: device, seeding, autocast, batches on the device.

Shared by :mod:`lipflow.models.training` and :mod:`lipflow.models.evaluation`, so a
trained model is scored under the same device and precision rules it was trained with.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from lipflow.tasks.common.errors import LipflowError


class TrainingError(LipflowError):
    """Training cannot go on (diverged loss, incompatible checkpoint, empty data)."""


def select_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or ``prefer`` names a device), else CPU. A named device that
    this torch cannot use is a clear error here, not a traceback at the first ``.to()``."""
    if prefer and prefer != "auto":
        try:
            device = torch.device(prefer)
        except RuntimeError as err:
            raise TrainingError(f"unknown device {prefer!r}: {err}") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise TrainingError(f"device {prefer!r} asked for, but this torch sees no CUDA "
                                "GPU; use --device cpu or auto")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so reruns draw the same numbers."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def autocast_mode(device: torch.device, amp: str) -> tuple[bool, torch.dtype]:
    """Autocast on GPU only: bf16 where supported, else fp16 (with a grad scaler)."""
    if device.type != "cuda" or amp in ("none", "off", False):
        return False, torch.float32
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return True, torch.float16
    return True, torch.bfloat16


def to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    """The batch with its tensors on ``device`` (other values as they are)."""
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def batch_size(batch: Mapping[str, Any]) -> int:
    """Clips in a batch (1 for a batch without video)."""
    return int(batch["video"].shape[0]) if "video" in batch else 1
