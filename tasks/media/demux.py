"""Video frames and audio blocks of one file from one open and one demuxing pass.

Why: preprocessing reads a video clip by clip, frames and audio together. Reading them
with :func:`lipflow.tasks.media.video.iter_frames` and
:func:`lipflow.tasks.media.audio.iter_audio_blocks` would open and demux the file once per
stream; :func:`clip_streams` opens it once and shares the packets through
:class:`lipflow.tasks.media.container._PacketRouter`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

import numpy as np

from lipflow.tasks.media.audio import _blocks, _resampled_chunks
from lipflow.tasks.media.container import (
    Crop,
    VideoFrame,
    _audio_stream,
    _open,
    _PacketRouter,
    _stream_start_s,
    _video_stream,
)
from lipflow.tasks.media.video import _check_frame_args, _frames


@contextlib.contextmanager
def clip_streams(
    path: str | os.PathLike[str],
    fps: float,
    block_samples: int,
    sample_rate_hz: int = 16000,
    *,
    crop: Crop | None = None,
    pixels: str = "rgb",
    require_audio: bool = True,
) -> Iterator[tuple[Iterator[VideoFrame], Iterator[np.ndarray]]]:
    """``(frames, audio blocks)`` of ``path`` from one open file and one demuxing pass.

    ``frames`` is :func:`~lipflow.tasks.media.video.iter_frames` (``fps``, ``crop``,
    ``pixels``) and ``audio blocks`` is :func:`~lipflow.tasks.media.audio.iter_audio_blocks`
    (``block_samples`` at ``sample_rate_hz``), both from the
    start, on the same clock, pulled in any order: what preprocessing reads clip by clip,
    for one container open and one demux instead of one per stream. Opening raises
    MediaError for a file that is not media or lacks a video stream, or lacks an audio
    stream while ``require_audio``. Without ``require_audio`` a file with no audio stream
    is read for its frames, and ``audio blocks`` is an endless run of empty int16 blocks:
    every clip that asks for its block learns it has 0 samples of audio (pull one per
    clip; never ``list()`` it).
    """
    _check_frame_args(fps, pixels)
    if block_samples <= 0 or sample_rate_hz <= 0:
        raise ValueError("block_samples and sample_rate_hz must be positive")
    with _open(path) as container:
        v = _video_stream(container, path)
        if require_audio or container.streams.audio:
            a = _audio_stream(container, path)
            router = _PacketRouter(container, (v, a), path)
        else:
            a, router = None, _PacketRouter(container, (v,), path)
        zero_s = _stream_start_s(v, container)
        frames = _frames(container, v, router.packets(v), path, fps, crop=crop, pixels=pixels)
        if a is None:
            blocks = _empty_blocks()
        else:
            chunks = _resampled_chunks(container, a, router.packets(a), path, zero_s,
                                       sample_rate_hz, 0, seeked=False)
            blocks = _blocks(chunks, block_samples)
        try:
            yield frames, blocks
        finally:
            frames.close()
            blocks.close()


def _empty_blocks() -> Iterator[np.ndarray]:
    """The audio blocks of a file without audio: empty, for as many clips as ask."""
    while True:
        yield np.zeros(0, dtype=np.int16)
