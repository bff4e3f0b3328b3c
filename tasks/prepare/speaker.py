"""One speaker's store: what to prepare, the provenance it records, and packing its clips.

A :class:`SpeakerJob` is everything the prepare flow needs for one speaker, built from
``params.yaml`` by :func:`speaker_jobs`. Each job carries its *own* effective settings and
params record (a Lip2Wav preset applied), so a multi-speaker ``lipflow prepare lip2wav chem
chess`` records chem's 96 px faces in chem's store and chess's 48 px in chess's, and
``lipflow audit STORE`` reports what really made that store.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lipflow.tasks import __version__
from lipflow.tasks.contracts.clip_manifest import write_clip_manifest
from lipflow.tasks.contracts.raw_manifest import file_sha256, read_raw_manifest
from lipflow.tasks.contracts.store_writer import write_store
from lipflow.tasks.prepare.settings import speaker_settings
from lipflow.tasks.prepare.video import VideoSettings, order_rows
from lipflow.tasks.settings.paths import (
    clip_manifest_path,
    corpus_roots,
    raw_manifest_path,
    store_path,
)
from lipflow.tasks.settings.schema import Store
from lipflow.tasks.settings.validation import typed_section


@dataclass(frozen=True)
class SpeakerJob:
    """One speaker to prepare: its inputs, its output, and the settings recorded with it."""

    corpus: str
    speaker: str
    raw_root: Path
    features_root: Path
    settings: VideoSettings
    params_record: Mapping[str, Any] = field(default_factory=dict)

    @property
    def raw_manifest(self) -> Path:
        return raw_manifest_path(self.raw_root, self.speaker)

    @property
    def store(self) -> Path:
        return store_path(self.features_root, self.speaker)

    @property
    def label(self) -> str:
        return f"{self.corpus}/{self.speaker}"


def speaker_jobs(params: Mapping[str, Any], corpus: str, speakers: Sequence[str],
                 raw_root: Path | None = None, features_root: Path | None = None,
                 fps: float | None = None) -> list[SpeakerJob]:
    """A job per speaker, each with its own effective settings (presets applied).

    Raises :class:`~lipflow.tasks.common.errors.ConfigError` for an unknown preset or a
    user corpus without ``fps`` before any work starts.
    """
    raw, out = corpus_roots(dict(params), corpus, raw_root, features_root)
    jobs = []
    for speaker in speakers:
        settings, record = speaker_settings(dict(params), corpus, speaker, fps)
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


def work_dir_for(job: SpeakerJob) -> Path:
    """A fresh temp folder beside the store for the per-clip records of this run."""
    job.store.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{job.speaker}.work.", dir=job.store.parent))


def remove_work_dir(work_dir: Path) -> None:
    shutil.rmtree(work_dir, ignore_errors=True)


def pack_store(job: SpeakerJob, rows: Sequence[Mapping[str, Any]], attrs: Mapping[str, Any],
               progress: bool | None) -> Path:
    """Order the rows, pack kept clips into the store, then write the manifest beside it."""
    ordered = order_rows(rows)
    kept = [Path(r["clip_path"]) for r in ordered if r["kept"]]
    store = typed_section(Store, job.settings.features.get("store"), "features.store")
    write_store(kept, job.store, attrs=attrs, clips_per_shard=store.clips_per_shard,
                compressor_level=store.compressor_level, codec=store.codec,
                frames_per_chunk=store.frames_per_chunk, progress=progress)
    write_clip_manifest([{k: v for k, v in r.items() if k != "clip_path"} for r in ordered],
                        clip_manifest_path(job.store))
    return job.store
