"""Opening media files, and what every reader of them shares.

Why this module exists: corpora disagree about everything a container header says. GRID's
MPEG-PS files claim 0 frames, some mp4 headers claim more frames than decode, YouTube
videos run at 29.97 fps while the models want exactly 25 or 30. So no reader trusts a
header count; frames are chosen *by time* (:mod:`lipflow.tasks.media.video`), and audio is
placed on the same clock (:mod:`lipflow.tasks.media.audio`).

**The time axis.** Source time 0 is the video stream's ``start_time``.
:func:`~lipflow.tasks.media.video.iter_frames` and
:func:`~lipflow.tasks.media.audio.read_audio` both measure from it, so video frame ``n``
at ``fps`` and audio sample ``round(n / fps * sample_rate_hz)`` describe the same instant.
An audio stream that starts after the video is padded with silence at the front; one that
starts before it has its early part dropped.

**Damaged files.** A truncated or partly corrupt file yields what decodes: undecodable
packets are skipped and a demuxer error ends the stream early (logged as a warning). Files
that cannot be opened at all raise :class:`lipflow.tasks.common.errors.MediaError` naming the file.

This module holds the pieces the readers share: the header and frame types, opening a
file (:func:`_open`), picking and timing its streams, decoding packets (:func:`_decode`)
and sharing one demuxing pass between readers (:class:`_PacketRouter`).
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import av.error
import numpy as np

from lipflow.tasks.common.errors import MediaError
from lipflow.tasks.media.yuv import YuvFrame

log = logging.getLogger(__name__)

#: Smallest timestamp tolerance (seconds) when matching output times to source frames.
MIN_EPS_S = 1e-6
#: A start time beyond this is reached by seeking instead of decoding from the beginning.
SEEK_THRESHOLD_S = 2.0
#: How far before the wanted time to seek, so the frame/sample on screen there is decoded.
SEEK_MARGIN_S = 1.0

Crop = tuple[int, int, int, int]


@dataclass(frozen=True)
class MediaInfo:
    """What the container header says; counts and durations are estimates, not truths.

    ``header_frames`` is the container's frame count (0 when unknown, as in GRID's
    MPEG-PS files, and sometimes wrong); use
    :func:`lipflow.tasks.media.probe.count_frames` for the real number.
    ``video_start_s``/``audio_start_s`` are the streams' start times on the container's
    clock; the readers measure time from ``video_start_s``.
    """

    path: str
    width: int
    height: int
    avg_fps: float
    header_frames: int
    duration_s: float
    has_video: bool
    has_audio: bool
    audio_rate_hz: int
    audio_channels: int
    video_start_s: float
    audio_start_s: float
    video_codec: str
    audio_codec: str

    @property
    def audio_offset_s(self) -> float:
        """How much later the audio starts than the video (negative: earlier)."""
        return self.audio_start_s - self.video_start_s if self.has_audio else 0.0


@dataclass(frozen=True)
class VideoFrame:
    """One output frame of :func:`lipflow.tasks.media.video.iter_frames`.

    ``time_s`` is the exact output time ``start_s + index / fps``; ``source_time_s`` the
    timestamp of the source frame shown (both relative to the video stream start);
    ``image`` is RGB uint8 of shape (H, W, 3), cropped when a crop was asked for (or a
    :class:`~lipflow.tasks.media.yuv.YuvFrame` when ``iter_frames`` was asked for ``yuv``).
    ``corrupt`` is the decoder's mark on a frame it concealed errors in (a damaged
    stream: :mod:`lipflow.tasks.prepare.quality`).
    """

    index: int
    time_s: float
    source_time_s: float
    image: np.ndarray | YuvFrame
    corrupt: bool = False



@contextlib.contextmanager
def _open(path: str | os.PathLike[str]) -> Iterator[Any]:
    """Open ``path`` with PyAV, turning every way it can fail into a one-line MediaError."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise MediaError(f"{p}: no such file") from None
    except OSError as err:
        raise MediaError(f"{p}: cannot read ({err.strerror or err})") from None
    if p.is_dir():
        raise MediaError(f"{p}: is a folder, not a media file")
    if st.st_size == 0:
        raise MediaError(f"{p}: empty file (0 bytes)")
    try:
        container = av.open(str(p), mode="r")
    except PermissionError:
        raise MediaError(f"{p}: cannot read (permission denied)") from None
    except FileNotFoundError:
        raise MediaError(f"{p}: no such file") from None
    except (av.error.FFmpegError, OSError, ValueError) as err:
        reason = getattr(err, "strerror", None) or str(err)
        raise MediaError(f"{p}: not a media file that can be read ({reason})") from None
    try:
        yield container
    finally:
        container.close()


def _video_stream(container: Any, path: str | os.PathLike[str]) -> Any:
    if not container.streams.video:
        raise MediaError(f"{path}: has no video stream")
    return container.streams.video[0]


def _audio_stream(container: Any, path: str | os.PathLike[str]) -> Any:
    if not container.streams.audio:
        raise MediaError(f"{path} has no audio stream")
    return container.streams.audio[0]


def _stream_start_s(stream: Any, container: Any) -> float:
    """A stream's start on the container clock (container start, else 0, when unknown)."""
    if stream.start_time is not None and stream.time_base is not None:
        return float(stream.start_time * stream.time_base)
    if container.start_time is not None:
        return container.start_time / av.time_base
    return 0.0


def _eps_s(stream: Any) -> float:
    tb = float(stream.time_base) if stream.time_base is not None else 0.0
    return max(0.5 * tb, MIN_EPS_S)


def _decode(packets: Iterable[Any], path: str | os.PathLike[str]) -> Iterator[Any]:
    """Decoded frames from one stream's packets; corrupt packets skipped, a demux error ends it."""
    bad_packets = 0
    try:
        for packet in packets:
            try:
                frames = packet.decode()
            except av.error.FFmpegError:
                bad_packets += 1
                continue
            yield from frames
    except av.error.FFmpegError as err:
        log.warning("%s: stream ends early, demuxer error: %s", path, err)
    if bad_packets:
        log.warning("%s: skipped %d undecodable packets", path, bad_packets)


class _PacketRouter:
    """One demuxing pass over a container, shared by a reader per stream.

    Each reader pulls its own stream's packets; packets of the other streams read on the
    way are queued for their readers. Containers interleave streams by time (and the
    demuxers of non-interleaved mp4/avi read them back in time order), so a queue holds
    about as much as the readers are apart: a clip's worth here. Saves a second open
    and demux of the file against a container per stream.
    """

    #: Queued packets that mean the readers have drifted far apart (a broken file).
    MAX_QUEUED = 100_000

    def __init__(self, container: Any, streams: Sequence[Any],
                 path: str | os.PathLike[str]) -> None:
        self._path = path
        self._demux = container.demux(*streams)
        self._queues: dict[int, deque[Any]] = {s.index: deque() for s in streams}

    def packets(self, stream: Any) -> Iterator[Any]:
        """This stream's packets in order (the demuxer's end-of-stream packet included)."""
        own = self._queues[stream.index]
        while True:
            if own:
                yield own.popleft()
                continue
            packet = next(self._demux, None)
            if packet is None:
                return
            if packet.stream.index == stream.index:
                yield packet
                continue
            queue = self._queues.get(packet.stream.index)
            if queue is not None:
                if len(queue) >= self.MAX_QUEUED:
                    raise MediaError(
                        f"{self._path}: its streams are too far apart in the file (over "
                        f"{self.MAX_QUEUED} packets) to read them in one pass"
                    )
                queue.append(packet)
