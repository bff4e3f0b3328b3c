"""Model-agnostic evaluation: rebuild a trained model and score it on the test clips.

Like training, it only talks to the registry interface (``predict``), choosing the scores
by the model's kind: speech models (lip2wav, gabor) are scored on the waveform their mel
turns into, the sync model on its pair scores (see :func:`evaluate`).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lipflow.models.checkpoints import read_checkpoint
from lipflow.models.outputs import json_safe
from lipflow.models.registry import COMMON_DEFAULTS, spec
from lipflow.models.runtime import TrainingError, seed_everything, select_device, to_device
from lipflow.tasks.common.atomic import atomic_path, write_bytes_atomic


def load_model(model_name: str, checkpoint: Path, device: torch.device | None = None):
    """Rebuild a model from a checkpoint written by
    :func:`lipflow.models.training.train` (with the config it was trained with)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise TrainingError(f"no checkpoint at {checkpoint}; run lipflow train {model_name} first")
    device = device or select_device()
    ckpt = read_checkpoint(checkpoint, model_name, device)
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
        pred = spec_.predict(model, to_device(batch, device)).float().cpu().numpy()
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
        s, y = spec_.predict(model, to_device(batch, device))
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
    ``inverse_mel`` (default ``lipflow.tasks.features.mel.inv_mel_spectrogram``, Griffin-Lim,
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
            from lipflow.tasks.features.mel import inv_mel_spectrogram as inverse_mel
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
    write_bytes_atomic(target, json.dumps(json_safe(summary), indent=2, sort_keys=True).encode())
    return summary
