"""The prepare flow: raw manifest -> batches of videos -> a Zarr store + clip manifest per speaker.

Composition only: one task per batch of about ``runtime.task_seconds_of_video`` seconds of
video (:mod:`lipflow.tasks.prepare.batches`; never per frame, nor per 3-s GRID video,
whose Prefect bookkeeping cost as much as its preprocessing), fanned out on the
configured task runner. Work moves between tasks as paths and small rows, never as
arrays. Each finished batch leaves a result file beside the store, so a rerun after an
interruption computes only the missing batches (:mod:`lipflow.tasks.prepare.resume`).
What to prepare, the provenance each store records and the packing live in
:mod:`lipflow.tasks.prepare.speaker`.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prefect import flow, task
from prefect.cache_policies import NO_CACHE

from lipflow.flows.artifacts import publish_speaker_table, speaker_rows
from lipflow.flows.progress import ProgressArtifact, bar
from lipflow.flows.retries import retry_unless_deterministic
from lipflow.tasks.contracts.raw_manifest import read_raw_manifest
from lipflow.tasks.prepare.batches import (
    Batch,
    plan_batches,
    preprocess_batch,
    preprocess_batch_bytes,
    video_seconds,
)
from lipflow.tasks.prepare.results import save_result
from lipflow.tasks.prepare.resume import (
    claim_work_dir,
    release_work_dir,
    remove_results,
    result_path,
)
from lipflow.tasks.prepare.speaker import (
    SpeakerAssembly,
    SpeakerJob,
    finished_batches,
    git_revision,
    pack_store,
    plan_speaker,
    speaker_jobs,
    store_attributes,
)
from lipflow.tasks.prepare.summary import PrepareSummary, summarise
from lipflow.tasks.prepare.video import VideoSettings, preprocess_video
from lipflow.tasks.settings.paths import clip_manifest_path
from lipflow.tasks.settings.schema import Runtime

# Why NO_CACHE: a batch is resumed by its own content key (tasks/prepare/resume.py), so
# Prefect's input hashing and result records would be bookkeeping for nothing.
_BATCH_TASK = {"retries": 1, "retry_condition_fn": retry_unless_deterministic,
               "cache_policy": NO_CACHE}


@dataclass(frozen=True)
class PreparedSpeaker:
    """A written store and the summary of the run that wrote it."""

    store: Path | str  # a URL for a store on object storage
    summary: PrepareSummary


@task(name="preprocess-batch", task_run_name="preprocess-{batch.label}", **_BATCH_TASK)
def preprocess_batch_task(batch: Batch, raw_root: Path, work_dir: Path, settings: VideoSettings,
                          target: Path) -> Path:
    """One batch's videos into one result file at ``target`` (clips compressed, rows)."""
    return preprocess_batch(batch, raw_root, work_dir, settings, target)


@task(name="preprocess-batch", task_run_name="preprocess-{batch.label}", **_BATCH_TASK)
def preprocess_batch_bytes_task(batch: Batch, raw_root: Path, settings: VideoSettings) -> bytes:
    """One batch's result as bytes, made in the worker's own temp dir (no shared disk)."""
    return preprocess_batch_bytes(batch, raw_root, settings)


@task(name="preprocess-videos", task_run_name="preprocess-{batch.label}", **_BATCH_TASK)
def preprocess_clips_task(batch: Batch, raw_root: Path, work_dir: Path,
                          settings: VideoSettings) -> list[dict[str, Any]]:
    """One batch's videos into per-clip ``.npy`` records in ``work_dir``; their rows."""
    rows: list[dict[str, Any]] = []
    for record in batch.records:
        rows.extend(preprocess_video(record, raw_root, work_dir, settings))
    return rows


