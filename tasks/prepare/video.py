"""One video in, its 3-second clips out: resample, track the face, crop, cut audio, featurise.

This is the per-video unit of work of the ``prepare`` flow (a Prefect task runs it over a
batch of videos, :mod:`lipflow.tasks.prepare.batches`; never per frame). It streams:
frames are decoded and buffered one clip (T frames) at a time, so memory is bounded by
one clip whatever the video's length. Each kept clip is written as one ``.npy`` record in
a work folder (docs/contracts.md section 2), or handed to the caller's ``save`` (a batch
compresses it into its result), and described by a clip-manifest row (section 3); a
rejected clip or file gets a row with its reason instead. Bad input never raises out of
:func:`preprocess_video`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from lipflow.tasks.common.errors import ConfigError, LipflowError
from lipflow.tasks.common.native_threads import one_native_thread
from lipflow.tasks.contracts.clip_record import CLIP_SUFFIX, save_clip
from lipflow.tasks.features.mel import mel_spectrogram
from lipflow.tasks.features.mfec import mfec_cube
from lipflow.tasks.media.demux import clip_streams
from lipflow.tasks.media.probe import probe
from lipflow.tasks.prepare.quality import (
    QUALITY_COLUMNS,
    FrameFlags,
    clip_signals,
    corrupt_reason,
    quality_reason,
)
from lipflow.tasks.prepare.window_crops import WindowCropper, frame_windows
from lipflow.tasks.prepare.windows import (
    frames_per_clip,
    pad_samples,
    samples_per_clip,
    window_at,
)
from lipflow.tasks.settings.schema import Preprocess
from lipflow.tasks.settings.validation import typed_section

#: Named crop regions applied before face detection, as fractions of the frame
#: (x0, y0, x1, y1). ``chess`` is Lip2Wav's rows 270:460, cols 770:1130 of 1080p.
CROP_REGIONS: dict[str, tuple[float, float, float, float]] = {
    "full": (0.0, 0.0, 1.0, 1.0),
    "bottom_right": (0.5, 0.5, 1.0, 1.0),
    "chess": (770 / 1920, 270 / 1080, 1130 / 1920, 460 / 1080),
}


@dataclass(frozen=True)
class VideoSettings:
    """Everything that decides how one corpus' videos become clips."""

    fps: float
    preprocess: Mapping[str, Any]
    features: Mapping[str, Any]
    crop_region: str = "full"

    @property
    def typed(self) -> Preprocess:
        """``preprocess`` checked, with the schema's defaults for keys it lacks."""
        return typed_section(Preprocess, self.preprocess, "preprocess")

    @property
    def clip_seconds(self) -> float:
        return float(self.typed.clip_seconds)

    @property
    def sample_rate_hz(self) -> int:
        return self.typed.sample_rate_hz

    @property
    def min_clip_seconds(self) -> float:
        return float(self.typed.min_clip_seconds)


