"""The one registry of lipflow's models: name, nets module, video stream, kind, presets.

Every model module (``lipflow.models.nets.lip2wav``, ``lipflow.models.nets.avsync``,
``lipflow.models.nets.gabor``, ``lipflow.models.nets.gaborpic``) offers the same three
functions: ``build(cfg) -> nn.Module``, ``loss(model, batch) -> scalar tensor`` and
``predict(model, batch)`` (a mel for the speech models, an auditory spectrogram for the
Gabor ones, ``(scores, labels)`` for the sync model), and may offer the
optional hooks ``optimisers`` / ``schedulers`` / ``train_step`` (a GAN's two-optimiser
step, :mod:`lipflow.models.training_step`) and ``to_waveform`` (its own vocoder,
:mod:`lipflow.models.speech`), which :class:`ModelSpec` fills with defaults. Training,
evaluation, the data loaders, the CLI and the Prefect deployments all read
:data:`MODELS`, so adding a model is a nets module plus one entry here; nothing else
keeps a list of model names.

Why entries name their nets module instead of importing it: the CLI checks a model name
(and lists the names in its help) before any work, and importing the nets loads torch,
seconds for a typo or a ``--help``. The module is imported on first use of
:attr:`ModelSpec.build` (or ``loss`` / ``predict``).

Configs are plain dicts: :func:`model_config` merges ``params.yaml``'s ``train`` section
(``train.seed``, ``train.size`` or the model's own ``train.<model>.preset``,
``train.<model>.<size>`` presets, then keys set directly
under ``train.<model>``, which win, so ``dvc exp run -S train.lip2wav.lr=3e-4`` works in
either size).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
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
    #: trains on windows of ``window_frames`` (every ``window_stride_frames``) cut from the
    #: clips, as VCA-GAN's 40-frame windows; val and test always read whole clips
    train_windows: bool = False

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

    # Optional hooks (see lipflow.models.training_step and lipflow.models.speech): a nets
    # module that does not define one gets the default, so a one-loss model stays three
    # functions. Imported on use, as the module itself.

    @property
    def optimisers(self) -> Callable[[Any, Mapping[str, Any]], dict[str, Any]]:
        """``optimisers(model, cfg) -> {name: Optimizer}`` (default: one Adam, ``"model"``)."""
        from lipflow.models.training_step import default_optimisers

        return getattr(self.module, "optimisers", default_optimisers)

    @property
    def schedulers(self) -> Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]:
        """``schedulers(optimisers, cfg) -> {name: LRScheduler}``, stepped once an epoch
        (default: none)."""
        return getattr(self.module, "schedulers", _no_schedulers)

    @property
    def train_step(self) -> Callable[..., dict[str, float]]:
        """``train_step(model, batch, optimisers, ctx) -> {"loss": ..., ...}`` (default:
        :func:`~lipflow.models.training_step.single_loss_step` on :attr:`loss`)."""
        hook = getattr(self.module, "train_step", None)
        if hook is not None:
            return hook
        from lipflow.models.training_step import single_loss_step

        return partial(single_loss_step, loss_fn=self.loss)

    @property
    def recalibrate(self) -> Callable[[Any, Any, Any], None]:
        """``recalibrate(model, train_batches, device)``: called after each epoch's training
        pass, before validation and checkpoints (and by the learning check after training),
        e.g. Lip2Wav's precise batch norm (default: nothing)."""
        return getattr(self.module, "recalibrate", _no_recalibration)

    @property
    def to_waveform(self) -> Callable[[Any, Mapping[str, Any]], Any]:
        """``to_waveform(spectrogram, mel_params) -> waveform`` of one :attr:`predict` row
        (time-major numpy; speech models only; default: Griffin-Lim of a Lip2Wav mel,
        :func:`lipflow.tasks.features.mel.inv_mel_spectrogram`)."""
        hook = getattr(self.module, "to_waveform", None)
        if hook is not None:
            return hook
        from lipflow.tasks.features.mel import inv_mel_spectrogram

        return inv_mel_spectrogram

    @property
    def target(self) -> Callable[[dict[str, Any]], Any] | None:
        """``target(batch) -> (B, frames, bins)``: the ground truth in :attr:`predict`'s
        representation, for a speech model that predicts something other than the stored
        Lip2Wav mel (VCA-GAN: its linear spectrogram, made from the stored wav); ``None``
        when the prediction is that mel (``batch["mel"]`` is its truth)."""
        return getattr(self.module, "target", None)


def _no_recalibration(model: Any, batches: Any, device: Any) -> None:
    """The default :attr:`ModelSpec.recalibrate`: the weights and buffers as trained."""


