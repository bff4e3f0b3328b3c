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
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from lipflow.models.checkpoints import BEST_NAME, LAST_NAME, read_checkpoint
from lipflow.models.outputs import json_safe
from lipflow.models.registry import COMMON_DEFAULTS, spec
from lipflow.models.runtime import TrainingError, seed_everything, select_device, to_device
from lipflow.tasks.common.atomic import atomic_path, write_bytes_atomic


def load_model(model_name: str, checkpoint: Path, device: torch.device | None = None):
    """Rebuild a model from a checkpoint written by
    :func:`lipflow.models.training.train` (with the config it was trained with)."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        last = checkpoint.with_name(LAST_NAME)
        if checkpoint.name == BEST_NAME and last.is_file():
            raise TrainingError(
                f"no {BEST_NAME} beside {last}: training never saw a finite validation loss, "
                f"so no epoch was kept as best; give train.split a val part with clips and "
                f"run lipflow train {model_name} again"
            )
        raise TrainingError(f"no checkpoint at {checkpoint}; run lipflow train {model_name} first")
    device = device or select_device()
    ckpt = read_checkpoint(checkpoint, model_name, device)
    model = spec(model_name).build(ckpt["cfg"]).to(device)
    try:
        model.load_state_dict(ckpt["model"])
    except (RuntimeError, ValueError) as err:  # e.g. a gabor checkpoint from before `level`
        raise TrainingError(
            f"{checkpoint} does not fit today's {model_name} network; run lipflow train "
            f"{model_name} again ({str(err).splitlines()[0]})"
        ) from None
    model.eval()
    return model, ckpt["cfg"]


def clip_wav_name(clip_id: str) -> str:
    """The wav file name of a clip: its id with every run of unsafe characters as ``_``
    (``s1/bbaf2n/0`` -> ``s1_bbaf2n_0.wav``)."""
    stem = re.sub(r"[^A-Za-z0-9.-]+", "_", str(clip_id)).strip("_.")
    if not stem:
        raise TrainingError(f"clip id {clip_id!r} gives no usable file name")
    return f"{stem}.wav"


def _write_pcm(path: Path, pcm: np.ndarray, sample_rate_hz: int) -> None:
    from scipy.io import wavfile

    with atomic_path(path) as tmp:
        wavfile.write(tmp, sample_rate_hz, np.asarray(pcm, dtype=np.int16))


@dataclass(frozen=True)
class ClipInfo:
    """What names a test clip in the outputs; empty strings where the loader has no manifest."""

    clip_id: str
    speaker: str
    transcript: str
    corpus: str


def _clip_info(clips: pd.DataFrame | None, batch: Mapping[str, Any], i: int,
               n: int) -> ClipInfo:
    """The manifest row of item ``i`` of ``batch`` (``clip_index`` into the dataset's clips);
    a loader without one (in-memory items) gets ``clip_<n>`` and no transcript."""
    if clips is None or "clip_index" not in batch:
        return ClipInfo(f"clip_{n:04d}", "", "", "")
    row = clips.iloc[int(batch["clip_index"][i])]

    def text(key: str) -> str:
        value = row.get(key)
        return "" if value is None or (isinstance(value, float) and math.isnan(value)) else str(
            value)

    return ClipInfo(text("clip_id"), text("speaker"), " ".join(text("transcript").split()),
                    text("corpus"))


def _flat(prefix: str, scores: Mapping[str, Any]) -> dict[str, Any]:
    return {f"{prefix}.{k}": v for k, v in scores.items()}


def _aggregate(records: list[dict[str, Any]], keys: list[str]) -> dict[str, Any]:
    """Mean of each metric over the clips that scored it, with ``<metric>_clips`` (how many)
    and ``<metric>_excluded`` (``{reason: count}``; empty when none was left out), nested
    by the dotted metric name (``lip2wav_protocol.pesq`` -> ``{"lip2wav_protocol": {...}}``).
    """
    from lipflow.models.metrics import Excluded

    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in records if isinstance(r[key], float)]
        reasons = Counter(r[key].reason for r in records if isinstance(r[key], Excluded))
        *parents, leaf = key.split(".")
        node = out
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = float(np.mean(values)) if values else float("nan")
        node[f"{leaf}_clips"] = len(values)
        node[f"{leaf}_excluded"] = dict(sorted(reasons.items()))
    return out


def _corpus_wer(records: list[dict[str, Any]], wer_key: str) -> dict[str, Any]:
    """Pooled WER of one row kind over the clips with a transcript (the others counted)."""
    from lipflow.models.asr import word_error_rate

    scored = [r for r in records if r["transcript"]]
    missing = len(records) - len(scored)
    value = (word_error_rate([r["transcript"] for r in scored], [r["hypothesis"] for r in scored])
             if scored else float("nan"))
    return {wer_key: value, f"{wer_key}_clips": len(scored),
            f"{wer_key}_excluded": {"no_transcript": missing} if missing else {}}


SIGNAL_KEYS = [f"{p}.{m}" for p in ("lip2wav_protocol", "vcagan_protocol")
               for m in ("stoi", "estoi", "pesq")]
MEL_KEYS = ["mcd_db", "mel_l1", "spectrogram_correlation"]
#: Scores of a model that predicts the NSL auditory spectrogram (the Gabor models): corr2
#: on it, the paper's metric; the summary adds ``aud_corr2_outliers_removed``, the mean
#: over the clips within 2 standard deviations, as the paper averaged.
AUDITORY_KEYS = ["aud_corr2"]
#: Why a model's mel scores are left out: it predicts another representation (VCA-GAN: a
#: linear spectrogram), which MCD and mel L1 against the stored mel cannot compare.
NOT_A_MEL = "predicts_no_lipflow_mel"
#: Row kinds: the model, the stored audio itself, Griffin-Lim of the ground-truth mel.
ROW_KINDS = ("model", "ground_truth", "griffin_lim")


def _signal_scores(ref: np.ndarray, deg: np.ndarray, sample_rate_hz: int) -> dict[str, Any]:
    from lipflow.models import metrics

    return {**_flat("lip2wav_protocol", metrics.lip2wav_protocol(ref, deg, sample_rate_hz)),
            **_flat("vcagan_protocol", metrics.vcagan_protocol(ref, deg, sample_rate_hz))}


def _mel_scores(mel_t: np.ndarray, mel_p: np.ndarray, ln: Mapping[str, float]) -> dict[str, Any]:
    from lipflow.models import metrics

    corr = metrics.spectrogram_correlation(mel_t, mel_p)
    return {
        "mcd_db": metrics.mel_cepstral_distortion(
            metrics.lip2wav_mel_to_ln(mel_t, **ln), metrics.lip2wav_mel_to_ln(mel_p, **ln)),
        "mel_l1": metrics.mel_l1(mel_t, mel_p),
        "spectrogram_correlation": (corr if math.isfinite(corr)
                                    else metrics.Excluded("constant_spectrogram")),
    }


def _auditory_scores(spec_t: np.ndarray, spec_p: np.ndarray) -> dict[str, Any]:
    from lipflow.models import metrics

    corr = metrics.spectrogram_correlation(spec_t, spec_p)
    return {"aud_corr2": corr if math.isfinite(corr)
            else metrics.Excluded("constant_spectrogram")}


def _speech_scores(
    model, spec_, loader, cfg, out_dir, inverse_mel, mel_params, device, sample_rate_hz
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    from lipflow.models import asr, metrics
    from lipflow.models.speech import valid_rows, valid_samples

    ln = {
        k: float(mel_params[k])
        for k in ("max_abs_value", "min_level_db", "ref_level_db")
        if k in mel_params
    }
    clips = getattr(getattr(loader, "dataset", None), "clips", None)
    wav_dir = out_dir / "wavs"
    shutil.rmtree(wav_dir, ignore_errors=True)  # only this run's clips, named by clip id
    names: dict[str, str] = {}
    pending: list[tuple[ClipInfo, dict[str, np.ndarray]]] = []
    records: dict[str, list[dict[str, Any]]] = {kind: [] for kind in ROW_KINDS}
    to_waveform = inverse_mel or spec_.to_waveform
    auditory = getattr(spec_.module, "SPECTROGRAM", "") == "auditory"
    for batch in loader:
        pred = spec_.predict(model, to_device(batch, device)).float().cpu().numpy()
        lipflow_mel = spec_.target is None  # else the model's own representation
        true = (batch["mel"] if lipflow_mel else spec_.target(to_device(batch, device)))
        true = true.float().cpu().numpy()
        wavs = batch["wav"].numpy()
        for i in range(len(pred)):
            info = _clip_info(clips, batch, i, len(pending))
            name = clip_wav_name(info.clip_id)
            if name in names:
                raise TrainingError(f"clips {names[name]!r} and {info.clip_id!r} both write "
                                    f"{name}; clip ids must stay distinct once sanitised")
            names[name] = info.clip_id
            m = valid_rows(batch, i, pred.shape[1])
            mel_p, mel_t = pred[i, :m], true[i, :m]
            n = valid_samples(batch, i)
            ref = wavs[i, :n].astype(np.float64) / 32768.0
            signals = {
                "model": np.asarray(to_waveform(mel_p, mel_params), dtype=np.float64)[:n],
                "ground_truth": ref,
                "griffin_lim": np.asarray(to_waveform(mel_t, mel_params), dtype=np.float64)[:n],
            }
            for kind, deg in signals.items():
                row = {"kind": kind, "clip_id": info.clip_id, "speaker": info.speaker,
                       "transcript": info.transcript, "hypothesis": "",
                       **_signal_scores(ref, deg, sample_rate_hz)}
                if kind == "model":
                    row.update(_mel_scores(mel_t, mel_p, ln) if lipflow_mel else
                               dict.fromkeys(MEL_KEYS, metrics.Excluded(NOT_A_MEL)))
                    if auditory:
                        row.update(_auditory_scores(mel_t, mel_p))
                records[kind].append(row)
            pcm = metrics.peak_normalise_int16(signals["model"])
            _write_pcm(wav_dir / name, pcm, sample_rate_hz)  # the signal the Lip2Wav row scored
            pending.append((info, {"model": pcm, "ground_truth": wavs[i, :n],
                                   "griffin_lim": metrics.peak_normalise_int16(
                                       signals["griffin_lim"])}))
    if not pending:
        raise TrainingError("the test data yielded no clips to score")
    corpora = {info.corpus for info, _ in pending}
    grammar: asr.Grammar = "grid" if corpora == {"grid"} else "none"
    wer_key = asr.metric_name(grammar)
    for kind in ROW_KINDS:
        for row, (info, pcms) in zip(records[kind], pending, strict=True):
            if info.transcript:
                row["hypothesis"] = asr.transcribe(pcms[kind], grammar)
                row[f"clip_{wer_key}"] = asr.word_error_rate([info.transcript],
                                                             [row["hypothesis"]])
    recogniser = "grid grammar" if grammar == "grid" else "general English LM"
    summary: dict[str, Any] = {"clips": len(pending), "asr": f"pocketsphinx, {recogniser}"}
    summary.update(_aggregate(records["model"], SIGNAL_KEYS + MEL_KEYS
                              + (AUDITORY_KEYS if auditory else [])))
    if auditory:
        summary["aud_corr2_outliers_removed"] = metrics.outlier_trimmed_mean(
            [r["aud_corr2"] for r in records["model"] if isinstance(r["aud_corr2"], float)])
    summary.update(_corpus_wer(records["model"], wer_key))
    for kind in ROW_KINDS[1:]:
        summary[kind] = {**_aggregate(records[kind], SIGNAL_KEYS),
                         **_corpus_wer(records[kind], wer_key)}
    rows = [_csv_row(r) for kind in ROW_KINDS for r in records[kind]]
    return summary, rows


def _csv_row(record: Mapping[str, Any]) -> dict[str, Any]:
    """A per-clip record as CSV cells: an excluded score is an empty cell, its reason
    listed in ``excluded`` (``metric: reason; ...``)."""
    from lipflow.models.metrics import Excluded

    cells: dict[str, Any] = {}
    excluded = []
    for key, value in record.items():
        if isinstance(value, Excluded):
            cells[key] = ""
            excluded.append(f"{key}: {value.reason}")
        else:
            cells[key] = value
    cells["excluded"] = "; ".join(excluded)
    return cells


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
) -> dict[str, Any]:
    """Score a trained model on the test clips; write and return the summary.

    Speech models (lip2wav, gabor, gaborpic, vcagan): each predicted spectrogram becomes a waveform
    through ``inverse_mel`` (default: the model's vocoder, :attr:`ModelSpec.to_waveform`:
    Griffin-Lim of the Lip2Wav mel with ``mel_params`` = ``features.mel`` of params.yaml,
    or of VCA-GAN's linear spectrogram, or NSL ``aud2wav`` of the Gabor models' auditory
    spectrogram) and is scored against the clip's
    stored audio under both papers' protocols (:func:`lipflow.models.metrics.lip2wav_protocol`:
    peak-normalised int16, PESQ nb at 16 kHz; :func:`~lipflow.models.metrics.vcagan_protocol`:
    clipped to [-1, 1], PESQ nb at 8 kHz), plus MCD, mel L1, spectrogram correlation and
    the WER of :mod:`lipflow.models.asr` (GRID grammar when every clip is GRID, else the
    general LM, reported as ``wer_general_lm``). The same signal scores are computed for two
    reference rows on the same clips, ``ground_truth`` (the stored audio) and
    ``griffin_lim`` (the vocoder on the ground-truth spectrogram, ``batch["mel"]`` or the
    model's :attr:`ModelSpec.target`: the vocoder's ceiling), so a
    model's score reads against its upper bounds. Means are over the clips that could be
    scored (a model predicting no Lip2Wav mel has its MCD / mel L1 / correlation excluded
    as :data:`NOT_A_MEL`; the Gabor models, predicting the NSL auditory spectrogram, get
    :data:`AUDITORY_KEYS` instead: ``aud_corr2`` per clip and, in the summary, its mean
    and ``aud_corr2_outliers_removed``, the paper's average); ``<metric>_clips`` counts
    them and ``<metric>_excluded`` counts the rest by reason (no NaN is dropped silently).
    ``out_dir/wavs/<clip id>.wav`` holds, for every test clip, the model's waveform exactly
    as the Lip2Wav protocol scored it; ``out_dir/clips.csv`` has one row per clip and row kind.

    The sync model: EER, AUC and AP over the test pairs, plus their mean/std over
    ``cfg['folds']`` folds, one row per pair in ``out_dir/pairs.csv``. Both write
    ``metrics_path`` (default ``out_dir/metrics.json``, the DVC metric).
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
    fields = list(dict.fromkeys(key for row in rows for key in row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    table = "clips.csv" if spec_.kind == "speech" else "pairs.csv"
    write_bytes_atomic(out_dir / table, buf.getvalue().encode())
    target = Path(metrics_path) if metrics_path else out_dir / "metrics.json"
    write_bytes_atomic(target, json.dumps(json_safe(summary), indent=2, sort_keys=True).encode())
    return summary