def crop_box(region: str, width: int, height: int) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` in pixels for a named region of a ``width`` x ``height`` frame.

    Regions are fractions, so Lip2Wav's 1080p coordinates scale to the real resolution.
    ``full`` returns None (no crop).
    """
    if region not in CROP_REGIONS:
        raise ConfigError(f"unknown crop region {region!r}; known: {sorted(CROP_REGIONS)}")
    if region == "full":
        return None
    x0, y0, x1, y1 = CROP_REGIONS[region]
    left, top = round(x0 * width), round(y0 * height)
    return left, top, round(x1 * width) - left, round(y1 * height) - top


def clip_words(word_timings: Any, start_s: float, span_s: float) -> list[dict[str, Any]]:
    """Words overlapping ``[start_s, start_s + span_s)``, re-timed to the clip and clamped."""
    if word_timings is None or (isinstance(word_timings, float) and math.isnan(word_timings)):
        return []
    out = []
    for item in word_timings:
        word, w0, w1 = item["word"], float(item["start_s"]), float(item["end_s"])
        if w1 <= start_s or w0 >= start_s + span_s:
            continue
        out.append({"word": word, "start_s": max(0.0, w0 - start_s),
                    "end_s": min(span_s, w1 - start_s)})
    return out


def _text(value: Any) -> str | None:
    return None if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _base_row(record: Mapping[str, Any], fps: float) -> dict[str, Any]:
    return {
        "corpus": record["corpus"],
        "speaker": record["speaker"],
        "utterance_id": record["utterance_id"],
        "language": record["language"],
        "split": _text(record.get("split")),
        "source_path": record["video_path"],
        "fps": float(fps),
    }


def rejected_file_row(record: Mapping[str, Any], fps: float, reason: str) -> dict[str, Any]:
    """A clip-manifest row recording that a whole file produced no clip, and why."""
    return {
        **_base_row(record, fps),
        "clip_id": f"{record['speaker']}/{record['utterance_id']}/file",
        "start_s": None, "end_s": None, "num_frames": 0, "num_samples": 0,
        "valid_frames": 0, "valid_samples": 0, "detection_rate": None,
        "mean_face_px": None, "keypoint_jitter": None, "transcript": None,
        "word_timings": None, "kept": False, "reject_reason": reason, "store_index": -1,
    }


#: The reason (kind) of a last window shorter than ``preprocess.min_clip_seconds``.
SHORT_TAIL = "tail shorter than"


def tail_row(record: Mapping[str, Any], start_frame: int, valid_frames: int,
             available_samples: int, settings: VideoSettings) -> dict[str, Any]:
    """The rejected row of a video's last window when it is shorter than ``min_clip_seconds``.

    Such a tail is not a clip, but it gets a row, so the manifest accounts for every second
    of the video (docs/contracts.md section 3): reason ``tail shorter than 1 s (0.40 s from
    frame 300, 12.00 s)``.
    """
    fps = settings.fps
    seconds = valid_frames / fps
    return {
        **_base_row(record, fps),
        "clip_id": f"{record['speaker']}/{record['utterance_id']}/{start_frame}",
        "start_s": start_frame / fps, "end_s": (start_frame + valid_frames) / fps,
        "num_frames": frames_per_clip(fps, settings.clip_seconds),
        "num_samples": samples_per_clip(settings.sample_rate_hz, settings.clip_seconds),
        "valid_frames": valid_frames,
        "valid_samples": max(0, min(int(available_samples),
                                    samples_per_clip(settings.sample_rate_hz,
                                                     settings.clip_seconds))),
        "detection_rate": None, "mean_face_px": None, "keypoint_jitter": None,
        "transcript": None, "word_timings": None, "kept": False,
        "reject_reason": (f"{SHORT_TAIL} {settings.min_clip_seconds:g} s ({seconds:.2f} s from "
                          f"frame {start_frame}, {start_frame / fps:.2f} s)"),
        "store_index": -1,
    }


def frame_chunks(frames: Iterator[Any], size: int) -> Iterator[list[Any]]:
    """Group decoded frames' images into lists of ``size`` (the last may be shorter).

    :func:`~lipflow.tasks.prepare.window_crops.frame_windows` without overlap.
    """
    for _, chunk in frame_windows(frames, size, size):
        yield chunk


#: ``save(name, arrays) -> clip_path``: where a kept clip's arrays go; ``name`` is unique
#: within a speaker (``<speaker>__<utterance>__<start frame>``).
SaveClip = Callable[[str, Mapping[str, Any]], str]


def preprocess_video(record: Mapping[str, Any], raw_root: Path, work_dir: Path,
                     settings: VideoSettings, save: SaveClip | None = None,
                     ) -> list[dict[str, Any]]:
    """Cut one raw-manifest video into clips; return their clip-manifest rows.

    Kept rows carry ``clip_path``: by default the clip's ``.npy`` record in ``work_dir``,
    else what ``save`` returned for it. ``store_index`` is assigned later, when the store
    is written. Media problems become one rejected row.
    """
    def save_in_work_dir(name: str, arrays: Mapping[str, Any]) -> str:
        return str(save_clip(Path(work_dir) / f"{name}{CLIP_SUFFIX}", arrays))

    with one_native_thread():
        try:
            return list(_clips_of_video(record, Path(raw_root), save or save_in_work_dir,
                                        settings))
        except LipflowError as err:
            return [rejected_file_row(record, settings.fps, str(err))]


def _clips_of_video(record: Mapping[str, Any], raw_root: Path, save: SaveClip,
                    settings: VideoSettings) -> Iterator[dict[str, Any]]:
    video = raw_root / record["video_path"]
    pre = settings.preprocess
    fps, sr = settings.fps, settings.sample_rate_hz
    clip_frames = frames_per_clip(fps, settings.clip_seconds)
    clip_samples = samples_per_clip(sr, settings.clip_seconds)
    crop = None
    if settings.crop_region != "full":  # only a crop needs the frame size before decoding
        info = probe(video)
        crop = crop_box(settings.crop_region, info.width, info.height)
    transcript_words = record.get("word_timings")
    produced = 0

    cropper = WindowCropper(pre)
    typed = settings.typed
    # One open and one demux pass for both streams; a file that is not media, or has no
    # video stream (or no audio stream while preprocess.require_audio), fails here with
    # a MediaError (a rejected-file row). Without audio every block is empty: the clips
    # are silent, valid_samples 0 (docs/contracts.md).
    with clip_streams(video, fps, clip_samples, sr, crop=crop, pixels="yuv",
                      require_audio=settings.typed.require_audio) as (frames_in, blocks):
        flags = FrameFlags(frames_in)  # the decoder's corrupt marks (lipflow.tasks.prepare.quality)
        for k, chunk in enumerate(frame_chunks(iter(flags), clip_frames)):
            valid_frames = len(chunk)
            block = next(blocks, np.zeros(0, dtype=np.int16))
            window = window_at(k, valid_frames, len(block), fps, settings.clip_seconds,
                               min_valid_seconds=settings.min_clip_seconds, sample_rate_hz=sr)
            if window is None:
                if k > 0:  # a tail: recorded, so no video time goes missing silently
                    yield tail_row(record, k * clip_frames, valid_frames, len(block),
                                   settings)
                    produced += 1
                break
            start_frame = window.start_frame
            words = clip_words(transcript_words, window.start_s, settings.clip_seconds)
            row = {
                **_base_row(record, fps),
                "clip_id": f"{record['speaker']}/{record['utterance_id']}/{start_frame}",
                "start_s": window.start_s,
                "end_s": window.end_s,
                "num_frames": window.num_frames, "num_samples": window.num_samples,
                "valid_frames": valid_frames, "valid_samples": window.valid_samples,
                "transcript": " ".join(w["word"] for w in words) or None,
                "word_timings": words or None,
            }
            produced += 1
            # Frames stay 4:2:0 plane views of the decoder's buffers (lipflow.tasks.media.yuv):
            # only the few the detector looks at become RGB. A short last clip repeats
            # its last frame. At 720p a clip buffer is ~125 MB, so it is dropped before
            # the next decode.
            row.update(dict.fromkeys(QUALITY_COLUMNS))
            corrupt = corrupt_reason(flags.count(k * clip_frames, k * clip_frames + valid_frames),
                                     chunk, typed.max_damaged_frames,
                                     typed.max_decode_error_frames)
            if corrupt is not None:  # before tracking: damage, not the face, is the reason
                yield {**row, "kept": False, "reject_reason": corrupt, "store_index": -1}
                continue
            crops = cropper(chunk, clip_frames, first_frame=start_frame, fps=fps)
            track = crops.track
            row.update(detection_rate=float(track.detection_rate),
                       mean_face_px=_finite(track.mean_face_px),
                       keypoint_jitter=_finite(track.keypoint_jitter))
            if not track.kept:
                del chunk
                yield {**row, "kept": False, "reject_reason": track.reject_reason,
                       "store_index": -1}
                continue
            marks = crops.landmarks
            if marks is not None:  # the valid frames only (a short clip repeats its last)
                marks = marks.frames(valid_frames)
            mouth = None if crops.mouth is None else crops.mouth[:valid_frames]
            row.update(clip_signals(chunk, marks, block[: row["valid_samples"]], fps, sr,
                                    mouth=mouth))
            del chunk
            reason = quality_reason(row, typed)
            if reason is not None:
                yield {**row, "kept": False, "reject_reason": reason, "store_index": -1}
                continue
            wav = pad_samples(block[:clip_samples].astype(np.int16), clip_samples)
            arrays = {
                "face": crops.face,
                "mouth": crops.mouth,
                "wav": wav,
                "mel": mel_spectrogram(wav, settings.features.get("mel")),
                "mfec": mfec_cube(wav, settings.features.get("mfec")),
                "valid_frames": np.int64(valid_frames),
                "valid_samples": np.int64(row["valid_samples"]),
            }
            del crops
            clip_path = save(f"{record['speaker']}__{record['utterance_id']}__{start_frame}",
                             arrays)
            del arrays
            yield {**row, "kept": True, "reject_reason": None, "store_index": -1,
                   "clip_path": clip_path}
    if produced == 0:
        yield rejected_file_row(
            record, fps, f"{video}: shorter than {settings.min_clip_seconds:g} s of video"
        )


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def order_rows(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Kept clips first, in clip-id order, numbered 0..N-1; then rejections.

    So row *i* of the manifest is clip *i* of the store (docs/contracts.md section 3),
    and the order does not depend on which worker finished first.
    """
    def key(row: Mapping[str, Any]) -> tuple[str, str, int]:
        start = row["clip_id"].rsplit("/", 1)[-1]
        return (row["speaker"], row["utterance_id"], int(start) if start.isdigit() else -1)

    kept = sorted((dict(r) for r in rows if r["kept"]), key=key)
    rejected = sorted((dict(r) for r in rows if not r["kept"]), key=key)
    for i, row in enumerate(kept):
        row["store_index"] = i
    return kept + rejected
