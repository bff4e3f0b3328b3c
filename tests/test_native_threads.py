"""Per-video work runs OpenCV and BLAS on one thread, and gives the threads back after."""

from __future__ import annotations

import threading

import cv2
import numpy as np
from threadpoolctl import threadpool_info

from lipflow.tasks.common.native_threads import one_native_thread


def _blas_threads() -> set[int]:
    return {info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"}


def test_limits_hold_inside_and_are_restored_after():
    np.ones((4, 4)) @ np.ones((4, 4))  # BLAS is loaded
    before_cv, before_blas = cv2.getNumThreads(), _blas_threads()
    cv2.setNumThreads(2)
    try:
        with one_native_thread():
            assert cv2.getNumThreads() == 1
            assert _blas_threads() == {1}
            with one_native_thread():  # re-entrant
                assert cv2.getNumThreads() == 1
            assert cv2.getNumThreads() == 1  # the inner exit does not restore early
        assert cv2.getNumThreads() == 2
        assert _blas_threads() == before_blas
    finally:
        cv2.setNumThreads(before_cv)


def test_concurrent_workers_restore_only_when_the_last_leaves():
    before = cv2.getNumThreads()
    cv2.setNumThreads(2)
    inside, release = threading.Event(), threading.Event()

    def worker() -> None:
        with one_native_thread():
            inside.set()
            release.wait(10)

    thread = threading.Thread(target=worker)
    try:
        thread.start()
        assert inside.wait(10)
        with one_native_thread():
            assert cv2.getNumThreads() == 1
        assert cv2.getNumThreads() == 1  # the other worker is still inside
        release.set()
        thread.join(10)
        assert cv2.getNumThreads() == 2
    finally:
        release.set()
        thread.join(10)
        cv2.setNumThreads(before)