def _no_schedulers(optimisers: Mapping[str, Any], cfg: Mapping[str, Any]) -> dict[str, Any]:
    return {}


MODELS: dict[str, ModelSpec] = {
    "lip2wav": ModelSpec("lip2wav", "lipflow.models.nets.lip2wav", "face", "speech"),
    "avsync": ModelSpec("avsync", "lipflow.models.nets.avsync", "mouth", "sync"),
    "gabor": ModelSpec("gabor", "lipflow.models.nets.gabor", "mouth", "speech"),
    "gaborpic": ModelSpec("gaborpic", "lipflow.models.nets.gaborpic", "mouth", "speech"),
    "vcagan": ModelSpec("vcagan", "lipflow.models.nets.vcagan", "mouth", "speech",
                        train_windows=True),
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
    # Val clips whose STOI is computed each epoch (speech models): Griffin-Lim plus pystoi
    # take about 1 s a 3-s clip on a CPU core, so the whole val part would add minutes an
    # epoch (seen4: 199 clips) or hours (overlap: 8415). The first clips of the unshuffled
    # val loader are the same every epoch, so epochs compare fairly; VCA-GAN's own "fast
    # validate" scored 5 batches. 0: no val STOI (then best_by must be loss).
    "val_stoi_clips": 8,
}

#: Defaults by model kind, over :data:`COMMON_DEFAULTS`: ``best_by`` picks which epoch
#: ``best.pt`` keeps, by val STOI where a model makes speech (as VCA-GAN and Lip2Wav chose
#: their best checkpoints), by val loss otherwise.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "speech": {"best_by": "stoi"},
    "sync": {"best_by": "loss"},
}

#: What ``best_by`` may be.
BEST_BY = ("stoi", "loss")


def spec(model_name: str) -> ModelSpec:
    """The registry entry, with a clear error for an unknown name."""
    if model_name not in MODELS:
        raise ConfigError(f"unknown model {model_name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[model_name]


def defaults(model_name: str) -> dict[str, Any]:
    """Every key a merged config of ``model_name`` has, with its default."""
    return {**COMMON_DEFAULTS, **KIND_DEFAULTS[spec(model_name).kind]}


def best_criterion(model_name: str, cfg: Mapping[str, Any]) -> str:
    """``cfg['best_by']``, checked: ``stoi`` needs a speech model and val STOI clips."""
    value = cfg.get("best_by", defaults(model_name)["best_by"])
    if value not in BEST_BY:
        raise ConfigError(f"train.{model_name}.best_by must be one of {BEST_BY}, not {value!r}")
    clips = cfg.get("val_stoi_clips", COMMON_DEFAULTS["val_stoi_clips"])
    if isinstance(clips, bool) or not isinstance(clips, int) or clips < 0:
        raise ConfigError(f"train.{model_name}.val_stoi_clips must be an int >= 0, not {clips!r}")
    if value == "stoi" and spec(model_name).kind != "speech":
        raise ConfigError(f"{model_name} makes no speech, so it has no val STOI: "
                          f"set train.{model_name}.best_by to loss")
    if value == "stoi" and clips == 0:
        raise ConfigError(f"train.{model_name}.best_by is stoi but val_stoi_clips is 0")
    return value


def size_preset(train_params: Mapping[str, Any], model_name: str) -> Mapping[str, Any]:
    """The model's preset alone (``train.<model>.preset``, else ``train.size``; empty when
    params have none)."""
    section = train_params.get(model_name) or {}
    return section.get(section.get("preset") or train_params.get("size", "tiny"), {})


def model_config(
    train_params: Mapping[str, Any], model_name: str, size: str | None = None, fps: float = 25.0
) -> dict[str, Any]:
    """Merged config of one model from ``params.yaml``'s ``train`` section (see module doc)."""
    spec(model_name)
    section = dict(train_params.get(model_name) or {})
    # a model's own `preset` (avsync: `grid`, its 25 fps variant) wins over train.size
    size = size or section.get("preset") or train_params.get("size", "tiny")
    if size not in section:
        raise ConfigError(f"params.yaml has no train.{model_name}.{size} preset")
    cfg: dict[str, Any] = {**defaults(model_name), "fps": float(fps)}  # the store's rate
    cfg.update({k: v for k, v in train_params.items() if not isinstance(v, Mapping)})
    cfg.update(section[size])
    cfg.update({k: v for k, v in section.items() if not isinstance(v, Mapping)})
    cfg.update(model=model_name, size=size, fps=float(cfg["fps"]))
    return cfg
