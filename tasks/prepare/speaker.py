"""One speaker's store: what to prepare, the provenance it records, and packing its clips.

A :class:`SpeakerJob` is everything the prepare flow needs for one speaker, built from
``params.yaml`` by :func:`speaker_jobs`. Each job carries its *own* effective settings and
params record (a Lip2Wav preset applied), so a multi-speaker ``lipflow prepare lip2wav chem
chess`` records chem's 96 px faces in chem's store and chess's 48 px in chess's, and
``lipflow audit STORE`` reports what really made that store. :func:`plan_speaker` cuts a
job's videos into batches (:mod:`lipflow.tasks.prepare.batches`) and
:func:`finished_batches` finds those an interrupted run already wrote
(:mod:`lipflow.tasks.prepare.resume`).
"""

from __future__ import annotations

import functools
import hashlib
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lipflow.tasks import __version__
from lipflow.tasks.common.object_store import Location, is_url
from lipflow.tasks.contracts.clip_manifest import write_clip_manifest
from lipflow.tasks.contracts.clip_record import CLIP_READ_ERRORS, load_clip
from lipflow.tasks.contracts.raw_manifest import file_sha256, read_raw_manifest
from lipflow.tasks.contracts.store_chunks import (
    ChunkSource,
    ClipChunkEncoder,
    EncodedClip,
    write_store_from_chunks,
    write_store_from_shards,
)
from lipflow.tasks.contracts.store_layout import StoreError
from lipflow.tasks.contracts.store_publish import mark_published
from lipflow.tasks.prepare.batches import Batch, keyed, plan_batches, video_seconds
from lipflow.tasks.prepare.results import RESULT_READ_ERRORS, read_rows, store_encoding
from lipflow.tasks.prepare.resume import other_runs_alive, result_path
from lipflow.tasks.prepare.settings import speaker_settings
from lipflow.tasks.prepare.shard_stream import ShardStream, streamable, utterance_key
from lipflow.tasks.prepare.video import VideoSettings, order_rows
from lipflow.tasks.settings.paths import (
    clip_manifest_path,
    corpus_roots,
    raw_manifest_path,
    store_path,
)


