"""A video's own audio as 16 kHz mono int16, on the video's clock.

Sample ``k`` is at ``k / sample_rate_hz`` seconds after the video stream start (see
:mod:`lipflow.tasks.media.container`), so it lines up with the frames of
:func:`lipflow.tasks.media.video.iter_frames`: an audio stream that starts after the video
is padded with silence at the front; one that starts before it has its early part dropped.

Audio is decoded with PyAV, averaged to mono and resampled with libsoxr (``soxr``, high
quality, streamed) rather than by an ffmpeg subprocess: it saves a process start per read,
can seek per clip window, and knows each decoded frame's timestamp, which is what the
alignment above needs.

**Streaming.** Audio is read in chunks, so peak memory does not grow with video length,
except in a whole-file :func:`read_audio` call, whose result is the whole waveform
(16 kHz int16 is 115 MB per hour); use :func:`iter_audio_blocks` or
``read_audio(start_s=..., duration_s=...)`` per clip for long videos.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import av
import numpy as np
import soxr

from lipflow.tasks.media.container import (
    SEEK_MARGIN_S,
    SEEK_THRESHOLD_S,
    _audio_stream,
    _decode,
    _open,
    _stream_start_s,
    _video_stream,
)


class _SeekOvershoot(Exception):
    """A seek landed after the wanted time; decode from the start instead."""


#: Decoded audio is handed to the resampler in batches of at least this many samples:
#: per-call overhead, not arithmetic, dominates at one codec frame (~1152 samples) a call.
RESAMPLE_BATCH_SAMPLES = 16384

#: numpy dtype and scale to [-1, 1] of FFmpeg's sample formats (planar or packed).
_SAMPLE_TYPES: dict[str, tuple[type, float, float]] = {  # dtype, offset, scale
    "u8": (np.uint8, -128.0, 1 / 128),
    "s16": (np.int16, 0.0, 1 / 32768),
    "s32": (np.int32, 0.0, 1 / 2147483648),
    "flt": (np.float32, 0.0, 1.0),
    "dbl": (np.float64, 0.0, 1.0),
}


def channel_arrays(frame: Any) -> tuple[str, list[np.ndarray]]:
    """A decoded audio frame's samples: its format name and one 1-D array per channel.

    Views into the frame's buffers where the layout allows (no copy). Formats outside
    :data:`_SAMPLE_TYPES` (64-bit ints) are converted to float by FFmpeg first.
    """
    name = frame.format.name.rstrip("p")
    if name not in _SAMPLE_TYPES:
        frame = av.AudioResampler(format="fltp", layout=frame.layout.name,
                                  rate=frame.sample_rate).resample(frame)[0]
        name = "flt"
    dtype = _SAMPLE_TYPES[name][0]
    count, channels = frame.samples, len(frame.layout.channels)
    if frame.format.is_planar:
        return name, [np.frombuffer(frame.planes[i], dtype, count=count)
                      for i in range(channels)]
    packed = np.frombuffer(frame.planes[0], dtype, count=count * channels)
    return name, [packed[i::channels] for i in range(channels)]


def mono_float(name: str, channels: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """Average channels to mono float32 in [-1, 1]; ``channels[c]`` lists channel c's parts."""
    _, offset, scale = _SAMPLE_TYPES[name]
    total = None
    for parts in channels:
        samples = np.concatenate(parts).astype(np.float32)
        total = samples if total is None else total + samples
    assert total is not None
    return ((total / len(channels) + offset) * scale).astype(np.float32, copy=False)


def _to_int16(samples: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(samples * 32768.0), -32768, 32767).astype(np.int16)


def _resampled_chunks(
    container: Any,
    a: Any,
    packets: Iterable[Any],
    path: str | os.PathLike[str],
    zero_s: float,
    sample_rate_hz: int,
    start_sample: int,
    seeked: bool,
) -> Iterator[np.ndarray]:
    """The resampling loop of :func:`_iter_audio_chunks` (see there).

    Channels are averaged to mono and resampled with libsoxr (``soxr``, high quality),
    streamed in batches; its output is delay-compensated, so sample ``k`` out is at
    ``k / sample_rate_hz`` after the first input sample. A change of input rate mid
    stream flushes the resampler and starts a new one where the last ended.
    """
    audio_start_s = _stream_start_s(a, container)
    pos: int | None = None  # timeline index of the next resampled sample
    stream: soxr.ResampleStream | None = None
    layout: tuple[int, str, int] | None = None  # rate, sample format, channels
    batch: list[list[np.ndarray]] = []
    batched = 0

    def emit(chunk: np.ndarray) -> Iterator[np.ndarray]:
        nonlocal pos
        assert pos is not None
        skip = start_sample - pos
        pos += len(chunk)
        if skip < len(chunk):
            yield chunk[max(skip, 0) :]

    def flush(last: bool) -> Iterator[np.ndarray]:
        nonlocal batch, batched
        if stream is None or layout is None:
            return
        samples = mono_float(layout[1], batch) if batched else np.zeros(0, np.float32)
        batch, batched = [[] for _ in range(layout[2])], 0
        out = stream.resample_chunk(samples, last=last)
        if len(out):
            yield from emit(_to_int16(out))

    for frame in _decode(packets, path):
        if pos is None:
            t_rel = (frame.time if frame.pts is not None else audio_start_s) - zero_s
            if seeked and t_rel > start_sample / sample_rate_hz + 1e-3:
                raise _SeekOvershoot
            pos = round(t_rel * sample_rate_hz)
            if pos > start_sample:
                yield np.zeros(pos - start_sample, dtype=np.int16)
        name, channels = channel_arrays(frame)
        frame_layout = (frame.sample_rate, name, len(channels))
        if frame_layout != layout:
            if stream is not None and layout is not None and frame.sample_rate == layout[0]:
                yield from flush(last=False)  # same rate, new format: keep the stream
            else:
                yield from flush(last=True)
                stream = soxr.ResampleStream(frame.sample_rate, sample_rate_hz, 1,
                                             dtype="float32", quality="HQ")
            layout = frame_layout
            batch, batched = [[] for _ in channels], 0
        for parts, samples in zip(batch, channels, strict=True):
            parts.append(samples)
        batched += frame.samples
        if batched >= RESAMPLE_BATCH_SAMPLES:
            yield from flush(last=False)
    yield from flush(last=True)


