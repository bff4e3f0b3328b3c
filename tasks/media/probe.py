"""Probe a video's container header and count its frames by decoding them.

Why two functions: :func:`probe` is cheap (no decoding) but reports what the header
claims, which is wrong often enough (GRID's MPEG-PS files claim 0 frames, some mp4 headers
claim more frames than decode) that nothing downstream relies on its counts;
:func:`count_frames` decodes every frame for the real number.
"""

from __future__ import annotations

import os

import av

from lipflow.tasks.media.container import MediaInfo, _decode, _open, _stream_start_s, _video_stream


def probe(path: str | os.PathLike[str], *, require_video: bool = True) -> MediaInfo:
    """Read the container header of ``path`` (no decoding).

    Raises MediaError for a missing, unreadable, empty or non-media file, and, unless
    ``require_video`` is false, for a file without a video stream.
    """
    with _open(path) as container:
        if require_video:
            _video_stream(container, path)
        v = container.streams.video[0] if container.streams.video else None
        a = container.streams.audio[0] if container.streams.audio else None
        if v is not None and v.duration is not None and v.time_base is not None:
            duration_s = float(v.duration * v.time_base)
        elif container.duration is not None:
            duration_s = container.duration / av.time_base
        else:
            duration_s = 0.0
        rate = (v.average_rate or v.guessed_rate or v.base_rate) if v is not None else None
        return MediaInfo(
            path=str(path),
            width=int(v.codec_context.width) if v is not None else 0,
            height=int(v.codec_context.height) if v is not None else 0,
            avg_fps=float(rate) if rate else 0.0,
            header_frames=int(v.frames or 0) if v is not None else 0,
            duration_s=duration_s,
            has_video=v is not None,
            has_audio=a is not None,
            audio_rate_hz=int(a.codec_context.sample_rate or 0) if a is not None else 0,
            audio_channels=int(a.codec_context.channels or 0) if a is not None else 0,
            video_start_s=_stream_start_s(v, container) if v is not None else 0.0,
            audio_start_s=_stream_start_s(a, container) if a is not None else 0.0,
            video_codec=v.codec_context.name if v is not None else "",
            audio_codec=a.codec_context.name if a is not None else "",
        )


def count_frames(path: str | os.PathLike[str]) -> int:
    """Count the video frames of ``path`` by decoding them all (headers are not trusted).

    A truncated file counts the frames that decode. Frames are not converted to RGB,
    so this is the decode-only floor of any pass over the video.
    """
    with _open(path) as container:
        v = _video_stream(container, path)
        v.thread_type = "AUTO"
        return sum(1 for _ in _decode(container.demux(v), path))
