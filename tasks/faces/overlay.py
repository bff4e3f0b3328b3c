"""``lipflow track VIDEO OUT``: what ``prepare`` does with a video, drawn on its frames.

A visual check of a corpus' settings on any mp4/mpg/avi, like the coupled-3D-CNN
project's lip-tracking demo, and a faithful one: the video goes through the code
``prepare`` runs (:mod:`lipflow.tasks.prepare.video`): the same demuxing and resampling to
the corpus' frame rate (:func:`~lipflow.tasks.media.demux.clip_streams`, 4:2:0 frames,
the corpus' crop region), the same window rule
(:func:`~lipflow.tasks.prepare.windows.window_at`), and the same tracking, detector and
crops (:class:`~lipflow.tasks.prepare.window_crops.WindowCropper`, so a change to how
prepare aligns mouths shows here too). The audio is prepare's too: the 16 kHz blocks cut
on the video stream's clock, so a video stream that starts 0.84 s after its audio stays
in sync in the preview as in the clips. Frames stream through: one window is held at a
time and frames go to ffmpeg through a raw-video pipe as they are drawn; the audio is
muxed in at the end (a stream copy of the video).

Colours: the face box is green in a window that ``prepare`` keeps and red in one it
rejects, with the reason written in the corner (also for a tail shorter than
``preprocess.min_clip_seconds``); the mouth window (the region the mouth crop is cut
from, a rotated rectangle in the source) is yellow. Mouth crops go to ``--crops`` for
kept windows only, unless ``all_crops``.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
import wave
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from lipflow.tasks.common.atomic import atomic_path
from lipflow.tasks.common.errors import ConfigError, MediaError
from lipflow.tasks.common.executables import ffmpeg_exe
from lipflow.tasks.common.progress import show_progress
from lipflow.tasks.faces.tracking import FaceTrack, frame_label
from lipflow.tasks.media.demux import clip_streams
from lipflow.tasks.media.probe import probe
from lipflow.tasks.prepare.video import SHORT_TAIL, VideoSettings, crop_box
from lipflow.tasks.prepare.window_crops import WindowCropper, WindowCrops, frame_windows
from lipflow.tasks.prepare.windows import frames_per_clip, samples_per_clip, window_at

# Output container -> ffmpeg encoder arguments. H.264 in yuv420p plays everywhere for
# mp4/mov/mkv; .avi and .mpg get the codecs their players expect.
ENCODERS: dict[str, list[str]] = {
    ".mp4": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"],
    ".m4v": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"],
    ".mov": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"],
    ".mkv": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p"],
    ".avi": ["-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p"],
    ".mpg": ["-c:v", "mpeg2video", "-q:v", "3", "-pix_fmt", "yuv420p"],
    ".mpeg": ["-c:v", "mpeg2video", "-q:v", "3", "-pix_fmt", "yuv420p"],
}
#: The audio codec each container gets when the preview is muxed.
AUDIO_CODECS: dict[str, list[str]] = {
    ".mp4": ["-c:a", "aac", "-movflags", "+faststart"], ".m4v": ["-c:a", "aac"],
    ".mov": ["-c:a", "aac"], ".mkv": ["-c:a", "aac"], ".avi": ["-c:a", "pcm_s16le"],
    ".mpg": ["-c:a", "mp2"], ".mpeg": ["-c:a", "mp2"],
}
GREEN, RED, YELLOW, CYAN = (0, 220, 0), (230, 0, 0), (255, 230, 0), (0, 200, 255)


@dataclass(frozen=True)
class TrackSummary:
    """What ``write_track_video`` did, for the CLI to print."""

    video: Path
    out: Path
    num_frames: int
    fps: float
    width: int
    height: int
    num_chunks: int
    detection_rate: float
    rejected_chunks: tuple[str, ...]
    crops_dir: Path | None
    num_crops: int
    kept_chunks: int = 0
    detector: str = ""


def _encoder_args(out: Path) -> list[str]:
    args = ENCODERS.get(out.suffix.lower())
    if args is None:
        raise ConfigError(
            f"cannot write {out}: output must end in one of {', '.join(sorted(ENCODERS))}"
        )
    return args


def _draw(frame: np.ndarray, track: FaceTrack | None, t: int, rect: np.ndarray | None,
          reason: str | None) -> np.ndarray:
    """Draw frame t's face box (green: kept, red: rejected), keypoints and mouth window."""
    canvas = np.ascontiguousarray(frame)
    if reason is not None:  # the kind on one line, its detail (frame, figures) below
        scale = max(0.4, canvas.shape[1] / 1600)
        line_px = int(16 * scale / 0.4)
        kind, _, detail = reason.partition(" (")
        for i, text in enumerate((kind, f"({detail}" if detail else "")):
            if text:
                cv2.putText(canvas, text[:70], (4, line_px * (i + 1)), cv2.FONT_HERSHEY_SIMPLEX,
                            scale, RED, max(1, int(scale * 2)), cv2.LINE_AA)
    if track is None:
        return canvas
    box = track.boxes[t]
    if not np.isfinite(box).all():
        return canvas
    x, y, w, h = (int(round(v)) for v in box)
    thick = max(2, canvas.shape[1] // 400)
    cv2.rectangle(canvas, (x, y), (x + w, y + h), GREEN if reason is None else RED, thick)
    for px, py in track.keypoints[t, :4]:
        cv2.circle(canvas, (int(round(px)), int(round(py))), thick, CYAN, -1)
    if rect is not None:
        cv2.polylines(canvas, [np.round(rect).astype(np.int32)], True, YELLOW, 1, cv2.LINE_AA)
    return canvas


class _Encoder:
    """An ffmpeg process reading RGB frames on stdin and writing a video-only file."""

    def __init__(self, out: Path, width: int, height: int, rate: Fraction) -> None:
        self._log = tempfile.TemporaryFile()
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
        ]
        # yuv420p needs even sides; pad odd ones by a pixel rather than fail.
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", *_encoder_args(out), "-an", str(out)]
        self.out = out
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=self._log)

    def write(self, frame: np.ndarray) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(frame.tobytes())
        except BrokenPipeError:
            self._proc.wait()
            raise MediaError(f"ffmpeg stopped writing {self.out}: {self._stderr()}") from None

    def close(self) -> None:
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.close()
        except BrokenPipeError:
            pass
        if self._proc.wait() != 0:
            raise MediaError(f"ffmpeg could not write {self.out}: {self._stderr()}")
        self._log.close()

    def kill(self) -> None:
        if self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._log.close()

    def _stderr(self) -> str:
        self._log.seek(0)
        text = self._log.read().decode("utf-8", "replace").strip().splitlines()
        return " | ".join(text[-3:]) or f"exit code {self._proc.returncode}"


