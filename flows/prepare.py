"""The prepare flow: raw manifest -> per-video clips -> one Zarr store + clip manifest per speaker.

One task per video (never per frame), fanned out on the configured task runner; work
moves between tasks as paths and small rows, never as arrays. The store is written
whole at the end (``lipflow.tasks.contracts.store.write_store``), through a temp path and a rename.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.futures import as_completed

from lipflow.flows.artifacts import publish_speaker_table, speaker_rows
from lipflow.flows.progress import ProgressArtifact, bar
from lipflow.flows.retries import retry_unless_deterministic
from lipflow.tasks import __version__
from lipflow.tasks.contracts.clip_manifest import write_clip_manifest
from lipflow.tasks.contracts.raw_manifest import file_sha256, read_raw_manifest
from lipflow.tasks.contracts.store import (
    DEFAULT_CODEC,
    DEFAULT_FRAMES_PER_CHUNK,
    manifest_path_for,
    write_store,
)
from lipflow.tasks.prepare.video import VideoSettings, order_rows, preprocess_video


def git_revision(root: Path) -> str:
    """The commit the code and params came from (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


@task(name="preprocess-video", retries=1, retry_condition_fn=retry_unless_deterministic,
      task_run_name="preprocess-{record[speaker]}-{record[utterance_id]}")
def preprocess_video_task(record: dict[str, Any], raw_root: Path, work_dir: Path,
                          settings: VideoSettings) -> list[dict[str, Any]]:
    """Clips of one video (rows; kept rows point at their clip file in ``work_dir``)."""
    return preprocess_video(record, raw_root, work_dir, settings)


@task(name="write-speaker-store", task_run_name="write-store-{speaker}")
def write_speaker_store(speaker: str, rows: Sequence[Mapping[str, Any]], store: Path,
                        attrs: Mapping[str, Any], store_params: Mapping[str, Any],
                        progress: bool | None) -> Path:
    """Order the rows, pack kept clips into the store, then write the manifest beside it."""
    ordered = order_rows(rows)
    kept = [Path(r["clip_path"]) for r in ordered if r["kept"]]
    write_store(kept, store, attrs=attrs,
                clips_per_shard=int(store_params.get("clips_per_shard", 64)),
                compressor_level=int(store_params.get("compressor_level", 3)),
                codec=str(store_params.get("codec", DEFAULT_CODEC)),
                frames_per_chunk=int(store_params.get("frames_per_chunk",
                                                      DEFAULT_FRAMES_PER_CHUNK)),
                progress=progress)
    write_clip_manifest([{k: v for k, v in r.items() if k != "clip_path"} for r in ordered],
                        manifest_path_for(store))
    return store


def preprocess_videos(records: Sequence[Mapping[str, Any]], raw_root: Path, work_dir: Path,
                      settings: VideoSettings, *, label: str,
                      progress: bool | None) -> list[dict[str, Any]]:
    """Submit one task per video on the current flow's task runner; gather their rows.

    A terminal bar and a Prefect progress artifact advance as videos finish (in any
    order); every video yields rows, bad ones as recorded rejections, so the batch
    never stops at the first bad file.
    """
    futures = [preprocess_video_task.submit(dict(r), Path(raw_root), Path(work_dir), settings)
               for r in records]
    tracker = ProgressArtifact(len(futures), f"{label}: videos preprocessed")
    rows: list[dict[str, Any]] = []
    for future in bar(as_completed(futures), total=len(futures), desc=f"preprocess {label}",
                      progress=progress, unit="video"):
        rows.extend(future.result())
        tracker.advance()
    return rows


@flow(name="preprocess", log_prints=True)
def preprocess_flow(raw_manifest: Path, raw_root: Path, work_dir: Path, settings: VideoSettings,
                    progress: bool | None = None) -> list[dict[str, Any]]:
    """Preprocess every video of a raw manifest into per-clip ``.npy`` records in ``work_dir``.

    Returns clip-manifest rows (kept rows carry ``clip_path``). ``prepare`` runs the same
    steps and then packs the clips into a store; this flow stops before that, for
    inspecting clips or feeding another packer.
    """
    records = read_raw_manifest(Path(raw_manifest)).to_dict("records")
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    return preprocess_videos(records, raw_root, work_dir, settings,
                             label=Path(raw_manifest).stem, progress=progress)


@flow(name="prepare", log_prints=True)
def prepare_flow(corpus: str, speakers: list[str], raw_root: Path, features_root: Path,
                 settings: dict[str, VideoSettings], params_record: dict[str, Any],
                 project: Path, progress: bool | None = None) -> list[Path]:
    """Prepare each speaker's store from its raw manifest (``raw_root/manifests/<spk>.parquet``).

    ``settings`` maps speaker -> :class:`VideoSettings` (fps, crop region, params);
    ``params_record`` is what the store's attributes record as the params that made it.
    """
    stores = []
    revision = git_revision(project)
    for speaker in speakers:
        raw_manifest = Path(raw_root) / "manifests" / f"{speaker}.parquet"
        records = read_raw_manifest(raw_manifest).to_dict("records")
        store = Path(features_root) / f"{speaker}.zarr"
        store.parent.mkdir(parents=True, exist_ok=True)
        work_dir = Path(tempfile.mkdtemp(prefix=f".{speaker}.work.", dir=store.parent))
        try:
            rows = preprocess_videos(records, Path(raw_root), work_dir, settings[speaker],
                                     label=f"{corpus}/{speaker}", progress=progress)
            attrs = {
                "corpus": corpus,
                "speaker": speaker,
                "fps": settings[speaker].fps,
                "params": params_record,
                "lipflow_version": __version__,
                "git_revision": revision,
                "raw_manifest_sha256": file_sha256(raw_manifest),
                "created_by": f"lipflow prepare {corpus} {speaker}",
            }
            stores.append(write_speaker_store(
                speaker, rows, store, attrs, settings[speaker].features.get("store", {}),
                progress))
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
    publish_speaker_table(speaker_rows([manifest_path_for(s) for s in stores]),
                          key=f"{corpus}-speakers")
    return stores


@flow(name="prepare-from-params", log_prints=True)
def prepare_from_params_flow(corpus: str, speakers: list[str] | None = None,
                             root: str | None = None) -> list[Path]:
    """``prepare`` with everything taken from ``params.yaml`` (for deployments and the UI)."""
    from lipflow.tasks.prepare.settings import corpus_roots, speaker_settings
    from lipflow.tasks.settings.project import load_params, project_root

    project = Path(root) if root else project_root()
    params = load_params(project / "params.yaml")
    speakers = speakers or list((params.get(corpus) or {}).get("speakers") or [])
    raw_root, features_root = corpus_roots(params, corpus, None, None)
    per_speaker = {s: speaker_settings(params, corpus, s) for s in speakers}
    record = per_speaker[speakers[0]][1] if speakers else {}
    return prepare_flow(corpus, speakers, raw_root, features_root,
                        {s: v[0] for s, v in per_speaker.items()}, record, project)
