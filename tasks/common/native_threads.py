"""Keep OpenCV and BLAS to one thread while a worker preprocesses a video.

lipflow parallelises across videos (one Prefect task per video, on a process or thread
pool), so each video's native calls should not spread over the cores as well: on the
small arrays of a clip (a 360x288 frame, 96x96 crops, an 80x401 mel basis) their own
thread pools mostly add hand-over cost and oversubscribe the cores the other workers
use. Measured on GRID, 2 cores: a frame's I420 to RGB conversion takes 0.2 ms of CPU on
OpenCV's default pool against 0.13 ms on one thread; a clip's mel spectrogram 6.9 ms
with OpenBLAS on two threads against 1.8 ms on one.

The limits hold only inside :func:`one_native_thread` and are restored when the last
worker thread of the process leaves it, so training or a notebook later in the same
process gets its threads back. BLAS is limited through ``threadpoolctl`` (BLAS only: an
OpenMP limit would also throttle torch).
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import cv2

_lock = threading.Lock()
_depth = 0
_saved_opencv_threads = 0
_blas_limiter: Any = None
_controller: Any = None


def _limit_blas() -> Any:
    """Limit every BLAS library loaded now to one thread; return the limiter to undo it."""
    global _controller
    from threadpoolctl import ThreadpoolController

    if _controller is None:  # finds the loaded libraries once (a few ms), then reused
        _controller = ThreadpoolController()
    return _controller.limit(limits=1, user_api="blas")


@contextlib.contextmanager
def one_native_thread() -> Iterator[None]:
    """OpenCV and BLAS on the calling thread only, for the duration (re-entrant, thread-safe).

    Process-wide settings, so the first of several concurrent callers sets them and the
    last one to leave restores what was there before.
    """
    global _depth, _saved_opencv_threads, _blas_limiter
    with _lock:
        if _depth == 0:
            _saved_opencv_threads = cv2.getNumThreads()
            cv2.setNumThreads(1)
            _blas_limiter = _limit_blas()
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                cv2.setNumThreads(_saved_opencv_threads)
                _blas_limiter.restore_original_limits()
                _blas_limiter = None
