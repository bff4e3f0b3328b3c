"""Which ffmpeg binary lipflow runs: the one on PATH, else the one ``imageio-ffmpeg`` ships.

No system package is required: a fresh machine without ffmpeg still works because the
``imageio-ffmpeg`` wheel carries a static build.
"""

from __future__ import annotations

import functools
import os
import shutil


@functools.cache
def ffmpeg_exe() -> str:
    """Return the path of an ffmpeg executable (``LIPFLOW_FFMPEG`` overrides)."""
    override = os.environ.get("LIPFLOW_FFMPEG")
    if override:
        return override
    found = shutil.which("ffmpeg")
    if found:
        return found
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()
