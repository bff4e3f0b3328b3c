"""``lipflow track VIDEO OUT``: a video with the tracked face box and mouth window drawn.

A visual check of the tracker on any mp4/mpg/avi, like the coupled-3D-CNN project's
lip-tracking demo. The video is processed the way ``preprocess`` processes it, in
3-second chunks (``preprocess.clip_seconds``), each tracked on its own, so what is drawn
is what the clips get. Frames stream through: one chunk is held at a time, and frames
go to ffmpeg through a raw-video pipe as they are drawn.

Colours: the face box is green in a chunk that would be kept and red in one that would
be rejected (its reason is written in the corner); the mouth window (the region the
mouth crop is cut from, a rotated rectangle in the source) is yellow.
"""

from __future__ import annotations

import contextlib
import subprocess
import tempfile
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
from lipflow.tasks.faces.crops import mouth_crops, mouth_rects, mouth_window
from lipflow.tasks.faces.detection import detector_from_params
from lipflow.tasks.faces.tracking import FaceTrack, track_face, tracking_options
from lipflow.tasks.media.probe import probe
from lipflow.tasks.media.video import iter_frames
from lipflow.tasks.settings.project import load_params
from lipflow.tasks.settings.schema import Preprocess
from lipflow.tasks.settings.validation import typed_section

# Output container -> ffmpeg encoder arguments. H.264 in yuv420p plays everywhere for
# mp4/mov/mkv; .avi and .mpg get the codecs their players expect.
ENCODERS: dict[str, list[str]] = {
    ".mp4": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
             "-c:a", "aac", "-movflags", "+faststart"],
    ".m4v": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
             "-c:a", "aac"],
    ".mov": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
             "-c:a", "aac"],
    ".mkv": ["-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-pix_fmt", "yuv420p",
             "-c:a", "aac"],
    ".avi": ["-c:v", "mpeg4", "-q:v", "3", "-pix_fmt", "yuv420p", "-c:a", "pcm_s16le"],
    ".mpg": ["-c:v", "mpeg2video", "-q:v", "3", "-pix_fmt", "yuv420p", "-c:a", "mp2"],
    ".mpeg": ["-c:v", "mpeg2video", "-q:v", "3", "-pix_fmt", "yuv420p", "-c:a", "mp2"],
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