def write_track_video(
    video: Path,
    out: Path,
    *,
    crops_dir: Path | None = None,
    settings: VideoSettings | None = None,
    params: Mapping[str, Any] | None = None,
    all_crops: bool = False,
    progress: bool | None = None,
) -> TrackSummary:
    """Write ``out``: ``video`` as ``prepare`` sees it, with its verdicts drawn on each frame.

    ``settings`` are a corpus speaker's (:func:`lipflow.tasks.prepare.settings.speaker_settings`:
    frame rate, crop region, detector); without them, those of a user corpus from
    ``params`` (default: the params in use). ``crops_dir`` receives the mouth crops as
    ``NNNNNN.png`` named by frame index, of kept windows (``all_crops``: of every window
    with a face). Both outputs appear only when complete. Raises MediaError when
    ``video`` cannot be read as a video, ConfigError for an output type it cannot write.
    """
    from lipflow.tasks.prepare.settings import speaker_settings
    from lipflow.tasks.settings.project import load_params

    video, out = Path(video), Path(out)
    if settings is None:
        settings, _ = speaker_settings(dict(params or load_params()), "local", "")
    _encoder_args(out)
    fps, sr = settings.fps, settings.sample_rate_hz
    rate = Fraction(fps).limit_denominator(1001)
    clip_frames = frames_per_clip(fps, settings.clip_seconds)
    clip_samples = samples_per_clip(sr, settings.clip_seconds)
    crop = None
    if settings.crop_region != "full":
        info = probe(video)
        crop = crop_box(settings.crop_region, info.width, info.height)
    cropper = WindowCropper(settings.preprocess)
    show = show_progress(progress)

    from tqdm import tqdm

    num_frames = num_crops = kept = 0
    attempted = detected = 0
    windows: list[int] = []
    rejected: list[str] = []
    size = (0, 0)
    with (
        atomic_path(out) as tmp_out,
        _crops_folder(crops_dir) as tmp_crops,
        tempfile.TemporaryDirectory(prefix="lipflow-track-") as work,
        tqdm(desc=f"track {video.name}", unit="frame", disable=not show) as bar,
        clip_streams(video, fps, clip_samples, sr, crop=crop, pixels="yuv",
                     require_audio=False) as (frames_in, blocks),
    ):
        silent = Path(work) / f"video{out.suffix}"
        audio = Path(work) / "audio.wav"
        encoder: _Encoder | None = None
        samples = 0
        try:
            with wave.open(str(audio), "wb") as wav:
                wav.setnchannels(1)
                wav.setsampwidth(2)
                wav.setframerate(sr)
                for k, (start, chunk) in enumerate(frame_windows(frames_in, clip_frames,
                                                                 clip_frames)):
                    block = next(blocks, np.zeros(0, dtype=np.int16))
                    wav.writeframes(np.asarray(block, dtype="<i2").tobytes())
                    samples += len(block)
                    if encoder is None:
                        size = (chunk[0].width, chunk[0].height)
                        encoder = _Encoder(silent, size[0], size[1], rate)
                    span = (f"frames {start}-{start + len(chunk) - 1} "
                            f"({start / fps:.2f}-{(start + len(chunk)) / fps:.2f} s)")
                    clip = window_at(k, len(chunk), len(block), fps, settings.clip_seconds,
                                     min_valid_seconds=settings.min_clip_seconds,
                                     sample_rate_hz=sr)
                    windows.append(start)
                    crops: WindowCrops | None = None
                    if clip is None:
                        reason: str | None = (f"{SHORT_TAIL} {settings.min_clip_seconds:g} s "
                                              f"({len(chunk) / fps:.2f} s from "
                                              f"{frame_label(start, fps)})")
                    else:
                        crops = cropper(chunk, clip_frames, first_frame=start, fps=fps,
                                        crop_rejected=all_crops)
                        attempted += int(crops.track.attempted.sum())
                        detected += int(crops.track.detected.sum())
                        reason = crops.track.reject_reason
                    if reason is None:
                        kept += 1
                    else:
                        rejected.append(f"{span}: {reason}")
                    track = crops.track if crops is not None else None
                    rects = None if crops is None else cropper.mouth_corners(crops)
                    if tmp_crops is not None and crops is not None and crops.mouth is not None:
                        for i, crop_img in enumerate(crops.mouth[:len(chunk)]):
                            cv2.imwrite(str(tmp_crops / f"{start + i:06d}.png"), crop_img)
                        num_crops += min(len(chunk), len(crops.mouth))
                    for i, frame in enumerate(chunk):
                        encoder.write(_draw(frame.rgb(), track, i,
                                            None if rects is None else rects[i], reason))
                    num_frames += len(chunk)
                    bar.update(len(chunk))
                    del chunk, crops
            if encoder is None or num_frames == 0:
                raise MediaError(f"{video}: no video frame could be decoded")
            encoder.close()
        except BaseException:
            if encoder is not None:
                encoder.kill()
            raise
        _mux(silent, audio if samples else None, tmp_out)
    return TrackSummary(
        video=video, out=out, num_frames=num_frames, fps=float(rate), width=size[0],
        height=size[1], num_chunks=len(windows),
        detection_rate=detected / attempted if attempted else 0.0,
        rejected_chunks=tuple(rejected), crops_dir=crops_dir, num_crops=num_crops,
        kept_chunks=kept, detector=cropper.detector.detector_name,
    )


def _mux(video: Path, audio: Path | None, out: Path) -> None:
    """``out``: ``video``'s stream copied, with ``audio`` (prepare's 16 kHz track) if any."""
    if audio is None:
        video.replace(out)
        return
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
           "-i", str(video), "-i", str(audio), "-map", "0:v:0", "-map", "1:a:0",
           "-c:v", "copy", *AUDIO_CODECS[out.suffix.lower()], str(out)]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise MediaError(f"ffmpeg could not mux the audio into {out}: {tail}")


@contextlib.contextmanager
def _crops_folder(crops_dir: Path | None) -> Iterator[Path | None]:
    """An empty temp folder renamed to ``crops_dir`` on success; nothing when it is None."""
    if crops_dir is None:
        yield None
        return
    with atomic_path(Path(crops_dir)) as tmp:
        tmp.mkdir()
        yield tmp
