"""Fixtures for the face detection, tracking, crop and track-video tests.

Frames come straight from PyAV (no resampling: the GRID sample is 25 fps CFR), cached
per path so each clip is decoded once per test session. The detector is created once
per session, as the real pipeline creates it once per worker.
"""

from __future__ import annotations

import functools
import subprocess
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import pytest

from lipflow.tasks.common.executables import ffmpeg_exe
from lipflow.tasks.faces.detection import Face, FaceDetector

SAMPLE_GRID = Path(__file__).resolve().parents[2] / "data" / "samples" / "grid"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@functools.cache
def _decode(path: str) -> tuple[np.ndarray, ...]:
    with av.open(path) as container:
        frames = tuple(
            np.ascontiguousarray(f.to_ndarray(format="rgb24")) for f in container.decode(video=0)
        )
    for frame in frames:
        frame.flags.writeable = False
    return frames


def grid_frames(relative: str) -> list[np.ndarray]:
    """Decoded RGB frames (read-only arrays) of a sample clip, e.g. ``s1/bbaf2n.mpg``."""
    return list(_decode(str(SAMPLE_GRID / relative)))


def grid_videos() -> list[Path]:
    """Every video of the bundled GRID sample, sorted."""
    return sorted(SAMPLE_GRID.glob("**/*.mpg"))


def make_face(x: float, y: float, side: float, score: float = 0.9) -> Face:
    """A synthetic frontal face: box at (x, y) of ``side``, keypoints where BlazeFace puts them."""
    iod = side / 2.2  # eye distance vs box side, as measured on GRID
    cx, ey = x + side / 2, y + side * 0.42
    kps = np.array(
        [
            [cx - iod / 2, ey], [cx + iod / 2, ey], [cx, ey + 0.57 * iod],
            [cx, ey + 1.08 * iod], [cx - 1.05 * iod, ey + 0.28 * iod],
            [cx + 1.05 * iod, ey + 0.28 * iod],
        ]
    )
    return Face(box=np.array([x, y, side, side], dtype=np.float64), score=score, keypoints=kps)


def noise_frames(count: int, height: int = 288, width: int = 360, seed: int = 0) -> np.ndarray:
    """Uniform noise frames: nothing a face detector should take for a face."""
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3), np.uint8)


def write_testsrc(path: Path, seconds: float = 1.0, fps: int = 25) -> Path:
    """An ffmpeg ``testsrc`` video (colour bars and a counter, no face) with a sine tone."""
    subprocess.run(
        [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-y",
         "-f", "lavfi", "-i", f"testsrc=size=320x240:rate={fps}:duration={seconds}",
         "-f", "lavfi", "-i", f"sine=frequency=440:duration={seconds}",
         "-c:v", "libx264", "-pix_fmt", "yuv420p", "-c:a", "aac", "-shortest", str(path)],
        check=True,
    )
    return path


def probe_video(path: Path) -> tuple[int, float, int, int]:
    """(decoded frame count, average fps, width, height) of a written video."""
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate)
        width, height = stream.codec_context.width, stream.codec_context.height
        count = sum(1 for _ in container.decode(video=0))
    return count, rate, width, height


@pytest.fixture(scope="session")
def face_detector() -> Iterator[FaceDetector]:
    """The default (short-range) detector, shared by the whole session."""
    with FaceDetector("short_range", min_score=0.5) as detector:
        yield detector