def _preprocess_section(params: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if params is None:
        params = load_params()
    if "preprocess" in params and isinstance(params["preprocess"], Mapping):
        return params["preprocess"]
    return params


def _encoder_args(out: Path) -> list[str]:
    args = ENCODERS.get(out.suffix.lower())
    if args is None:
        raise ConfigError(
            f"cannot write {out}: output must end in one of {', '.join(sorted(ENCODERS))}"
        )
    return args


def _draw(frame: np.ndarray, track: FaceTrack, t: int, rect: np.ndarray | None) -> np.ndarray:
    """Return a copy of ``frame`` with frame t's face box, keypoints and mouth window."""
    canvas = np.ascontiguousarray(frame).copy()
    if track.reject_reason is not None:
        cv2.putText(canvas, track.reject_reason[:60], (4, 14), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4, RED, 1, cv2.LINE_AA)
    box = track.boxes[t]
    if not np.isfinite(box).all():
        return canvas
    x, y, w, h = (int(round(v)) for v in box)
    cv2.rectangle(canvas, (x, y), (x + w, y + h), GREEN if track.kept else RED, 2)
    for px, py in track.keypoints[t, :4]:
        cv2.circle(canvas, (int(round(px)), int(round(py))), 2, CYAN, -1)
    if rect is not None:
        cv2.polylines(canvas, [np.round(rect).astype(np.int32)], True, YELLOW, 1, cv2.LINE_AA)
    return canvas


class _Encoder:
    """An ffmpeg process reading RGB frames on stdin, muxing the source's audio if any."""

    def __init__(self, out: Path, source: Path, width: int, height: int, rate: Fraction,
                 has_audio: bool) -> None:
        self._log = tempfile.TemporaryFile()
        cmd = [
            ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-framerate", f"{rate.numerator}/{rate.denominator}", "-i", "pipe:0",
        ]
        if has_audio:
            cmd += ["-i", str(source), "-map", "0:v:0", "-map", "1:a:0"]
        # yuv420p needs even sides; pad odd ones by a pixel rather than fail.
        cmd += ["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2", *_encoder_args(out)]
        if not has_audio:
            cmd += ["-an"]
        cmd += [str(out)]
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
    params: Mapping[str, Any] | None = None,
    progress: bool | None = None,
) -> TrackSummary:
    """Write ``out``: ``video`` at its own frame rate with the tracking drawn on each frame.

    ``params`` is params.yaml (whole, or its ``preprocess:`` section; default: the
    project's). ``crops_dir`` receives the mouth crops as ``NNNNNN.png`` named by frame
    index (frames of a chunk without any face have none). Both outputs appear only when
    complete. Raises MediaError when ``video`` cannot be read as a video, ConfigError for
    an output type it cannot write.
    """
    video, out = Path(video), Path(out)
    pre = _preprocess_section(params)
    _encoder_args(out)
    info = probe(video)
    if info.avg_fps <= 0 or info.width <= 0 or info.height <= 0:
        raise MediaError(f"{video}: no frame rate or frame size in the video stream")
    rate = Fraction(info.avg_fps).limit_denominator(1001)
    clip_seconds = typed_section(Preprocess, pre, "preprocess").clip_seconds
    chunk_frames = max(1, round(info.avg_fps * float(clip_seconds)))
    window = mouth_window(pre)
    mouth_h, mouth_w = window.height_px, window.width_px
    options = tracking_options(pre)
    show = show_progress(progress)

    from tqdm import tqdm

    num_frames = num_chunks = num_crops = 0
    attempted = detected = 0
    rejected: list[str] = []
    with (
        atomic_path(out) as tmp_out,
        _crops_folder(crops_dir) as tmp_crops,
        detector_from_params(pre) as detector,
        tqdm(desc=f"track {video.name}", unit="frame", disable=not show) as bar,
    ):
        encoder = _Encoder(tmp_out, video, info.width, info.height, rate, info.has_audio)
        try:
            chunk: list[np.ndarray] = []
            start = 0

            def flush() -> None:
                nonlocal num_chunks, num_crops, attempted, detected
                track = track_face(chunk, detector, **options)
                num_chunks += 1
                attempted += int(track.attempted.sum())
                detected += int(track.detected.sum())
                if track.reject_reason is not None:
                    rejected.append(f"frames {start}-{start + len(chunk) - 1}: "
                                    f"{track.reject_reason}")
                rects = None
                if track.detected.any():
                    rects = mouth_rects(track.keypoints, mouth_h, mouth_w, window.scale,
                                        window.shift_y)
                    if tmp_crops is not None:
                        crops = mouth_crops(chunk, track.keypoints, mouth_h, mouth_w,
                                            window.scale, window.shift_y)
                        for i, crop in enumerate(crops):
                            cv2.imwrite(str(tmp_crops / f"{start + i:06d}.png"), crop)
                        num_crops += len(crops)
                for i, frame in enumerate(chunk):
                    encoder.write(_draw(frame, track, i, None if rects is None else rects[i]))
                bar.update(len(chunk))

            for vf in iter_frames(video, float(rate)):
                chunk.append(vf.image)
                num_frames += 1
                if len(chunk) == chunk_frames:
                    flush()
                    start += len(chunk)
                    chunk = []
            if chunk:
                flush()
            if num_frames == 0:
                raise MediaError(f"{video}: no video frame could be decoded")
            encoder.close()
        except BaseException:
            encoder.kill()
            raise
    return TrackSummary(
        video=video, out=out, num_frames=num_frames, fps=float(rate), width=info.width,
        height=info.height, num_chunks=num_chunks,
        detection_rate=detected / attempted if attempted else 0.0,
        rejected_chunks=tuple(rejected), crops_dir=crops_dir, num_crops=num_crops,
    )


@contextlib.contextmanager
def _crops_folder(crops_dir: Path | None) -> Iterator[Path | None]:
    """An empty temp folder renamed to ``crops_dir`` on success; nothing when it is None."""
    if crops_dir is None:
        yield None
        return
    with atomic_path(Path(crops_dir)) as tmp:
        tmp.mkdir()
        yield tmp
