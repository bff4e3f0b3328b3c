"""Download flows: one Prefect task per speaker, composing ``lipflow.tasks.corpora``.

The flows only fan out and record; the work (resumable fetch, safe extraction, raw
manifests) lives in ``tasks/`` and is tested there without a server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prefect import flow, task

from lipflow.flows.retries import retry_unless_deterministic
from lipflow.tasks.corpora import grid, lip2wav, local, youtube
from lipflow.tasks.corpora.youtube import SpeakerDownload


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


@task(name="download-youtube-speaker", retries=1, retry_delay_seconds=30,
      retry_condition_fn=retry_unless_deterministic,
      task_run_name="download-{corpus}-{speaker}")
def download_youtube_speaker_task(corpus: str, speaker: str, root: Path,
                                  options: dict[str, Any]) -> SpeakerDownload:
    """One speaker's videos through yt-dlp (Lip2Wav lists or a user's list)."""
    if corpus == "lip2wav":
        return lip2wav.download_lip2wav_speaker(speaker, root, **options)
    list_file = options.pop("list_file")
    language = options.pop("language")
    return youtube.download_youtube_speaker(list_file, speaker, language, root, corpus=corpus,
                                            **options)


@flow(name="download-lip2wav", log_prints=True)
def download_lip2wav_flow(speakers: list[str], root: Path,
                          options: dict[str, Any]) -> list[SpeakerDownload]:
    """Download Lip2Wav speakers from their published lists; one task per speaker."""
    speakers = lip2wav.validate_speakers(speakers)
    results = [download_youtube_speaker_task("lip2wav", s, Path(root), dict(options))
               for s in speakers]
    publish_download_table(results)
    return results


@flow(name="download-youtube", log_prints=True)
def download_youtube_flow(list_file: Path, speaker: str, language: str, root: Path,
                          corpus: str = "youtube",
                          options: dict[str, Any] | None = None) -> SpeakerDownload:
    """Download a user's own speaker from a list of YouTube ids or URLs."""
    opts = {**(options or {}), "list_file": Path(list_file), "language": language}
    result = download_youtube_speaker_task(corpus, speaker, Path(root), opts)
    publish_download_table([result])
    return result


@flow(name="register-local", log_prints=True)
def register_local_flow(src_dir: Path, speaker: str, language: str, root: Path,
                        corpus: str = "local", require_audio: bool = True) -> Path:
    """Register videos already on disk as a corpus speaker (raw manifest, no network)."""
    return local.register_local(Path(src_dir), speaker, language, Path(root), corpus=corpus,
                                require_audio=require_audio)


def publish_download_table(results: list[SpeakerDownload]) -> None:
    """A Prefect table artifact: per speaker, videos downloaded/skipped/failed and why."""
    from prefect.artifacts import create_table_artifact

    rows = []
    for result in results:
        counts = result.summary.counts()
        rows.append({"speaker": result.speaker, **counts,
                     "failures": "; ".join(f"{r.video_id}: {r.reason}"
                                           for r in result.summary.failed)})
    try:
        create_table_artifact(rows, key="youtube-downloads",
                              description="Videos downloaded, skipped and failed per speaker")
    except Exception:  # noqa: BLE001 - an artifact is a courtesy, never a failure
        pass
