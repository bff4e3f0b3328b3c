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
import threading
from collections.abc import Iterator

#: fd 2 is one per process: threads that quiet it at once share one redirection (the
#: first in saves and redirects, the last out restores). Without this, two threads' first
#: detections (one detector per worker thread) could interleave save and restore and
#: leave fd 2 pointing at the terminal while one of them still expected silence, or
#: at /dev/null for good.
_lock = threading.Lock()
_depth = 0
_saved: int | None = None


@contextlib.contextmanager
def quiet_native_stderr() -> Iterator[None]:
    """Point fd 2 at /dev/null for the duration (set ``LIPFLOW_NATIVE_LOGS=1`` to keep it).

    Thread-safe: overlapping uses in several threads keep fd 2 quiet until the last one
    ends, then restore the original.
    """
    global _depth, _saved
    if os.environ.get("LIPFLOW_NATIVE_LOGS") == "1":
        yield
        return
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
                saved = None
            if saved is not None:
                with open(os.devnull, "wb") as devnull:
                    os.dup2(devnull.fileno(), 2)
            _saved = saved
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved is not None:
                os.dup2(_saved, 2)
                os.close(_saved)
                _saved = None