def _iter_audio_chunks(
    path: str | os.PathLike[str], sample_rate_hz: int, start_sample: int
) -> Iterator[np.ndarray]:
    """int16 mono chunks whose concatenation is the audio from ``start_sample`` onwards.

    Sample ``k`` of the timeline is at ``k / sample_rate_hz`` seconds after the video
    stream start. The position of the first resampled sample comes from the first decoded
    frame's timestamp (to the nearest output sample); the rest follow contiguously (gaps
    inside a stream are not filled). Leading silence is emitted when the audio starts
    after ``start_sample``. A start beyond a few seconds is reached by seeking.
    """
    if sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be positive, got {sample_rate_hz}")
    if start_sample < 0:
        raise ValueError(f"start must not be negative, got sample {start_sample}")
    with _open(path) as container:
        v = _video_stream(container, path)
        a = _audio_stream(container, path)
        zero_s = _stream_start_s(v, container)
        start_s = start_sample / sample_rate_hz
        if start_s > SEEK_THRESHOLD_S:
            target = zero_s + start_s - SEEK_MARGIN_S
            container.seek(int(target / float(a.time_base)), stream=a, backward=True)
            try:
                yield from _resampled_chunks(
                    container, a, container.demux(a), path, zero_s, sample_rate_hz,
                    start_sample, seeked=True,
                )
                return
            except _SeekOvershoot:  # raised before anything was yielded
                container.seek(0, backward=True)
        yield from _resampled_chunks(
            container, a, container.demux(a), path, zero_s, sample_rate_hz, start_sample,
            seeked=False,
        )


def read_audio(
    path: str | os.PathLike[str],
    sample_rate_hz: int = 16000,
    *,
    start_s: float = 0.0,
    duration_s: float | None = None,
) -> np.ndarray:
    """Return the audio of ``path`` as int16 mono at ``sample_rate_hz``, on the video's clock.

    Sample 0 is at ``start_s`` seconds after the video stream start (rounded to the nearest
    sample); at most ``round(duration_s * sample_rate_hz)`` samples are returned, fewer
    where the audio ends first (the caller pads, see
    :func:`lipflow.tasks.prepare.windows.pad_samples`).
    A start beyond a few seconds is reached by seeking; the position after a seek comes
    from the container's timestamps, so it is exact to their precision (sub-sample for
    mp4/MPEG-PS, up to 0.5 ms for mkv's millisecond clock). Consecutive windows of one
    file that must join seamlessly should come from :func:`iter_audio_blocks` (one pass).
    Without ``duration_s`` the whole rest of the file is read into memory (115 MB per hour
    at 16 kHz); for long videos read per clip window or use :func:`iter_audio_blocks`.
    Raises MediaError when the file has no audio (or no video) stream.
    """
    start_sample = round(start_s * sample_rate_hz)
    want = None if duration_s is None else max(0, round(duration_s * sample_rate_hz))
    chunks: list[np.ndarray] = []
    have = 0
    with contextlib.closing(_iter_audio_chunks(path, sample_rate_hz, start_sample)) as it:
        for chunk in it:
            if want is not None and have + len(chunk) >= want:
                chunks.append(chunk[: want - have])
                have = want
                break
            chunks.append(chunk)
            have += len(chunk)
    if not chunks:
        return np.zeros(0, dtype=np.int16)
    return np.ascontiguousarray(np.concatenate(chunks), dtype=np.int16)


def iter_audio_blocks(
    path: str | os.PathLike[str],
    block_samples: int,
    sample_rate_hz: int = 16000,
    *,
    start_s: float = 0.0,
) -> Iterator[np.ndarray]:
    """Stream the audio of ``path`` as consecutive int16 mono blocks of ``block_samples``.

    Block ``k`` holds timeline samples ``[s0 + k * block_samples, s0 + (k + 1) *
    block_samples)`` with ``s0 = round(start_s * sample_rate_hz)``, the same clock as
    :func:`lipflow.tasks.media.video.iter_frames`; with ``block_samples`` = one clip's
    samples, block ``k`` is the audio of clip window ``k``
    (:func:`lipflow.tasks.prepare.windows.clip_windows`). The last block is shorter when the
    audio ends (never padded); memory stays at one block.
    """
    if block_samples <= 0:
        raise ValueError(f"block_samples must be positive, got {block_samples}")
    start_sample = round(start_s * sample_rate_hz)
    with contextlib.closing(_iter_audio_chunks(path, sample_rate_hz, start_sample)) as it:
        yield from _blocks(it, block_samples)


def _blocks(chunks: Iterable[np.ndarray], block_samples: int) -> Iterator[np.ndarray]:
    """Regroup consecutive sample chunks into blocks of ``block_samples`` (last shorter)."""
    pending: list[np.ndarray] = []
    have = 0
    for chunk in chunks:
        while len(chunk):
            take = min(block_samples - have, len(chunk))
            pending.append(chunk[:take])
            have += take
            chunk = chunk[take:]
            if have == block_samples:
                yield np.concatenate(pending)
                pending, have = [], 0
    if have:
        yield np.concatenate(pending)
