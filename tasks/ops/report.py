"""The dataset report: one HTML page with PNG figures, built from manifests and stores.

``lipflow report [--out DIR]`` writes ``DIR/index.html`` plus its figures:

* clips and minutes of kept video per speaker and split;
* rejected clips by reason (from the clip manifests' ``reject_reason``);
* a histogram of per-clip face detection rates;
* a contact sheet of mouth crops per speaker (a few clips x frames from the store);
* a mel spectrogram from a store next to the mel of its Griffin-Lim resynthesis
  (``lipflow.tasks.features.mel.inv_mel_spectrogram``), plus the resynthesised audio;
* when ``metrics/*.json`` exist, their values as a table.

Everything is read from the files the pipeline already writes (clip manifests, Zarr
stores, metrics), so the report can be rebuilt from a ``dvc pull`` on any machine.
Figures use matplotlib's Agg backend: no display needed. Each file is written to a temp
path and renamed, and ``index.html`` last, so a half-built report is never shown.
"""

from __future__ import annotations

import html
import io
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lipflow.tasks.common.atomic import atomic_path, write_bytes_atomic
from lipflow.tasks.common.errors import LipflowError

#: How many clips and frames per clip a contact sheet shows.
CONTACT_CLIPS = 4
CONTACT_FRAMES = 6


class ReportError(LipflowError):
    """Nothing to report on, or an input the report cannot read."""


# --------------------------------------------------------------------------- inputs


def manifest_paths(project_root: Path, params: Mapping[str, Any] | None = None) -> list[Path]:
    """Clip manifests (``<features_root>/<speaker>.parquet`` with a ``.zarr`` beside it).

    Features roots come from each corpus section of ``params`` (``features_root``); any
    other folder under ``data/features/`` is searched too, for user corpora.
    """
    roots: list[Path] = []
    for conf in (params or {}).values():
        if isinstance(conf, Mapping) and isinstance(conf.get("features_root"), str):
            root = Path(conf["features_root"])
            roots.append(root if root.is_absolute() else project_root / root)
    base = project_root / "data" / "features"
    if base.is_dir():
        roots += [p for p in sorted(base.iterdir()) if p.is_dir()]
    found: dict[Path, None] = {}
    for root in roots:
        for path in sorted(root.glob("*.parquet")) if root.is_dir() else []:
            if path.with_suffix(".zarr").is_dir():
                found[path.resolve()] = None
    return list(found)


def load_clips(paths: Sequence[Path]) -> pd.DataFrame:
    """All clip-manifest rows of ``paths`` in one frame (contract section 3 columns)."""
    from lipflow.tasks.contracts.clip_manifest import read_clip_manifest

    if not paths:
        raise ReportError("no clip manifests found (data/features/<corpus>/<speaker>.parquet); "
                          "run `lipflow prepare` (or `dvc pull`) first")
    frames = [read_clip_manifest(p) for p in paths]
    return pd.concat(frames, ignore_index=True)


