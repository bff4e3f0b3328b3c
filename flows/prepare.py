"""The prepare flow: raw manifest -> per-video clips -> one Zarr store + clip manifest per speaker.

Composition only: one task per video (never per frame), fanned out on the configured
task runner; work moves between tasks as paths and small rows, never as arrays. What to
prepare, the provenance each store records and the packing live in
:mod:`lipflow.tasks.prepare.speaker`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.futures import as_completed

from lipflow.flows.artifacts import publish_speaker_table, speaker_rows
from lipflow.flows.progress import ProgressArtifact, bar
from lipflow.flows.retries import retry_unless_deterministic
from lipflow.tasks.contracts.raw_manifest import read_raw_manifest
from lipflow.tasks.prepare.speaker import (
    SpeakerJob,
    git_revision,
    pack_store,
    remove_work_dir,
    speaker_jobs,
    store_attributes,
    video_records,
    work_dir_for,
)
from lipflow.tasks.prepare.video import VideoSettings, preprocess_video
from lipflow.tasks.settings.paths import clip_manifest_path


@task(name="preprocess-video", retries=1, retry_condition_fn=retry_unless_deterministic,
      task_run_name="preprocess-{record[speaker]}-{record[utterance_id]}")
def preprocess_video_task(record: dict[str, Any], raw_root: Path, work_dir: Path,
                          settings: VideoSettings) -> list[dict[str, Any]]:
    """Clips of one video (rows; kept rows point at their clip file in ``work_dir``)."""
    return preprocess_video(record, raw_root, work_dir, settings)


@task(name="write-speaker-store", task_run_name="write-store-{job.speaker}")
def write_speaker_store(job: SpeakerJob, rows: Sequence[Mapping[str, Any]],
                        attrs: Mapping[str, Any], progress: bool | None) -> Path:
    """Pack this speaker's kept clips into its store and write the clip manifest beside it."""
    return pack_store(job, rows, attrs, progress)


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
def prepare_flow(jobs: list[SpeakerJob], project: Path,
                 progress: bool | None = None) -> list[Path]:
    """Prepare each speaker's store from its raw manifest; each records its own settings."""
    stores = []
    revision = git_revision(project)
    for job in jobs:
        work_dir = work_dir_for(job)
        try:
            rows = preprocess_videos(video_records(job), job.raw_root, work_dir, job.settings,
                                     label=job.label, progress=progress)
            stores.append(write_speaker_store(job, rows, store_attributes(job, revision),
                                              progress))
        finally:
            remove_work_dir(work_dir)
    if jobs:
        publish_speaker_table(speaker_rows([clip_manifest_path(s) for s in stores]),
                              key=f"{jobs[0].corpus}-speakers")
    return stores


@flow(name="prepare-from-params", log_prints=True)
def prepare_from_params_flow(corpus: str, speakers: list[str] | None = None,
                             root: str | None = None) -> list[Path]:
    """``prepare`` with everything taken from ``params.yaml`` (for deployments and the UI)."""
    from lipflow.tasks.settings.project import load_params, project_root

    project = Path(root) if root else project_root()
    params = load_params(project / "params.yaml")
    speakers = speakers or list((params.get(corpus) or {}).get("speakers") or [])
    return prepare_flow(speaker_jobs(params, corpus, speakers), project)
