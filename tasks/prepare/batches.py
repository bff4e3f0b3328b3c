"""Videos packed into tasks by their duration: the unit the prepare flow hands a worker.

Why batches: a 3-s GRID video preprocesses in ~0.1 s of CPU, while one Prefect task
(task-run record, state changes, API calls, result handling) costs a sizeable fraction
of that again; a whole GRID speaker as 1000 tasks ran at ~5.4x realtime per core,
against 26.5x for :func:`~lipflow.tasks.prepare.video.preprocess_video` in a plain loop.
A task of ``runtime.task_seconds_of_video`` seconds (default 192: 64 GRID videos, one
store shard of 3-s clips) makes Prefect's share small, while a long Lip2Wav video, alone
longer than that, still gets a task of its own so the pool stays busy. Why a shard's
worth: the driver cuts a shard once the batches before it are done, so what waits on
disk is the batches finished ahead of a slower one; on GRID s1 (2 workers) that peaked at
108 MB with 64-video batches against 170 MB with 100 (a shard is ~35 MB).

Why the container header: durations come from :func:`lipflow.tasks.media.probe.probe`,
which reads no frames (~1 ms a video), so the driver plans without decoding. A video
whose header cannot be read counts 0 s and still goes into a batch: its worker records
the rejection row, as it would for any bad file.

Batches are deterministic: raw-manifest order, greedy packing, nothing that depends on
the runner or on timing. Their clip rows are ordered again when the store is written
(:func:`~lipflow.tasks.prepare.video.order_rows`), so the store and clip manifest are the
same for any batch size.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from lipflow.tasks.common.errors import ConfigError, LipflowError
from lipflow.tasks.media.probe import probe
from lipflow.tasks.prepare.results import BatchResultWriter, store_encoding
from lipflow.tasks.prepare.resume import batch_key, code_digest, settings_text
from lipflow.tasks.prepare.video import VideoSettings, preprocess_video
from lipflow.tasks.settings.schema import Runtime
from lipflow.tasks.settings.validation import typed_section


@dataclass(frozen=True)
class Batch:
    """Consecutive raw-manifest videos preprocessed by one task.

    ``index`` is the batch's place in the speaker's plan, ``seconds`` the header
    durations it holds, ``key`` the content key its result is stored under
    (:func:`lipflow.tasks.prepare.resume.batch_key`).
    """

    index: int
    records: tuple[Mapping[str, Any], ...]
    seconds: float
    key: str = ""

    @property
    def label(self) -> str:
        """``<speaker>-<index>`` for task-run names."""
        speaker = self.records[0]["speaker"] if self.records else "empty"
        return f"{speaker}-{self.index:04d}"


def task_seconds(params: Mapping[str, Any], override: float | None = None) -> float:
    """Seconds of video per task: the CLI's value, else ``runtime.task_seconds_of_video``."""
    if override is not None:
        if isinstance(override, bool) or not override > 0:
            raise ConfigError(f"--task-seconds must be a positive number, got {override!r}")
        return float(override)
    runtime = typed_section(Runtime, params.get("runtime"), "runtime")
    return float(runtime.task_seconds_of_video)


def video_seconds(record: Mapping[str, Any], raw_root: Path) -> float:
    """The header duration of one raw-manifest video; 0 when its header cannot be read."""
    try:
        return max(0.0, float(probe(Path(raw_root) / record["video_path"]).duration_s))
    except LipflowError:
        return 0.0


def plan_batches(records: Sequence[Mapping[str, Any]], seconds: Sequence[float],
                 limit_s: float) -> list[Batch]:
    """Pack ``records`` in order into batches of at most ``limit_s`` seconds each.

    Greedy: a video joins the current batch unless that would take it past ``limit_s``;
    a video longer than ``limit_s`` is a batch of its own. ``seconds[i]`` is the
    duration of ``records[i]``.
    """
    if len(records) != len(seconds):
        raise ValueError(f"{len(records)} records but {len(seconds)} durations")
    if not limit_s > 0:
        raise ConfigError(f"task seconds of video must be positive, got {limit_s!r}")
    batches: list[Batch] = []
    current: list[Mapping[str, Any]] = []
    total = 0.0
    for record, duration in zip(records, seconds, strict=True):
        if current and total + duration > limit_s:
            batches.append(Batch(len(batches), tuple(current), total))
            current, total = [], 0.0
        current.append(record)
        total += duration
    if current:
        batches.append(Batch(len(batches), tuple(current), total))
    return batches


def keyed(batches: Sequence[Batch], settings: VideoSettings) -> list[Batch]:
    """``batches`` with their content keys (:func:`lipflow.tasks.prepare.resume.batch_key`)."""
    text, code = settings_text(settings), code_digest()
    return [replace(b, key=batch_key(b.records, text, code)) for b in batches]


def preprocess_batch(batch: Batch, raw_root: Path, work_dir: Path, settings: VideoSettings,
                     target: Path) -> Path:
    """Preprocess a batch's videos one by one into one result file at ``target``.

    Each kept clip goes straight from memory into the result, already encoded as the
    store's chunks (:mod:`lipflow.tasks.prepare.results`; no per-clip files); the file
    is written in ``work_dir`` and renamed to ``target`` when complete, so an
    interruption leaves no result, only temp work the next run removes. Temp disk: the
    one result being written. Bad videos become rejection rows here, like any other
    (never an exception).
    """
    partial = Path(work_dir) / f"{batch.key or batch.label}.partial"
    rows: list[dict[str, Any]] = []
    try:
        with BatchResultWriter(partial, store_encoding(settings.features)) as out:
            for record in batch.records:
                rows.extend(preprocess_video(record, raw_root, work_dir, settings,
                                             save=out.add_clip))
            return out.finish(rows, target)
    finally:
        partial.unlink(missing_ok=True)


def preprocess_batch_bytes(batch: Batch, raw_root: Path, settings: VideoSettings) -> bytes:
    """:func:`preprocess_batch` for a worker that shares no disk with the driver.

    The result is written in a folder of the worker's own temp dir (``TMPDIR``) and
    returned as bytes, which the runner carries back to the driver (a Dask or Ray task
    result); the driver saves them beside the store
    (:func:`lipflow.tasks.prepare.results.save_result`). The worker needs only the raw
    videos (``raw_root``: a shared path) and leaves nothing behind.
    """
    with tempfile.TemporaryDirectory(prefix="lipflow-batch-") as work:
        result = preprocess_batch(batch, raw_root, Path(work), settings,
                                  Path(work) / "result.zip")
        return result.read_bytes()
