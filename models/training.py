"""Model-agnostic training and evaluation for the seed models.

Every model module (``lipflow.models.nets.lip2wav``, ``lipflow.models.nets.avsync``,
``lipflow.models.nets.gabor``) offers the same
three functions, collected in :data:`MODELS`: ``build(cfg) -> nn.Module``,
``loss(model, batch) -> scalar tensor`` and ``predict(model, batch)`` (a mel for the speech
models, ``(scores, labels)`` for the sync model). :func:`train` and :func:`evaluate` only
talk to that interface, so the flows and DVC stages are the same for every model.

Configs are plain dicts: :func:`model_config` merges ``params.yaml``'s ``train`` section
(``train.seed``, ``train.size``, ``train.<model>.<size>`` presets, then keys set directly
under ``train.<model>``, which win, so ``dvc exp run -S train.lip2wav.lr=3e-4`` works in
either size).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lipflow.models.nets import avsync, gabor, lip2wav
from lipflow.tasks.common.atomic import atomic_path, write_bytes_atomic
from lipflow.tasks.common.errors import ConfigError, LipflowError


class TrainingError(LipflowError):
    """Training cannot go on (diverged loss, incompatible checkpoint, empty data)."""


@dataclass(frozen=True)
class ModelSpec:
    """What the trainer needs to know about one model."""

    name: str
    build: Callable[[dict[str, Any]], torch.nn.Module]
    loss: Callable[[torch.nn.Module, dict[str, torch.Tensor]], torch.Tensor]
    predict: Callable[[torch.nn.Module, dict[str, torch.Tensor]], Any]
    kind: str  # "speech" (predicts mels) | "sync" (predicts pair scores)


MODELS: dict[str, ModelSpec] = {
    "lip2wav": ModelSpec("lip2wav", lip2wav.build, lip2wav.loss, lip2wav.predict, "speech"),
    "avsync": ModelSpec("avsync", avsync.build, avsync.loss, avsync.predict, "sync"),
    "gabor": ModelSpec("gabor", gabor.build, gabor.loss, gabor.predict, "speech"),
}

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
    "eval_wavs": 3,
    "folds": 10,
}


def spec(model_name: str) -> ModelSpec:
    """The registry entry, with a clear error for an unknown name."""
    if model_name not in MODELS:
        raise ConfigError(f"unknown model {model_name!r}; choose one of {sorted(MODELS)}")
    return MODELS[model_name]


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


def select_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or ``prefer`` names a device), else CPU."""
    if prefer and prefer != "auto":
        return torch.device(prefer)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (CPU and every GPU) so reruns draw the same numbers."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def _rng_state() -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _amp(device: torch.device, amp: str) -> tuple[bool, torch.dtype]:
    """Autocast on GPU only: bf16 where supported, else fp16 (with a grad scaler)."""
    if device.type != "cuda" or amp in ("none", "off", False):
        return False, torch.float32
    if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
        return True, torch.float16
    return True, torch.bfloat16


def _to_device(batch: Mapping[str, Any], device: torch.device) -> dict[str, Any]:
    return {
        k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()
    }


def _batch_size(batch: Mapping[str, Any]) -> int:
    return int(batch["video"].shape[0]) if "video" in batch else 1


@dataclass
class TrainResult:
    """Where the weights went and how the loss went, epoch by epoch."""

    model_name: str
    checkpoint: Path
    best_checkpoint: Path | None
    epochs_completed: int
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"


HISTORY_FIELDS = ("epoch", "train_loss", "val_loss", "seconds", "lr")


