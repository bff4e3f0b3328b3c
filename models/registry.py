"""The one registry of lipflow's models: name, nets module, video stream, kind, presets.

Every model module (``lipflow.models.nets.lip2wav``, ``lipflow.models.nets.avsync``,
``lipflow.models.nets.gabor``) offers the same three functions: ``build(cfg) ->
nn.Module``, ``loss(model, batch) -> scalar tensor`` and ``predict(model, batch)`` (a mel
for the speech models, ``(scores, labels)`` for the sync model). Training, evaluation, the
data loaders, the CLI and the Prefect deployments all read :data:`MODELS`, so adding a
model is a nets module plus one entry here; nothing else keeps a list of model names.

Why entries name their nets module instead of importing it: the CLI checks a model name
(and lists the names in its help) before any work, and importing the nets loads torch,
seconds for a typo or a ``--help``. The module is imported on first use of
:attr:`ModelSpec.build` (or ``loss`` / ``predict``).

Configs are plain dicts: :func:`model_config` merges ``params.yaml``'s ``train`` section
(``train.seed``, ``train.size``, ``train.<model>.<size>`` presets, then keys set directly
under ``train.<model>``, which win, so ``dvc exp run -S train.lip2wav.lr=3e-4`` works in
either size).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import import_module
from types import ModuleType
from typing import Any

from lipflow.tasks.common.errors import ConfigError


@dataclass(frozen=True)
class ModelSpec:
    """What the trainer, the loaders and the commands need to know about one model."""

    name: str
    nets: str  # import path of the module with build / loss / predict
    modality: str  # the video stream it reads: "face" | "mouth"
    kind: str  # "speech" (predicts mels) | "sync" (predicts pair scores)

    @property
    def module(self) -> ModuleType:
        """The nets module (imported on first use)."""
        return import_module(self.nets)

    @property
    def build(self) -> Callable[[dict[str, Any]], Any]:
        """``build(cfg) -> torch.nn.Module``."""
        return self.module.build

    @property
    def loss(self) -> Callable[[Any, dict[str, Any]], Any]:
        """``loss(model, batch) -> scalar tensor``."""
        return self.module.loss

    @property
    def predict(self) -> Callable[[Any, dict[str, Any]], Any]:
        """``predict(model, batch)``: a mel (speech) or ``(scores, labels)`` (sync)."""
        return self.module.predict


MODELS: dict[str, ModelSpec] = {
    "lip2wav": ModelSpec("lip2wav", "lipflow.models.nets.lip2wav", "face", "speech"),
    "avsync": ModelSpec("avsync", "lipflow.models.nets.avsync", "mouth", "sync"),
    "gabor": ModelSpec("gabor", "lipflow.models.nets.gabor", "mouth", "speech"),
}

#: What a deployment trains or evaluates when no model is named.
DEFAULT_MODEL = "lip2wav"

#: keys every merged config has, with their defaults
COMMON_DEFAULTS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "epochs": 1,
    "batch_size": 2,
    "grad_clip": 1.0,
    "amp": "auto",
    "seed": 0,
    "fps": 25.0,
    "cpu_threads": 0,
    "folds": 10,
}


def spec(model_name: str) -> ModelSpec:
    """The registry entry, with a clear error for an unknown name."""
    if model_name not in MODELS:
        raise ConfigError(f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[model_name]


def size_preset(train_params: Mapping[str, Any], model_name: str) -> Mapping[str, Any]:
    """The ``train.<model>.<train.size>`` preset alone (empty when params have none)."""
    section = train_params.get(model_name) or {}
    return section.get(train_params.get("size", "tiny"), {})


def model_config(
    train_params: Mapping[str, Any], model_name: str, size: str | None = None, fps: float = 25.0
) -> dict[str, Any]:
    """Merged config of one model from ``params.yaml``'s ``train`` section (see module doc)."""
    spec(model_name)
    size = size or train_params.get("size", "tiny")
    section = dict(train_params.get(model_name) or {})
    if size not in section:
        raise ConfigError(f"params.yaml has no train.{model_name}.{size} preset")
    cfg: dict[str, Any] = {**COMMON_DEFAULTS, "fps": float(fps)}  # the store's frame rate
    cfg.update({k: v for k, v in train_params.items() if not isinstance(v, Mapping)})
    cfg.update(section[size])
    cfg.update({k: v for k, v in section.items() if not isinstance(v, Mapping)})
    cfg.update(model=model_name, size=size, fps=float(cfg["fps"]))
    return cfg
