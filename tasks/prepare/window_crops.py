"""A video's frames in fixed-length windows, each tracked and cropped as ``prepare`` does.

Why a module of its own: ``prepare`` (:mod:`lipflow.tasks.prepare.video`) and ``lipflow
synthesize`` (:mod:`lipflow.models.synthesize`) must see exactly the same face crops for
the same frames, or a model trained on the stores would be fed something else at
inference. Both cut windows with :func:`frame_windows` and crop them with
:class:`WindowCropper`; prepare's windows are consecutive (``step == size``), synthesize's
overlap so that their predictions can be cross-faded.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from lipflow.tasks.faces.alignment import aligned_transforms, warp_grey_yuv, window_rects
from lipflow.tasks.faces.crops import mouth_rects, mouth_window
from lipflow.tasks.faces.detection import shared_detector
from lipflow.tasks.faces.landmarks import Landmarks, face_landmarks
from lipflow.tasks.faces.tracking import FaceTrack, smooth, track_face, tracking_options
from lipflow.tasks.faces.yuv_crops import face_crops_yuv, mouth_crops_yuv
from lipflow.tasks.media.yuv import RgbFrames
from lipflow.tasks.settings.schema import Preprocess
from lipflow.tasks.settings.validation import typed_section

#: The crop streams a window can produce (the store's ``face`` and ``mouth`` arrays).
CROP_STREAMS = ("face", "mouth")


def frame_windows(frames: Iterable[Any], size: int, step: int) -> Iterator[tuple[int, list[Any]]]:
    """``(first frame index, images)`` of windows of ``size`` frames, one every ``step``.

    ``frames`` yields decoded frames (their ``.image`` is kept). Only the ``size - step``
    frames a next window shares are held between windows, so memory is one window's
    whatever the video's length. The last window is shorter when the video ends inside
    it, and is left out when it would hold only frames the window before already had.
    With ``step == size`` the windows are consecutive and do not overlap (prepare's clips).
    """
    if not 0 < step <= size:
        raise ValueError(f"need 0 < step <= size, got step {step} and size {size}")
    held: deque[Any] = deque()
    start = 0
    fresh = 0  # frames in `held` that no yielded window had yet
    for frame in frames:
        held.append(frame.image)
        fresh += 1
        if len(held) == size:
            window = list(held)
            for _ in range(step):  # before yielding: the caller may `del` its window
                held.popleft()
            start, fresh = start + step, 0
            yield start - step, window
            del window
    if fresh:
        yield start, list(held)


@dataclass(frozen=True)
class WindowCrops:
    """One window's face track and, when the track is kept, its crops (else None), and
    the raw FaceMesh landmarks when they were computed (landmark alignment or quality
    signals: :mod:`lipflow.tasks.prepare.quality`)."""

    track: FaceTrack
    face: np.ndarray | None
    mouth: np.ndarray | None
    landmarks: Landmarks | None = None


class WindowCropper:
    """Face tracking and crops of one window from the ``preprocess:`` settings.

    A short window (the video's end) repeats its last frame up to the full ``size``, so
    tracking and the mouth crop see a still face rather than a black frame that would
    look like a lost detection (:mod:`lipflow.tasks.prepare.windows`).
    """

    def __init__(self, preprocess: Mapping[str, Any],
                 streams: tuple[str, ...] = CROP_STREAMS) -> None:
        unknown = set(streams) - set(CROP_STREAMS)
        if unknown:
            raise ValueError(f"unknown crop streams {sorted(unknown)}; known: {CROP_STREAMS}")
        typed = typed_section(Preprocess, preprocess, "preprocess")
        self.streams = streams
        self.detector = shared_detector(dict(preprocess))
        self.track_options = tracking_options(preprocess)
        self.mouth = mouth_window(preprocess)
        self.face_px, self.margin = typed.face_size_px, float(typed.face_margin)
        self.alignment = typed.mouth_alignment
        self.landmark_smooth = typed.landmark_smooth_frames
        self.landmark_every = typed.landmark_every_frames
        self.use_mesh = typed.mouth_alignment == "landmarks" or typed.quality_signals

    def __call__(self, images: list[Any], size: int, *, first_frame: int = 0,
                 fps: float | None = None, crop_rejected: bool = False) -> WindowCrops:
        """Track and crop ``images`` (at most ``size`` frames), padded to ``size``.

        ``first_frame`` / ``fps`` place the window in its video (for the reason's frame
        and time). ``crop_rejected`` crops a rejected window too when any face was found
        (``lipflow track --all-crops``); prepare never stores those.
        """
        valid = len(images)
        frames = images + [images[-1]] * (size - valid)
        track = track_face(RgbFrames(frames), self.detector, valid_frames=valid,
                           first_frame=first_frame, fps=fps, **self.track_options)
        if not (track.kept or (crop_rejected and track.detected.any())):
            return WindowCrops(track, None, None)
        face = (face_crops_yuv(frames, track.boxes, self.face_px, self.margin)
                if "face" in self.streams else None)
        m = self.mouth
        landmarks = (face_landmarks(frames[:valid], track.boxes[:valid],
                                    every=self.landmark_every)
                     if self.use_mesh else None)
        if landmarks is not None:  # padding repeats the last frame
            landmarks = landmarks.padded(size)
        mouth = None
        if "mouth" in self.streams and landmarks is not None and self.alignment == "landmarks":
            points = smooth(landmarks.points, self.landmark_smooth)
            mouth = warp_grey_yuv(frames, aligned_transforms(points, m), m.height_px,
                                  m.width_px)
        elif "mouth" in self.streams:
            mouth = mouth_crops_yuv(frames, track.keypoints, m.height_px, m.width_px, m.scale,
                                    m.shift_y)
        return WindowCrops(track, face, mouth, landmarks)

    def mouth_corners(self, crops: WindowCrops) -> np.ndarray | None:
        """(T, 4, 2) corners, in source pixels, of the region each mouth crop is cut from.

        What ``lipflow track`` draws; None when the window has no face. Kept here, beside
        the crops and with the same choice of path, so that the drawn region follows
        however the crops are placed (landmark-aligned or from BlazeFace keypoints).
        """
        track = crops.track
        if not track.detected.any():
            return None
        m = self.mouth
        if crops.landmarks is not None and self.alignment == "landmarks":
            points = smooth(crops.landmarks.points, self.landmark_smooth)
            return window_rects(aligned_transforms(points, m), m.height_px, m.width_px)
        return mouth_rects(track.keypoints, m.height_px, m.width_px, m.scale, m.shift_y)
