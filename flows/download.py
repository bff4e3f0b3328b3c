"""Download flows: one Prefect task per speaker, composing ``tasks.corpora``.

The flows only fan out and record; the work (resumable fetch, safe extraction, raw
manifests) lives in ``tasks/`` and is tested there without a server.
"""

from __future__ import annotations

from pathlib import Path

from prefect import flow, task

from flows.retries import retry_unless_deterministic
from tasks.corpora import grid


@task(name="download-grid-speaker", retries=2, retry_delay_seconds=[5, 30],
      retry_condition_fn=retry_unless_deterministic, task_run_name="download-grid-{speaker}")
def download_grid_speaker(speaker: str, root: Path, mirror: str, cache_dir: Path | None,
                          progress: bool | None) -> Path:
    """Fetch and extract one GRID speaker; returns its raw manifest path."""
    (manifest,) = grid.download_grid([speaker], root, mirror, cache_dir=cache_dir,
                                     progress=progress)
    return manifest


@flow(name="download-grid", log_prints=True)
def download_grid_flow(speakers: list[str], root: Path, mirror: str = "zenodo",
                       cache_dir: Path | None = None, progress: bool | None = None) -> list[Path]:
    """Download GRID speakers one after another (they share one alignments archive)."""
    speakers = grid.validate_speakers(speakers)
    return [download_grid_speaker(s, Path(root), mirror, cache_dir, progress) for s in speakers]