@dataclass(frozen=True)
class SpeakerJob:
    """One speaker to prepare: its inputs, its output, and the settings recorded with it."""

    corpus: str
    speaker: str
    raw_root: Path
    features_root: Location  # a local folder, or an object-store URL (s3://bucket/prefix)
    settings: VideoSettings
    params_record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def raw_manifest(self) -> Path:
        return raw_manifest_path(self.raw_root, self.speaker)

    @property
    def store(self) -> Location:
        return store_path(self.features_root, self.speaker)

    @property
    def work_store(self) -> Path:
        """The local path the run's batch results and work folders sit beside
        (:mod:`lipflow.tasks.prepare.resume`): the store itself when it is local; for a
        store at a URL, a stand-in under the system temp folder named by the URL's hash,
        so a rerun on this machine finds an interrupted run's batches."""
        if not is_url(self.store):
            return Path(self.store)
        digest = hashlib.sha256(str(self.store).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / "lipflow-prepare" / digest / f"{self.speaker}.zarr"

    @property
    def label(self) -> str:
        return f"{self.corpus}/{self.speaker}"


def speaker_jobs(params: Mapping[str, Any], corpus: str, speakers: Sequence[str],
                 raw_root: Path | None = None, features_root: Location | None = None,
                 fps: float | None = None, detector: str | None = None) -> list[SpeakerJob]:
    """A job per speaker, each with its own effective settings (presets applied).

    Raises :class:`~lipflow.tasks.common.errors.ConfigError` for an unknown preset or a
    bad ``--detector`` before any work starts.
    """
    raw, out = corpus_roots(dict(params), corpus, raw_root, features_root)
    jobs = []
    for speaker in speakers:
        settings, record = speaker_settings(dict(params), corpus, speaker, fps, detector)
        jobs.append(SpeakerJob(corpus, speaker, raw, out, settings, record))
    return jobs


def video_records(job: SpeakerJob) -> list[dict[str, Any]]:
    """The raw manifest's rows for this speaker (one per source video)."""
    return read_raw_manifest(job.raw_manifest).to_dict("records")


def git_revision(project: Path) -> str:
    """The commit the code and params came from (``unknown`` outside a git checkout)."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=project, capture_output=True,
                             text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def store_attributes(job: SpeakerJob, revision: str) -> dict[str, Any]:
    """The provenance a store records (docs/contracts.md section 4): this speaker's own."""
    return {
        "corpus": job.corpus,
        "speaker": job.speaker,
        "fps": job.settings.fps,
        "params": dict(job.params_record),
        "lipflow_version": __version__,
        "git_revision": revision,
        "raw_manifest_sha256": file_sha256(job.raw_manifest),
        "created_by": f"lipflow prepare {job.corpus} {job.speaker}",
    }


def pack_store(job: SpeakerJob, rows: Sequence[Mapping[str, Any]], attrs: Mapping[str, Any],
               progress: bool | None) -> Location:
    """Order the rows, assemble the store from the kept clips' chunks, then write the
    manifest beside it.

    A kept row's ``clip_path`` is its clip inside a batch result
    (:class:`lipflow.tasks.prepare.results.BatchClip`), already encoded as store chunks:
    the store's shards are concatenated from them, nothing is decoded
    (:func:`lipflow.tasks.contracts.store_chunks.write_store_from_chunks`). It may also be
    a per-clip ``.npy`` record (``preprocess_video`` without ``save``), encoded here. A
    store at a URL is published only after its manifest is written
    (:mod:`lipflow.tasks.contracts.store_publish`).
    """
    ordered = order_rows(rows)
    encoding = store_encoding(job.settings.features)
    encoder = ClipChunkEncoder(encoding)
    kept = [_chunk_source(r["clip_path"], encoder) for r in ordered if r["kept"]]
    write_store_from_chunks(kept, job.store, attrs=attrs, encoding=encoding, progress=progress,
                            mark=False)
    manifest = clip_manifest_path(job.store)
    write_clip_manifest([{k: v for k, v in r.items() if k != "clip_path"} for r in ordered],
                        manifest)
    if is_url(job.store):
        mark_published(str(job.store), str(manifest))
    return job.store


class SpeakerAssembly:
    """Collects a speaker's finished batches (:meth:`add`, in any order) and writes its
    store and clip manifest (:meth:`write`).

    When batch order is store order (:func:`~lipflow.tasks.prepare.shard_stream.
    streamable`: videos with distinct utterance ids) and no other run of the speaker is
    alive (``work_dir`` is this run's), shards are written as batches finish
    and each batch result is deleted once its clips are in shards
    (:class:`~lipflow.tasks.prepare.shard_stream.ShardStream`): temp disk stays near the
    pool's in-flight batches. Otherwise results are kept and packed at the end
    (:func:`pack_store`). Both make the same store, byte for byte.
    """

    def __init__(self, job: SpeakerJob, batches: Sequence[Batch], attrs: Mapping[str, Any],
                 work_dir: Path) -> None:
        self.job = job
        self.attrs = dict(attrs)
        self.encoding = store_encoding(job.settings.features)
        # a run that starts beside a live one leaves the shards folder to that one
        others = functools.partial(other_runs_alive, job.work_store, work_dir)
        self.stream = (ShardStream(job.work_store, batches, self.encoding, self.attrs, others)
                       if streamable(batches) and not others() else None)
        self._rows: dict[int, list[dict[str, Any]]] = {}

    @property
    def consumed(self) -> set[int]:
        """Batches an earlier run already put into shards (their results are gone)."""
        return self.stream.consumed if self.stream is not None else set()

    def add(self, index: int, rows: list[dict[str, Any]]) -> None:
        """Batch ``index``'s rows (as :func:`~lipflow.tasks.prepare.results.read_rows`)."""
        if self.stream is not None:
            self.stream.add(index, rows)
        else:
            self._rows[index] = rows

    def add_result(self, index: int, path: Path) -> None:
        """Batch ``index``'s result file."""
        self.add(index, read_rows(path, self.encoding))

    def write(self, progress: bool | None) -> tuple[Location, list[dict[str, Any]]]:
        """The store and its clip manifest; returns the store and every row."""
        if self.stream is None:
            rows = [row for index in sorted(self._rows) for row in self._rows[index]]
            return pack_store(self.job, rows, self.attrs, progress), rows
        rows, files, kept, shapes = self.stream.finish()
        write_store_from_shards(files, kept, self.job.store, attrs=self.attrs,
                                encoding=self.encoding, shapes=shapes, mark=False)
        manifest = clip_manifest_path(self.job.store)
        write_clip_manifest(rows, manifest)
        if is_url(self.job.store):
            mark_published(str(self.job.store), str(manifest))
        self.stream.remove()
        return self.job.store, rows


def _chunk_source(value: Any, encoder: ClipChunkEncoder) -> ChunkSource:
    """A kept row's clip as a chunk source: a batch result's clip as it is, a per-clip
    record file read and encoded when its shard is assembled."""
    if callable(value):
        return value
    path = Path(value)

    def encode() -> EncodedClip:
        try:
            arrays = load_clip(path)
        except CLIP_READ_ERRORS as err:
            raise StoreError(f"per-clip file {path} is not a readable clip record: {err}") from err
        return encoder.encode(arrays, str(path))

    return encode


@dataclass(frozen=True)
class SpeakerPlan:
    """A speaker's videos cut into batches, with what the summary line needs."""

    videos: int
    video_seconds: float
    batches: list[Batch]


def plan_speaker(job: SpeakerJob, task_seconds: float) -> SpeakerPlan:
    """Batches of about ``task_seconds`` of video each, in raw-manifest order, keyed.

    Durations come from the container headers (no decoding; unreadable ones count 0).
    """
    # store order (kept clips by speaker, utterance, start) = batch order: shards can be
    # written while later batches run (lipflow.tasks.prepare.shard_stream)
    records = sorted(video_records(job), key=utterance_key)
    seconds = [video_seconds(r, job.raw_root) for r in records]
    batches = keyed(plan_batches(records, seconds, task_seconds), job.settings)
    return SpeakerPlan(len(records), float(sum(seconds)), batches)


def finished_batches(job: SpeakerJob, batches: Sequence[Batch]) -> dict[int, list[dict[str, Any]]]:
    """Rows of the batches an earlier run already finished, by batch index.

    A result that cannot be read (damaged on disk) is removed and its batch runs again.
    """
    done = {}
    for batch in batches:
        path = result_path(job.work_store, batch.key)
        if not path.is_file():
            continue
        try:
            done[batch.index] = read_rows(path, store_encoding(job.settings.features))
        except RESULT_READ_ERRORS:
            path.unlink(missing_ok=True)
    return done
