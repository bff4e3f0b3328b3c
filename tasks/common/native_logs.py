"""Silence chatter that native libraries print straight to file descriptor 2.

MediaPipe's LiteRT runtime prints INFO lines ("Creating LiteRT environment...") on every
detector it builds, from C++, past Python's logging; ``GLOG_minloglevel`` does not reach
them. A batch over thousands of videos would bury real warnings under them, so detector
set-up and tear-down run inside :func:`quiet_native_stderr`. Python-level errors raised
inside still propagate normally.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null for the duration (set ``LIPFLOW_NATIVE_LOGS=1`` to keep it)."""
    if os.environ.get("LIPFLOW_NATIVE_LOGS") == "1":
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
