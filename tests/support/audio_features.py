"""Real and synthetic audio for the audio-feature tests and the feature benchmark.

The real audio is the bundled GRID clip's MP2 track, decoded by the bundled ffmpeg to
16 kHz mono int16 (what preprocessing stores), then cut or zero-padded to 3 s.
"""

from __future__ import annotations

import functools
import subprocess
from pathlib import Path

import numpy as np

from lipflow.tasks.common.executables import ffmpeg_exe

SAMPLE_GRID = Path(__file__).resolve().parents[2] / "data" / "samples" / "grid"
SAMPLE_RATE_HZ = 16000
CLIP_SAMPLES = 3 * SAMPLE_RATE_HZ


@functools.cache
def decode_int16(video: Path, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """Decode ``video``'s audio to mono int16 at ``sample_rate_hz`` with the bundled ffmpeg."""
    cmd = [
        ffmpeg_exe(), "-nostdin", "-v", "error", "-i", str(video),
        "-ac", "1", "-ar", str(sample_rate_hz), "-f", "s16le", "-",
    ]
    raw = subprocess.run(cmd, check=True, capture_output=True).stdout
    wav = np.frombuffer(raw, dtype="<i2").astype(np.int16)
    wav.setflags(write=False)
    return wav


def grid_clip(stem: str = "s1/bbaf2n", samples: int = CLIP_SAMPLES) -> np.ndarray:
    """The GRID sample clip ``stem``'s audio as exactly ``samples`` int16 samples."""
    wav = decode_int16(SAMPLE_GRID / f"{stem}.mpg")
    out = np.zeros(samples, dtype=np.int16)
    out[: min(samples, wav.size)] = wav[:samples]
    return out


def chirp(samples: int = CLIP_SAMPLES, sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A 0.5-amplitude linear chirp 50 Hz -> 7.9 kHz (float64), sweeping every mel band."""
    t = np.arange(samples) / sample_rate_hz
    duration = samples / sample_rate_hz
    f0, f1 = 50.0, 7900.0
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * duration))
    return 0.5 * np.sin(phase)