@task(name="write-speaker-store", task_run_name="write-store-{job.speaker}")
def write_speaker_store(job: SpeakerJob, rows: Sequence[Mapping[str, Any]],
                        attrs: Mapping[str, Any], progress: bool | None) -> Path | str:
    """Pack this speaker's kept clips into its store and write the clip manifest beside it."""
    return pack_store(job, rows, attrs, progress)


def _gather(futures: dict[Any, Batch], videos: int, done_videos: int, *, label: str,
            progress: bool | None,
            keep: Callable[[Batch, Any], Any] | None = None) -> dict[int, Any]:
    """Each batch future's result (or what ``keep`` makes of it) by batch index, advancing
    the bar and the progress artifact by a batch's videos as it finishes (in any order).

    A future is dropped once its result is kept, so results sent back as bytes are held
    one at a time, not a whole speaker's at the end.
    """
    tracker = ProgressArtifact(videos, f"{label}: videos preprocessed")
    tracker.advance(done_videos)
    results: dict[int, Any] = {}
    with_bar = bar(_completed(futures), total=len(futures), desc=f"preprocess {label}",
                   progress=progress, unit="batch")
    for future, batch in with_bar:
        value = future.result()
        results[batch.index] = keep(batch, value) if keep else value
        del future, value
        tracker.advance(len(batch.records))
    return results


def _completed(futures: dict[Any, Batch]) -> Iterator[tuple[Any, Batch]]:
    """``(future, batch)`` as each finishes, taking each out of ``futures`` as it goes.

    Why not ``prefect.futures.as_completed``: it keeps every future (and so every
    finished result) referenced until the last one is done, which for results sent back
    as bytes would hold a whole speaker's store in the driver's memory.
    """
    finished: queue.Queue[Any] = queue.Queue()
    for future in futures:
        # Prefect's own rule for "done": its callback when the future has one
        register = getattr(future, "_add_prefect_done_callback", None) or future.add_done_callback
        register(finished.put)
    for _ in range(len(futures)):
        future = finished.get()
        yield future, futures.pop(future)


def runner_shares_disk() -> bool:
    """Whether this flow's tasks run on this machine (a local thread or process pool).

    Those workers write their batch results straight beside the store; any other runner
    (Dask, Ray: workers may be other machines, with their own disks) sends them back as
    task results (bytes) that the driver saves, so a worker needs no path of the driver.
    """
    from prefect.context import FlowRunContext
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    context = FlowRunContext.get()
    runner = context.task_runner if context else None
    return isinstance(runner, ThreadPoolTaskRunner | ProcessPoolTaskRunner)


def prepare_speaker(job: SpeakerJob, revision: str, task_seconds: float,
                    progress: bool | None) -> PreparedSpeaker:
    """Batches not yet finished -> results beside the store -> shards -> the store; then
    clean up (:class:`~lipflow.tasks.prepare.speaker.SpeakerAssembly`)."""
    started = time.perf_counter()
    work_dir = claim_work_dir(job.work_store)
    try:
        plan = plan_speaker(job, task_seconds)
        assembly = SpeakerAssembly(job, plan.batches, store_attributes(job, revision),
                                   work_dir)
        consumed = assembly.consumed
        done = finished_batches(job, [b for b in plan.batches if b.index not in consumed])
        todo = [b for b in plan.batches if b.index not in done and b.index not in consumed]
        waiting = {b.index for b in todo}
        done_videos = sum(len(b.records) for b in plan.batches if b.index not in waiting)
        for index in sorted(done):
            assembly.add(index, done[index])
        if len(todo) == 1:  # one task: starting a worker pool would cost more than it gives
            (batch,) = todo
            assembly.add_result(batch.index, preprocess_batch_task(
                batch, job.raw_root, work_dir, job.settings,
                result_path(job.work_store, batch.key)))
            ProgressArtifact(plan.videos, f"{job.label}: videos preprocessed").advance(
                plan.videos)
        elif runner_shares_disk():
            futures = {preprocess_batch_task.submit(b, job.raw_root, work_dir, job.settings,
                                                    result_path(job.work_store, b.key)): b
                       for b in todo}
            _gather(futures, plan.videos, done_videos, label=job.label, progress=progress,
                    keep=lambda b, path: assembly.add_result(b.index, path))
        else:  # workers elsewhere: results come back as bytes and are saved here
            futures = {preprocess_batch_bytes_task.submit(b, job.raw_root, job.settings): b
                       for b in todo}
            _gather(futures, plan.videos, done_videos, label=job.label, progress=progress,
                    keep=lambda b, data: assembly.add_result(b.index, save_result(
                        data, result_path(job.work_store, b.key), work_dir)))
        store, rows = assembly.write(progress)
        remove_results(job.work_store, work_dir)
    finally:
        release_work_dir(work_dir)
    summary = summarise(job.speaker, plan.videos, rows, plan.video_seconds,
                        time.perf_counter() - started, len(plan.batches),
                        len(plan.batches) - len(todo))
    print(summary.resume_line())
    return PreparedSpeaker(store, summary)


