"""Keep OpenCV to one thread in lipflow's per-video work.

lipflow parallelises across videos (one Prefect task per video, on a process or thread
pool), so each video's OpenCV calls should not spread over the cores as well: on the
small images of a clip (a 360x288 frame, 96x96 crops) OpenCV's own thread pool mostly
adds hand-over cost. Measured on GRID, 2 cores: a frame's I420 to RGB conversion takes
0.2 ms of CPU with the default pool against 0.13 ms on one thread, and the whole
preprocessing of a clip about a quarter less CPU.
"""

from __future__ import annotations

import cv2


def one_opencv_thread() -> None:
    """Make OpenCV run its functions on the calling thread only (process-wide, idempotent)."""
    if cv2.getNumThreads() != 1:
        cv2.setNumThreads(1)