def _write_history(history: list[dict[str, float]], plots_path: Path) -> None:
    """The per-epoch rows as CSV at ``plots_path`` (a DVC plot) and JSON beside it."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=HISTORY_FIELDS, lineterminator="\n")
    writer.writeheader()
    for row in history:
        writer.writerow({k: ("" if _nan(row.get(k)) else row.get(k)) for k in HISTORY_FIELDS})
    write_bytes_atomic(plots_path, buf.getvalue().encode())
    write_bytes_atomic(
        plots_path.with_suffix(".json"), json.dumps(_json_safe(history), indent=1).encode()
    )


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def _json_safe(x: Any) -> Any:
    """NaN/inf become null: DVC and strict JSON readers reject them."""
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and not math.isfinite(x):
        return None
    return x


def _save(obj: dict[str, Any], path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _mean_loss(spec_: ModelSpec, model, loader, device, autocast) -> float:
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in loader:
            batch = _to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast[1], enabled=autocast[0]):
                value = spec_.loss(model, batch)
            n = _batch_size(batch)
            total += float(value) * n
            count += n
    return total / count if count else float("nan")


def train(
    model_name: str,
    train_loader: Iterable[dict[str, torch.Tensor]],
    val_loader: Iterable[dict[str, torch.Tensor]] | None,
    cfg: Mapping[str, Any],
    out_dir: Path,
    resume: bool = True,
    plots_path: Path | None = None,
    progress: bool | None = None,
) -> TrainResult:
    """Train ``model_name`` for ``cfg['epochs']`` epochs, checkpointing every epoch.

    Writes ``out_dir/last.pt`` (model, optimiser, scaler, epoch, RNG state, history,
    config) after each epoch and ``out_dir/best.pt`` (weights) when the validation loss
    improves; the per-epoch rows go to ``plots_path`` (CSV, default ``out_dir/train.csv``)
    and a JSON twin. With ``resume`` and an existing ``last.pt``, training continues at the
    next epoch with the RNG state it stopped with, so a resumed run repeats an
    uninterrupted one. ``progress`` shows a tqdm bar (default: when stderr is a terminal).
    """
    spec_ = spec(model_name)
    cfg = {**COMMON_DEFAULTS, **dict(cfg)}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plots_path = Path(plots_path) if plots_path else out_dir / "train.csv"
    last, best_path = out_dir / "last.pt", out_dir / "best.pt"
    if int(cfg["cpu_threads"]) > 0:
        torch.set_num_threads(int(cfg["cpu_threads"]))
    device = select_device(cfg.get("device"))
    seed_everything(int(cfg["seed"]))
    model = spec_.build(cfg).to(device)
    optimiser = torch.optim.Adam(
        model.parameters(), lr=float(cfg["lr"]), weight_decay=float(cfg["weight_decay"])
    )
    autocast = _amp(device, cfg["amp"])
    scaler = torch.amp.GradScaler(device.type, enabled=autocast[0] and autocast[1] == torch.float16)
    history: list[dict[str, float]] = []
    start = 1
    best_val = math.inf
    if resume and last.is_file():
        ckpt = torch.load(last, map_location=device, weights_only=False)
        if ckpt.get("model_name") != model_name:
            raise TrainingError(
                f"{last} holds a {ckpt.get('model_name')!r} model, not {model_name!r}"
            )
        try:
            model.load_state_dict(ckpt["model"])
            optimiser.load_state_dict(ckpt["optimiser"])
        except (RuntimeError, ValueError) as err:
            raise TrainingError(
                f"{last} was trained with another architecture; remove it or pass resume=False "
                f"({str(err).splitlines()[0]})"
            ) from err
        scaler.load_state_dict(ckpt["scaler"])
        _set_rng_state(ckpt["rng"])
        history = list(ckpt["history"])
        best_val = float(ckpt.get("best_val", math.inf))
        start = int(ckpt["epoch"]) + 1
    show = progress if progress is not None else os.isatty(2)
    for epoch in range(start, int(cfg["epochs"]) + 1):
        t0 = time.perf_counter()
        model.train()
        total, count = 0.0, 0
        batches = train_loader
        if show:
            from tqdm import tqdm

            batches = tqdm(train_loader, desc=f"{model_name} epoch {epoch}", leave=False)
        for step, batch in enumerate(batches):
            batch = _to_device(batch, device)
            with torch.autocast(device.type, dtype=autocast[1], enabled=autocast[0]):
                value = spec_.loss(model, batch)
            if not torch.isfinite(value):
                raise TrainingError(
                    f"{model_name} loss became {float(value)} at epoch {epoch} step {step}; "
                    f"lower train.{model_name}.lr (now {cfg['lr']})"
                )
            optimiser.zero_grad(set_to_none=True)
            scaler.scale(value).backward()
            if cfg["grad_clip"]:
                scaler.unscale_(optimiser)
                torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
            scaler.step(optimiser)
            scaler.update()
            n = _batch_size(batch)
            total += float(value.detach()) * n
            count += n
        if count == 0:
            raise TrainingError(f"the training data for {model_name} yielded no batches")
        val = _mean_loss(spec_, model, val_loader, device, autocast) if val_loader else float("nan")
        history.append(
            {
                "epoch": epoch,
                "train_loss": total / count,
                "val_loss": val,
                "seconds": time.perf_counter() - t0,
                "lr": float(cfg["lr"]),
            }
        )
        if math.isfinite(val) and val < best_val:
            best_val = val
            _save(
                {"model_name": model_name, "model": model.state_dict(), "cfg": cfg, "epoch": epoch},
                best_path,
            )
        _save(
            {
                "model_name": model_name,
                "model": model.state_dict(),
                "optimiser": optimiser.state_dict(),
                "scaler": scaler.state_dict(),
                "epoch": epoch,
                "rng": _rng_state(),
                "history": history,
                "cfg": cfg,
                "best_val": best_val,
            },
            last,
        )
        _write_history(history, plots_path)
    if not history:
        _write_history(history, plots_path)
    return TrainResult(
        model_name,
        last,
        best_path if best_path.is_file() else None,
        len(history),
        history,
        str(device),
    )


# --------------------------------------------------------------------------- evaluation


def load_model(model_name: str, checkpoint: Path, device: torch.device | None = None):
    """Rebuild a model from a checkpoint written by :func:`train` (its own config)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise TrainingError(f"no checkpoint at {checkpoint}; run lipflow train {model_name} first")
    device = device or select_device()
    ckpt = torch.load(checkpoint, map_location=device, weights_only=False)
    if ckpt.get("model_name") != model_name:
        raise TrainingError(
            f"{checkpoint} holds a {ckpt.get('model_name')!r} model, not {model_name!r}"
        )
    model = spec(model_name).build(ckpt["cfg"]).to(device)
    model.load_state_dict(ckpt["model"])
    model.eval()
    return model, ckpt["cfg"]


