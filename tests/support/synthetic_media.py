"""Tiny synthetic media files for the media tests, made with lipflow's own ffmpeg.

Every maker writes one file (seconds long, 64x48 pixels unless asked) and returns its
path, so a whole test module builds its inputs in well under a second each.

What each bad file is, exactly:

- :func:`make_empty`: a zero-byte ``.mp4``.
- :func:`make_text_as_mp4`: a few lines of UTF-8 text named ``.mp4``.
- :func:`make_truncated_copy`: the first ``fraction`` (40%) of another file's bytes (for a
  GRID ``.mpg`` this cuts the stream mid-GOP, mid-packet).
- :func:`make_wrong_header_count`: an mp4 written with ``+faststart`` (the ``moov`` index,
  which lists every frame, comes before the ``mdat`` media data) and then cut to 60% of
  its bytes: the header still claims every frame while only the first ones can decode,
  the way an interrupted download looks.
- :func:`make_video` with ``audio=False``: no audio stream; :func:`make_audio_only`: an
  ``.m4a`` with an AAC stream and no video.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from lipflow.tasks.common.executables import ffmpeg_exe

VIDEO_CODECS = {
    ".mp4": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    ".mkv": ["-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p"],
    ".avi": ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"],
    ".mpg": ["-c:v", "mpeg1video", "-q:v", "5", "-f", "mpeg"],
}
AUDIO_CODECS = {
    ".mp4": ["-c:a", "aac", "-b:a", "64k"],
    ".mkv": ["-c:a", "pcm_s16le"],
    ".avi": ["-c:a", "pcm_s16le"],
    ".mpg": ["-c:a", "mp2", "-b:a", "128k"],
    ".m4a": ["-c:a", "aac", "-b:a", "64k"],
}


def run_ffmpeg(args: list[str]) -> None:
    """Run the bundled ffmpeg quietly; raise with its stderr when it fails."""
    cmd = [ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args]
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"ffmpeg failed ({result.returncode}): {result.stderr.strip()}")


def make_video(
    path: Path,
    *,
    fps: str = "30000/1001",
    duration_s: float = 2.0,
    size: str = "64x48",
    audio: bool = True,
    audio_rate_hz: int = 44100,
    audio_channels: int = 2,
    tone_start_s: float = 0.0,
    tone_hz: float = 440.0,
    audio_offset_s: float = 0.0,
) -> Path:
    """A ``testsrc`` video at ``fps`` (an ffmpeg rate string) with an optional sine track.

    The container follows ``path``'s suffix (.mp4 H.264+AAC with ``+faststart``, .mkv
    H.264+PCM, .avi MJPEG+PCM, .mpg MPEG-1+MP2 in MPEG-PS). The audio is silence until
    ``tone_start_s`` and then a full-scale/2 sine, both measured from the audio stream's
    own start; ``audio_offset_s`` delays the whole audio stream against the video
    (``-itsoffset``; negative: the video is delayed instead), so on the video's clock the
    tone begins at ``audio_offset_s + tone_start_s``. AVI and MPEG-PS do not keep a
    negative offset; use .mp4 or .mkv for that.
    """
    suffix = path.suffix
    args: list[str] = []
    if audio_offset_s < 0:  # the video starts later than the audio
        args += ["-itsoffset", str(-audio_offset_s)]
    args += ["-f", "lavfi", "-i", f"testsrc=size={size}:rate={fps}:duration={duration_s}"]
    if audio:
        expr = f"if(gte(t,{tone_start_s}),0.5*sin(2*PI*{tone_hz}*t),0)"
        exprs = "|".join([expr] * audio_channels)
        tone = f"aevalsrc='{exprs}':s={audio_rate_hz}:d={duration_s}"
        if audio_offset_s > 0:
            args += ["-itsoffset", str(audio_offset_s)]
        args += ["-f", "lavfi", "-i", tone]
        args += ["-map", "0:v", "-map", "1:a", *AUDIO_CODECS[suffix]]
    args += VIDEO_CODECS[suffix]
    if suffix == ".mp4":
        args += ["-movflags", "+faststart"]
    run_ffmpeg([*args, str(path)])
    return path


def make_audio_only(path: Path, *, duration_s: float = 1.0) -> Path:
    """An audio-only file (``.m4a``, AAC sine), no video stream."""
    tone = f"sine=frequency=440:sample_rate=44100:duration={duration_s}"
    run_ffmpeg(["-f", "lavfi", "-i", tone, *AUDIO_CODECS[".m4a"], str(path)])
    return path


def make_empty(path: Path) -> Path:
    """A zero-byte file."""
    path.write_bytes(b"")
    return path


def make_text_as_mp4(path: Path) -> Path:
    """A text file with a video's name."""
    path.write_text("This is not a video.\nJust some lines of text.\n" * 20, encoding="utf-8")
    return path


def make_truncated_copy(src: Path, dst: Path, *, fraction: float = 0.4) -> Path:
    """The first ``fraction`` of ``src``'s bytes, as a partial download would leave it."""
    data = src.read_bytes()
    dst.write_bytes(data[: int(len(data) * fraction)])
    return dst


def make_wrong_header_count(path: Path, *, fps: str = "30000/1001", duration_s: float = 2.0,
                            keep_fraction: float = 0.6) -> Path:
    """A ``+faststart`` mp4 cut to ``keep_fraction`` of its bytes (see the module docstring).

    The ``moov`` header still counts all ``duration_s * fps`` frames; fewer decode.
    """
    full = path.with_name(path.stem + ".full.mp4")
    make_video(full, fps=fps, duration_s=duration_s, size="160x120")
    make_truncated_copy(full, path, fraction=keep_fraction)
    full.unlink()
    return path