def speaker_summary(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per (corpus, speaker): clips kept and rejected, minutes kept, detection rate.

    Minutes count each kept clip's span (``end_s - start_s``); ``rejected_by_reason`` maps
    each reason to its count. Detection rate is the mean over clips that have one.
    """
    rows = []
    for (corpus, speaker), group in clips.groupby(["corpus", "speaker"], sort=True):
        kept = group[group["kept"]]
        rejected = group[~group["kept"]]
        reasons = rejected["reject_reason"].fillna("unknown").value_counts()
        rate = group["detection_rate"].dropna()
        rows.append({
            "corpus": corpus,
            "speaker": speaker,
            "clips_kept": int(len(kept)),
            "clips_rejected": int(len(rejected)),
            "rejected_by_reason": {str(k): int(v) for k, v in reasons.items()},
            "minutes": round(float((kept["end_s"] - kept["start_s"]).sum()) / 60.0, 3),
            "mean_detection_rate": round(float(rate.mean()), 4) if len(rate) else None,
        })
    return pd.DataFrame(rows, columns=["corpus", "speaker", "clips_kept", "clips_rejected",
                                       "rejected_by_reason", "minutes", "mean_detection_rate"])


def quality_summary(clips: pd.DataFrame) -> pd.DataFrame:
    """One row per (corpus, speaker): the clip manifest's quality signals over kept clips.

    Means of ``mouth_occluded_frac`` and ``duplicate_frame_frac``; the median AV offset
    and the share of clips more than one frame off (docs/contracts.md section 3); clips
    rejected as a corrupt video stream. Signals a clip lacks (null) are left out.
    """
    rows = []
    for (corpus, speaker), group in clips.groupby(["corpus", "speaker"], sort=True):
        kept = group[group["kept"]]
        occluded = kept["mouth_occluded_frac"].dropna()
        repeats = kept["duplicate_frame_frac"].dropna()
        offsets = kept["av_offset_frames"].dropna()
        corrupt = group["reject_reason"].fillna("").str.startswith("corrupt video stream")
        rows.append({
            "corpus": corpus,
            "speaker": speaker,
            "mean_mouth_occluded_frac": round(float(occluded.mean()), 4) if len(occluded)
            else None,
            "mean_duplicate_frame_frac": round(float(repeats.mean()), 4) if len(repeats)
            else None,
            "median_av_offset_frames": float(offsets.median()) if len(offsets) else None,
            "av_offset_over_1_frame": round(float((offsets.abs() > 1).mean()), 4)
            if len(offsets) else None,
            "corrupt_video_clips": int(corrupt.sum()),
        })
    return pd.DataFrame(rows, columns=["corpus", "speaker", "mean_mouth_occluded_frac",
                                       "mean_duplicate_frame_frac", "median_av_offset_frames",
                                       "av_offset_over_1_frame", "corrupt_video_clips"])


def figure_av_offset(clips: pd.DataFrame, target: Path) -> Path:
    """Histogram of kept clips' estimated audio-visual offsets (frames)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    offsets = clips.loc[clips["kept"], "av_offset_frames"].dropna()
    ax.hist(offsets, bins=np.arange(-15.5, 16.5, 1.0))
    ax.set_xlabel("audio after video by (frames)")
    ax.set_ylabel("clips")
    ax.set_title(f"estimated audio-visual offset ({len(offsets)} clips)")
    return _save(fig, target)


def load_metrics(project_root: Path) -> pd.DataFrame:
    """``metrics/*.json`` flattened to (file, metric, value) rows; empty when none exist."""
    from lipflow.tasks.ops.audit import flatten

    rows = []
    for path in sorted((project_root / "metrics").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as err:
            raise ReportError(f"metrics file {path} is not readable JSON: {err}") from err
        if isinstance(data, Mapping):
            rows += [{"file": path.name, "metric": k, "value": v}
                     for k, v in flatten(data).items()]
    return pd.DataFrame(rows, columns=["file", "metric", "value"])


# --------------------------------------------------------------------------- figures


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, target: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    _pyplot().close(fig)
    write_bytes_atomic(target, buffer.getvalue())
    return target


def _label(row: Mapping[str, Any]) -> str:
    return f"{row['corpus']}/{row['speaker']}"


def figure_clips_minutes(clips: pd.DataFrame, target: Path) -> Path:
    """Bars: kept clips and minutes per speaker, stacked by split."""
    plt = _pyplot()
    kept = clips[clips["kept"]].copy()
    kept["who"] = kept["corpus"] + "/" + kept["speaker"]
    kept["split"] = kept["split"].fillna("unsplit")
    kept["minutes"] = (kept["end_s"] - kept["start_s"]) / 60.0
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, (value, title) in zip(axes, (("clip_id", "kept clips"), ("minutes", "minutes")),
                                  strict=True):
        agg = "count" if value == "clip_id" else "sum"
        table = kept.pivot_table(index="who", columns="split", values=value, aggfunc=agg,
                                 fill_value=0)
        if table.empty:
            ax.text(0.5, 0.5, "no kept clips", ha="center", va="center")
        else:
            table.plot.bar(stacked=True, ax=ax, rot=45)
        ax.set_title(f"{title} per speaker and split")
        ax.set_xlabel("")
    return _save(fig, target)


def figure_rejections(clips: pd.DataFrame, target: Path) -> Path:
    """Horizontal bars: rejected clips by reason."""
    plt = _pyplot()
    reasons = clips.loc[~clips["kept"], "reject_reason"].fillna("unknown").value_counts()
    fig, ax = plt.subplots(figsize=(9, max(2.0, 0.45 * len(reasons) + 1)))
    if reasons.empty:
        ax.text(0.5, 0.5, "no clips were rejected", ha="center", va="center")
        ax.set_axis_off()
    else:
        ax.barh([r[:70] for r in reasons.index[::-1]], reasons.values[::-1])
        ax.set_xlabel("clips")
    ax.set_title("rejections by reason")
    return _save(fig, target)


def figure_detection_rate(clips: pd.DataFrame, target: Path) -> Path:
    """Histogram of per-clip face detection rates (kept and rejected)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.5))
    for kept, label in ((True, "kept"), (False, "rejected")):
        rates = clips.loc[clips["kept"] == kept, "detection_rate"].dropna()
        if len(rates):
            ax.hist(rates, bins=np.linspace(0, 1, 21), alpha=0.7, label=label)
    ax.set_xlabel("fraction of frames with a detected face")
    ax.set_ylabel("clips")
    ax.set_title("face detection rate")
    if ax.get_legend_handles_labels()[0]:
        ax.legend()
    return _save(fig, target)


def figure_contact_sheet(store: Path, title: str, target: Path) -> Path:
    """A grid of mouth crops: up to CONTACT_CLIPS clips (rows) x CONTACT_FRAMES frames."""
    import zarr

    plt = _pyplot()
    mouth = zarr.open_group(store, mode="r")["mouth"]
    valid = zarr.open_group(store, mode="r")["valid_frames"]
    n = min(int(mouth.shape[0]), CONTACT_CLIPS)
    rows = max(n, 1)
    fig, axes = plt.subplots(rows, CONTACT_FRAMES, figsize=(1.6 * CONTACT_FRAMES, 1.4 * rows),
                             squeeze=False)
    for r in range(rows):
        frames = np.asarray(mouth[r]) if r < n else None
        usable = int(valid[r]) if r < n else 0
        picks = np.linspace(0, max(usable - 1, 0), CONTACT_FRAMES).round().astype(int)
        for c, ax in enumerate(axes[r]):
            ax.set_axis_off()
            if frames is not None and usable > 0:
                ax.imshow(frames[picks[c]], cmap="gray", vmin=0, vmax=255)
                if r == 0:
                    ax.set_title(f"frame {picks[c]}", fontsize=8)
    if n == 0:
        axes[0][0].text(0.0, 0.5, "store holds no clips", transform=axes[0][0].transAxes)
    fig.suptitle(f"mouth crops: {title}")
    return _save(fig, target)


def figure_mel_resynthesis(store: Path, mel_params: Mapping[str, Any] | None,
                           target: Path, wav_target: Path | None = None) -> Path:
    """A stored mel next to the mel of its Griffin-Lim resynthesis (and the audio)."""
    import zarr

    from lipflow.tasks.features.mel import inv_mel_spectrogram, mel_spectrogram

    plt = _pyplot()
    mel = np.asarray(zarr.open_group(store, mode="r")["mel"][0], dtype=np.float32)
    wav = inv_mel_spectrogram(mel, mel_params)
    again = mel_spectrogram(np.clip(wav, -1.0, 1.0), mel_params)
    if wav_target is not None:
        import scipy.io.wavfile

        rate = int((mel_params or {}).get("sample_rate_hz", 16000))
        buffer = io.BytesIO()
        pcm = (np.clip(wav, -1.0, 1.0) * 32767).astype(np.int16)
        scipy.io.wavfile.write(buffer, rate, pcm)
        write_bytes_atomic(wav_target, buffer.getvalue())
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), sharey=True)
    for ax, data, title in ((axes[0], mel, "stored mel"),
                            (axes[1], again, "mel of Griffin-Lim resynthesis")):
        image = ax.imshow(data.T, origin="lower", aspect="auto", vmin=-4, vmax=4, cmap="magma")
        ax.set_title(title)
        ax.set_xlabel("frame")
    axes[0].set_ylabel("mel band")
    fig.colorbar(image, ax=axes, fraction=0.025)
    return _save(fig, target)


# --------------------------------------------------------------------------- page


def _table_html(frame: pd.DataFrame) -> str:
    shown = frame.copy()
    for col in shown.columns:
        shown[col] = shown[col].map(
            lambda v: ", ".join(f"{k}: {n}" for k, n in v.items()) if isinstance(v, dict)
            else v)
    return shown.to_html(index=False, border=0, classes="table", na_rep="-", escape=True)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>lipflow dataset report</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1150px; color: #222; }}
h1 {{ margin-bottom: 0.2em; }} h2 {{ border-bottom: 1px solid #ccc; padding-top: 0.6em; }}
img {{ max-width: 100%; display: block; margin: 0.5em 0; }}
table.table {{ border-collapse: collapse; font-size: 0.9em; }}
table.table td, table.table th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: left; }}
.meta {{ color: #666; font-size: 0.9em; }}
</style></head><body>
<h1>lipflow dataset report</h1>
<p class="meta">{meta}</p>
{body}
</body></html>
"""


def _img(name: str, alt: str) -> str:
    return f'<img src="{html.escape(name)}" alt="{html.escape(alt)}">'


def build_report(project_root: Path, out_dir: Path,
                 params: Mapping[str, Any] | None = None) -> Path:
    """Write ``out_dir/index.html`` and its PNG figures; return the HTML path.

    ``params`` defaults to the project's ``params.yaml`` (it names the features roots and
    the mel settings for the resynthesis); a missing file means defaults.
    """
    project_root, out_dir = Path(project_root), Path(out_dir)
    if params is None:
        from lipflow.tasks.settings.project import load_params

        params_file = project_root / "params.yaml"
        params = load_params(params_file) if params_file.is_file() else {}
    paths = manifest_paths(project_root, params)
    clips = load_clips(paths)
    summary = speaker_summary(clips)
    out_dir.mkdir(parents=True, exist_ok=True)

    sections: list[str] = []
    sections.append("<h2>Speakers</h2>" + _table_html(summary))
    sections.append("<h2>Clip quality signals</h2>" + _table_html(quality_summary(clips)))
    figure_clips_minutes(clips, out_dir / "clips_minutes.png")
    sections.append("<h2>Clips and minutes per speaker and split</h2>"
                    + _img("clips_minutes.png", "clips and minutes per speaker and split"))
    figure_rejections(clips, out_dir / "rejections.png")
    sections.append("<h2>Rejections by reason</h2>" + _img("rejections.png", "rejections"))
    figure_detection_rate(clips, out_dir / "detection_rate.png")
    sections.append("<h2>Face detection rate</h2>"
                    + _img("detection_rate.png", "detection rate histogram"))
    figure_av_offset(clips, out_dir / "av_offset.png")
    sections.append("<h2>Audio-visual offset</h2>"
                    + _img("av_offset.png", "audio-visual offset histogram"))

    sheets = ["<h2>Mouth crops</h2>"]
    first_store: Path | None = None
    for manifest in paths:
        store = manifest.with_suffix(".zarr")
        corpus = manifest.parent.name
        name = f"mouths_{corpus}_{manifest.stem}.png"
        figure_contact_sheet(store, f"{corpus}/{manifest.stem}", out_dir / name)
        sheets.append(f"<h3>{html.escape(corpus)}/{html.escape(manifest.stem)}</h3>"
                      + _img(name, f"mouth crops of {corpus}/{manifest.stem}"))
        if first_store is None and _has_clips(store):
            first_store = store
    sections.append("\n".join(sheets))

    if first_store is not None:
        mel_params = _mel_params(first_store, params)
        figure_mel_resynthesis(first_store, mel_params, out_dir / "mel_resynthesis.png",
                               out_dir / "griffin_lim.wav")
        sections.append(
            "<h2>Mel spectrogram and Griffin-Lim resynthesis</h2>"
            f"<p>First clip of <code>{html.escape(first_store.name)}</code>: its stored mel, "
            "and the mel of the waveform Griffin-Lim recovers from it.</p>"
            + _img("mel_resynthesis.png", "mel and Griffin-Lim resynthesis")
            + '<audio controls src="griffin_lim.wav"></audio>')

    metrics = load_metrics(project_root)
    if not metrics.empty:
        sections.append("<h2>Model metrics</h2>" + _table_html(metrics))

    meta = (f"{len(paths)} stores, {int(clips['kept'].sum())} kept clips, "
            f"{int((~clips['kept']).sum())} rejected; project {html.escape(str(project_root))}")
    target = out_dir / "index.html"
    with atomic_path(target) as tmp:
        tmp.write_text(PAGE.format(meta=meta, body="\n".join(sections)), encoding="utf-8")
    return target


def _has_clips(store: Path) -> bool:
    import zarr

    return int(zarr.open_group(store, mode="r")["mel"].shape[0]) > 0


def _mel_params(store: Path, params: Mapping[str, Any]) -> dict[str, Any]:
    """The mel settings that made the store (its attrs), over the project's params."""
    import zarr

    recorded = dict(zarr.open_group(store, mode="r").attrs).get("params") or {}
    project = ((params.get("features") or {}).get("mel") or {}) if params else {}
    stored = (recorded.get("features") or {}).get("mel") or {}
    return {**project, **stored}
