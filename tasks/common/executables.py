"""Which programs lipflow runs, found one way: ffmpeg, dvc and lipflow itself.

No system package is required: a fresh machine without ffmpeg still works because the
``imageio-ffmpeg`` wheel carries a static build. ``dvc`` and ``lipflow`` are looked up
beside the running interpreter first (the project's ``.venv/bin``), so a subprocess runs
the same installation as its parent even when that folder is not on ``PATH``.
"""

from __future__ import annotations

import functools
import os
import shutil
import sys
from pathlib import Path


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


def venv_tool(name: str, fallback: list[str]) -> list[str]:
    """``name`` beside this interpreter, else on ``PATH``, else the ``fallback`` command."""
    beside = Path(sys.executable).with_name(name)
    if beside.is_file():
        return [str(beside)]
    found = shutil.which(name)
    return [found] if found else fallback


def dvc_command() -> list[str]:
    """The ``dvc`` executable (``python -m dvc`` as the last resort)."""
    return venv_tool("dvc", [sys.executable, "-m", "dvc"])


def lipflow_command() -> list[str]:
    """The ``lipflow`` CLI (through this interpreter as the last resort)."""
    return venv_tool("lipflow", [sys.executable, "-c",
                                 "from lipflow.flows.cli import main; main()"])


def tool_env() -> dict[str, str]:
    """Environment for dvc/lipflow subprocesses: this interpreter's bin first, analytics off."""
    env = dict(os.environ)
    env["DVC_NO_ANALYTICS"] = "1"
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env
