"""Lip2Wav: five lecturers filmed for hours each, downloaded from YouTube by video id.

Lip2Wav is an English single-speaker lip-to-speech corpus of about 120 hours: ``chem``
(chemistry lectures), ``chess`` (chess commentary), ``dl`` (deep-learning lectures),
``eh`` (ethical-hacking lectures) and ``hs`` (hardware-security lectures). Only the
video-id lists are distributed; the videos themselves are fetched from YouTube. Cite it as

    K R Prajwal, Rudrabha Mukhopadhyay, Vinay P. Namboodiri and C. V. Jawahar, "Learning
    Individual Speaking Styles for Accurate Lip to Speech Synthesis", CVPR 2020.
    Lists: https://github.com/Rudrabha/Lip2Wav, folder ``Dataset/<speaker>/`` (MIT).

The lists are committed at ``tasks/corpora/lip2wav_lists/<speaker>/{train,val,test}.txt``
(see ``SOURCES.md`` there; splits are by whole video). Quirks of the published files,
handled by :mod:`lipflow.tasks.fetch.video_lists`: ``chess/test.txt`` has an empty line,
``eh/val.txt``
and ``eh/test.txt`` lack a final newline. Videos that have since gone private or been
removed fail with yt-dlp's reason and are listed in ``ROOT/manifests/<speaker>.failures.json``.

Layout: ``ROOT/<speaker>/<video_id>.mp4`` (whole videos, height capped at
``max_height_px``), ``ROOT/manifests/<speaker>.parquet`` (raw manifest, corpus
``lip2wav``, language ``en``, split from the list). The original work downloaded the best
single file with audio and video at its native rate (30 fps; ``dl`` 25); the per-speaker
crops and frame rates are preprocessing presets in ``params.yaml`` (``lip2wav.presets``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.corpora.youtube import SpeakerDownload, download_speaker_videos
from lipflow.tasks.fetch.video_lists import (
    LIP2WAV_SPEAKERS,
    check_lip2wav_speaker,
    lip2wav_video_ids,
)

CORPUS = "lip2wav"
LANGUAGE = "en"

__all__ = [
    "CORPUS",
    "LANGUAGE",
    "LIP2WAV_SPEAKERS",
    "download_lip2wav",
    "download_lip2wav_speaker",
    "lip2wav_split_of",
]


def lip2wav_split_of(speaker: str) -> dict[str, str]:
    """``{video_id: split}`` over all three lists of ``speaker``."""
    return dict(lip2wav_video_ids(speaker, "all"))


def validate_speakers(speakers: Iterable[str]) -> list[str]:
    """Return the speakers in order without repeats; ConfigError for an unknown one."""
    if isinstance(speakers, str):
        speakers = [speakers]
    chosen = list(dict.fromkeys(check_lip2wav_speaker(s) for s in speakers))
    if not chosen:
        raise ConfigError(f"no Lip2Wav speaker given; choose from {', '.join(LIP2WAV_SPEAKERS)}")
    return chosen


def download_lip2wav_speaker(
    speaker: str,
    root: Path,
    *,
    split: str = "test",
    limit: int | None = None,
    **download_options: Any,
) -> SpeakerDownload:
    """Download one speaker's videos of ``split`` (first ``limit``); manifest + summary.

    ``download_options`` as in :func:`lipflow.tasks.fetch.youtube.download_videos`.
    """
    items = lip2wav_video_ids(check_lip2wav_speaker(speaker), split, limit)
    splits = lip2wav_split_of(speaker)
    return download_speaker_videos(
        items, speaker, LANGUAGE, root, corpus=CORPUS, split_of=splits.get,
        **download_options,
    )


def download_lip2wav(
    speakers: Iterable[str],
    root: Path,
    *,
    split: str = "test",
    limit: int | None = None,
    **download_options: Any,
) -> list[Path]:
    """Download Lip2Wav ``speakers`` into ``root``; return their raw manifests, in order.

    ``split`` is ``train``, ``val``, ``test`` or ``all``; ``limit`` (None or 0 = all)
    takes the first N videos of each speaker's list. Every argument is checked before any
    request. Videos already downloaded are not requested again. For the per-speaker
    summary tables use :func:`download_lip2wav_speaker`.
    """
    chosen = validate_speakers(speakers)
    for speaker in chosen:  # validate split/limit for all before downloading any
        lip2wav_video_ids(speaker, split, limit)
    return [
        download_lip2wav_speaker(
            speaker, root, split=split, limit=limit, **download_options
        ).manifest
        for speaker in chosen
    ]