def _write_wav(path: Path, wav: np.ndarray, sample_rate_hz: int) -> None:
    from scipy.io import wavfile

    pcm = (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16)
    with atomic_path(path) as tmp:
        wavfile.write(tmp, sample_rate_hz, pcm)


def _speech_scores(
    model, spec_, loader, cfg, out_dir, inverse_mel, mel_params, device, sample_rate_hz
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    from lipflow.models import metrics

    fps = float(cfg["fps"])
    rows: list[dict[str, Any]] = []
    ln = {
        k: float(mel_params[k])
        for k in ("max_abs_value", "min_level_db", "ref_level_db")
        if k in mel_params
    }
    for batch in loader:
        pred = spec_.predict(model, _to_device(batch, device)).float().cpu().numpy()
        true = batch["mel"].float().numpy()
        wavs = batch["wav"].numpy()
        t = batch["video"].shape[1]
        for i in range(len(pred)):
            valid = int(batch["valid_frames"][i]) if "valid_frames" in batch else t
            m = max(1, math.ceil(valid * pred.shape[1] / t))
            mel_p, mel_t = pred[i, :m], true[i, :m]
            n = min(wavs.shape[1], int(round(valid * sample_rate_hz / fps)))
            ref = wavs[i, :n].astype(np.float64) / 32768.0
            deg = np.asarray(inverse_mel(mel_p, mel_params), dtype=np.float64)[:n]
            row = {
                "clip": len(rows),
                "stoi": metrics.stoi_score(ref, deg, sample_rate_hz),
                "estoi": metrics.estoi_score(ref, deg, sample_rate_hz),
                "pesq_lip2wav": metrics.pesq_lip2wav(ref, deg, sample_rate_hz),
                "pesq_vcagan": metrics.pesq_vcagan(ref, deg, sample_rate_hz),
                "mcd_db": metrics.mel_cepstral_distortion(
                    metrics.lip2wav_mel_to_ln(mel_t, **ln), metrics.lip2wav_mel_to_ln(mel_p, **ln)
                ),
                "mel_l1": metrics.mel_l1(mel_t, mel_p),
                "spectrogram_correlation": metrics.spectrogram_correlation(mel_t, mel_p),
            }
            if row["clip"] < int(cfg["eval_wavs"]):
                _write_wav(
                    out_dir / "wavs" / f"{row['clip']:03d}_generated.wav", deg, sample_rate_hz
                )
                _write_wav(
                    out_dir / "wavs" / f"{row['clip']:03d}_reference.wav", ref, sample_rate_hz
                )
            rows.append(row)
    if not rows:
        raise TrainingError("the test data yielded no clips to score")
    summary: dict[str, float] = {}
    for key in rows[0]:
        if key == "clip":
            continue
        values = np.array([r[key] for r in rows], dtype=np.float64)
        summary[key] = float(np.nanmean(values)) if np.isfinite(values).any() else float("nan")
    summary["clips"] = float(len(rows))
    return summary, rows


def _sync_scores(
    model, spec_, loader, cfg, device
) -> tuple[dict[str, float], list[dict[str, Any]]]:
    from lipflow.models import metrics

    scores, labels = [], []
    for batch in loader:
        s, y = spec_.predict(model, _to_device(batch, device))
        scores.append(s.float().cpu().numpy())
        labels.append(y.cpu().numpy())
    if not scores:
        raise TrainingError("the test data yielded no pairs to score")
    s, y = np.concatenate(scores), np.concatenate(labels)
    summary = {
        "eer": metrics.equal_error_rate(y, s),
        "auc": metrics.roc_auc(y, s),
        "ap": metrics.average_precision(y, s),
        "pairs": float(len(y)),
        "genuine_pairs": float(y.sum()),
    }
    folds = int(cfg["folds"])
    if min(int(y.sum()), int(len(y) - y.sum())) >= folds:
        summary.update(metrics.kfold_scores(y, s, folds=folds, seed=int(cfg["seed"])))
    rows = [
        {"pair": i, "label": int(lab), "score": float(sc)}
        for i, (lab, sc) in enumerate(zip(y, s, strict=True))
    ]
    return summary, rows


def evaluate(
    model_name: str,
    checkpoint: Path,
    test_loader: Iterable[dict[str, torch.Tensor]],
    cfg: Mapping[str, Any],
    out_dir: Path,
    metrics_path: Path | None = None,
    mel_params: Mapping[str, Any] | None = None,
    inverse_mel: Callable[[np.ndarray, Mapping[str, Any]], np.ndarray] | None = None,
    sample_rate_hz: int = 16000,
) -> dict[str, float]:
    """Score a trained model on the test clips; write and return the summary.

    Speech models (lip2wav, gabor): each predicted mel becomes a waveform through
    ``inverse_mel`` (default ``lipflow.tasks.features.audio.inv_mel_spectrogram``, Griffin-Lim,
    with ``mel_params`` = ``features.mel`` of params.yaml) and is scored against the clip's
    real audio: STOI, ESTOI, both PESQs, MCD, mel L1 and spectrogram correlation, averaged
    over clips (NaN scores, e.g. PESQ on silence, are left out of the mean). The first
    ``cfg['eval_wavs']`` generated and reference wavs go to ``out_dir/wavs``. The sync
    model: EER, AUC and AP over the test pairs, plus their mean/std over ``cfg['folds']``
    folds. Writes ``metrics_path`` (default ``out_dir/metrics.json``, the DVC metric) and
    ``out_dir/per_clip.csv``.
    """
    spec_ = spec(model_name)
    out_dir = Path(out_dir)
    device = select_device(cfg.get("device"))
    model, trained_cfg = load_model(model_name, checkpoint, device)
    run_cfg = {**COMMON_DEFAULTS, **trained_cfg, **dict(cfg)}
    seed_everything(int(run_cfg["seed"]))  # the attention prenet keeps dropout at inference
    if spec_.kind == "speech":
        if mel_params is None:
            from lipflow.tasks.settings.project import load_params, section

            mel_params = section(load_params(), "features.mel")
        if inverse_mel is None:
            from lipflow.tasks.features.audio import inv_mel_spectrogram as inverse_mel
        summary, rows = _speech_scores(
            model,
            spec_,
            test_loader,
            run_cfg,
            out_dir,
            inverse_mel,
            mel_params,
            device,
            sample_rate_hz,
        )
    else:
        summary, rows = _sync_scores(model, spec_, test_loader, run_cfg, device)
    summary = {"model": model_name, **summary}
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_bytes_atomic(out_dir / "per_clip.csv", buf.getvalue().encode())
    target = Path(metrics_path) if metrics_path else out_dir / "metrics.json"
    write_bytes_atomic(target, json.dumps(_json_safe(summary), indent=2, sort_keys=True).encode())
    return summary