def _task_seconds(task_seconds: float | None) -> float:
    return float(task_seconds) if task_seconds else float(Runtime().task_seconds_of_video)


@flow(name="preprocess", log_prints=True)
def preprocess_flow(raw_manifest: Path, raw_root: Path, work_dir: Path, settings: VideoSettings,
                    progress: bool | None = None,
                    task_seconds: float | None = None) -> list[dict[str, Any]]:
    """Preprocess every video of a raw manifest into per-clip ``.npy`` records in ``work_dir``.

    Returns clip-manifest rows (kept rows carry ``clip_path``). ``prepare`` runs the same
    steps in the same batches and then packs the clips into a store; this flow stops
    before that, for inspecting clips or feeding another packer (``work_dir`` is the
    caller's: nothing here removes it or resumes from it).
    """
    records = read_raw_manifest(Path(raw_manifest)).to_dict("records")
    Path(work_dir).mkdir(parents=True, exist_ok=True)
    seconds = [video_seconds(r, Path(raw_root)) for r in records]
    batches = plan_batches(records, seconds, _task_seconds(task_seconds))
    futures = {preprocess_clips_task.submit(b, Path(raw_root), Path(work_dir), settings): b
               for b in batches}
    results = _gather(futures, len(records), 0, label=Path(raw_manifest).stem, progress=progress)
    return [row for index in sorted(results) for row in results[index]]


@flow(name="prepare", log_prints=True)
def prepare_flow(jobs: list[SpeakerJob], project: Path, progress: bool | None = None,
                 task_seconds: float | None = None) -> list[PreparedSpeaker]:
    """Prepare each speaker's store from its raw manifest; each records its own settings.

    ``task_seconds``: seconds of video per task (default: the schema's
    ``runtime.task_seconds_of_video``; the CLI passes params' value or ``--task-seconds``).
    """
    revision = git_revision(project)
    prepared = [prepare_speaker(job, revision, _task_seconds(task_seconds), progress)
                for job in jobs]
    if jobs:
        publish_speaker_table(speaker_rows([clip_manifest_path(p.store) for p in prepared]),
                              key=f"{jobs[0].corpus}-speakers")
    return prepared


@flow(name="prepare-from-params", log_prints=True)
def prepare_from_params_flow(corpus: str, speakers: list[str] | None = None,
                             root: str | None = None) -> list[Path | str]:
    """``prepare`` with everything taken from ``params.yaml`` (for deployments and the UI)."""
    from lipflow.tasks.prepare.batches import task_seconds
    from lipflow.tasks.settings.project import load_params, project_root

    project = Path(root) if root else project_root()
    params = load_params(project / "params.yaml")
    speakers = speakers or list((params.get(corpus) or {}).get("speakers") or [])
    prepared = prepare_flow(speaker_jobs(params, corpus, speakers), project,
                            task_seconds=task_seconds(params))
    return [p.store for p in prepared]
