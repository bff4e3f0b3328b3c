"""Follow one face through a clip: strided detection, overlap tracking, gap filling, smoothing.

A clip is a short list of RGB frames (3 s: 75 at 25 fps, 90 at 30 fps). The tracked face
is the largest face of the first frame where any face is found, followed from detection
to detection by box overlap (IoU), so a passer-by or a poster never replaces the speaker
mid-clip. Frames without a detection (missed, or skipped by the stride) get boxes and
keypoints interpolated linearly between their neighbours and held at the clip edges;
then a centred moving average removes detector jitter, which would otherwise shake the
mouth crops. The clip's quality figures (detection rate, face size, keypoint jitter) and
a rejection reason, if any, go into the clip manifest.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from scipy.ndimage import uniform_filter1d

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.faces.detection import Face
from lipflow.tasks.settings.schema import Preprocess
from lipflow.tasks.settings.validation import typed_section

MIN_TRACK_IOU = 0.1
"""A detection continues the track only if its box overlaps the last tracked box this much.

Between two detections at most a few frames apart a face moves a fraction of its size;
no overlap at all means a different face or a shot cut, which is counted as a miss."""

SAME_FACE_IOU = 0.3
"""Boxes overlapping the tracked one this much are the same face detected twice."""

SECOND_FACE_CHOICES = ("reject", "keep_largest")
NO_FACE = "no face detected"
TWO_FACES = "two faces"


class Detector(Protocol):
    """Anything that finds faces in an RGB frame (the real one: ``FaceDetector``)."""

    def detect(self, frame: np.ndarray) -> list[Face]: ...


@dataclass(frozen=True)
class FaceTrack:
    """One face through a clip of T frames, in source pixels.

    ``boxes`` (T, 4) ``x, y, w, h`` and ``keypoints`` (T, 6, 2) are filled and smoothed
    for every frame (NaN only when no face was found at all); ``detected`` marks frames
    where the detector ran and found the tracked face, ``attempted`` where it ran.
    """

    boxes: np.ndarray
    keypoints: np.ndarray
    detected: np.ndarray
    attempted: np.ndarray
    detection_rate: float
    mean_face_px: float
    keypoint_jitter: float
    reject_reason: str | None

    @property
    def kept(self) -> bool:
        """True when the clip passed every check."""
        return self.reject_reason is None


def detection_frames(num_frames: int, every: int) -> np.ndarray:
    """Frame indices to run the detector on: every ``every``-th one, plus the last.

    Including the last frame means interpolation, not holding, covers the clip's end.
    """
    if every < 1:
        raise ConfigError(f"preprocess.detect_every_frames must be >= 1, not {every}")
    if num_frames <= 0:
        return np.zeros(0, dtype=np.int64)
    idx = np.arange(0, num_frames, every, dtype=np.int64)
    if idx[-1] != num_frames - 1:
        idx = np.append(idx, num_frames - 1)
    return idx


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two ``(x, y, w, h)`` boxes."""
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return float(inter / union) if union > 0 else 0.0


def fill_gaps(values: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Linearly interpolate rows of ``values`` (T, ...) where ``known`` is False.

    Rows before the first / after the last known row hold that row's value (a face
    cannot be extrapolated safely beyond what was seen). ``known`` must have a True.
    """
    t = np.arange(len(values))
    have = np.flatnonzero(known)
    flat = values.reshape(len(values), -1).astype(np.float64)
    # every column shares the known rows: one set of weights (np.interp's, for all
    # columns at once; 468 landmarks x 2 made a column loop cost ~3 ms a clip)
    right = np.clip(np.searchsorted(have, t), 1, max(len(have) - 1, 1))
    left = right - 1 if len(have) > 1 else np.zeros_like(t)
    right = right if len(have) > 1 else np.zeros_like(t)
    span = np.maximum(have[right] - have[left], 1)
    weight = np.clip((t - have[left]) / span, 0.0, 1.0)[:, None]
    out = flat[have[left]] * (1.0 - weight) + flat[have[right]] * weight
    return out.reshape(values.shape)


def smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over axis 0 (edges repeat the end values).

    An even window is widened by one so the average stays centred on its frame and the
    smoothed track does not lag the video.
    """
    if window <= 1 or len(values) < 2:
        return values.astype(np.float64, copy=True)
    size = window if window % 2 else window + 1
    return uniform_filter1d(values.astype(np.float64), size=size, axis=0, mode="nearest")


def _check_options(second_face: str, second_face_area_ratio: float,
                   min_detection_rate: float) -> None:
    if second_face not in SECOND_FACE_CHOICES:
        raise ConfigError(
            f"preprocess.second_face must be one of {SECOND_FACE_CHOICES}, not {second_face!r}"
        )
    if not 0.0 < second_face_area_ratio <= 1.0:
        raise ConfigError(
            f"preprocess.second_face_area_ratio must be in (0, 1], not {second_face_area_ratio}"
        )
    if not 0.0 <= min_detection_rate <= 1.0:
        raise ConfigError(
            f"preprocess.min_detection_rate must be in [0, 1], not {min_detection_rate}"
        )


def track_from_detections(
    detections: Sequence[list[Face] | None],
    *,
    min_detection_rate: float = 0.8,
    smooth_window_frames: int = 5,
    second_face: str = "reject",
    second_face_area_ratio: float = 0.6,
    first_frame: int = 0,
    fps: float | None = None,
) -> FaceTrack:
    """Build a :class:`FaceTrack` from per-frame detector output.

    ``detections[t]`` is the list of faces found in frame t, or None where the detector
    did not run (stride). This is the whole tracking logic without the detector, so it
    can be checked with synthetic detections. ``first_frame`` (the clip's first frame in
    the video) and ``fps`` make a reason name the video's frame and second, not the clip's.
    """
    _check_options(second_face, second_face_area_ratio, min_detection_rate)
    num_frames = len(detections)
    attempted = np.array([d is not None for d in detections], dtype=bool)
    detected = np.zeros(num_frames, dtype=bool)
    raw_boxes = np.full((num_frames, 4), np.nan)
    raw_kps = np.full((num_frames, 6, 2), np.nan)
    second_face_at: int | None = None
    second_face_ratio = 0.0
    last_box: np.ndarray | None = None

    for t, faces in enumerate(detections):
        if not faces:
            continue
        if last_box is None:
            chosen = max(faces, key=lambda f: f.area)
        else:
            overlaps = [(box_iou(f.box, last_box), f) for f in faces]
            best_iou, chosen = max(overlaps, key=lambda pair: pair[0])
            if best_iou < MIN_TRACK_IOU:
                continue
        others = [
            f.area / chosen.area
            for f in faces
            if f is not chosen and box_iou(f.box, chosen.box) < SAME_FACE_IOU
        ]
        ratio = max(others, default=0.0)
        if ratio >= second_face_area_ratio and second_face_at is None:
            second_face_at, second_face_ratio = t, ratio
        detected[t] = True
        raw_boxes[t] = chosen.box
        raw_kps[t] = chosen.keypoints
        last_box = chosen.box

    num_attempted = int(attempted.sum())
    rate = float(detected.sum() / num_attempted) if num_attempted else 0.0
    if not detected.any():
        return FaceTrack(
            boxes=raw_boxes, keypoints=raw_kps, detected=detected, attempted=attempted,
            detection_rate=rate, mean_face_px=0.0, keypoint_jitter=0.0,
            reject_reason=NO_FACE,
        )

    boxes = smooth(fill_gaps(raw_boxes, detected), smooth_window_frames)
    kps = smooth(fill_gaps(raw_kps, detected), smooth_window_frames)
    side = np.sqrt(np.clip(boxes[:, 2] * boxes[:, 3], 1e-6, None))
    if num_frames > 1:
        motion = np.linalg.norm(np.diff(kps, axis=0), axis=2).mean(axis=1)
        jitter = float(np.mean(motion / side[:-1]))
    else:
        jitter = 0.0

    reason = None
    if second_face_at is not None and second_face == "reject":
        reason = (
            f"{TWO_FACES} (the second {second_face_ratio:.2f}x the tracked face's area at "
            f"{frame_label(first_frame + second_face_at, fps)})"
        )
    elif rate < min_detection_rate:
        reason = f"detection rate {rate:.2f} below {min_detection_rate:.2f}"
    return FaceTrack(
        boxes=boxes, keypoints=kps, detected=detected, attempted=attempted,
        detection_rate=rate, mean_face_px=float(side.mean()), keypoint_jitter=jitter,
        reject_reason=reason,
    )


def frame_label(frame: int, fps: float | None) -> str:
    """``frame 312, 12.48 s``: a frame of the video, by number and, with ``fps``, time."""
    return f"frame {frame}" if not fps else f"frame {frame}, {frame / fps:.2f} s"


def needs_refining(
    earlier: list[Face], later: list[Face], motion_fraction: float | None
) -> bool:
    """Whether the frames between two strided detections must be looked at too.

    True when exactly one of them found a face (the face appears or is lost in between:
    find where) or when the largest face's centre moved more than ``motion_fraction`` of
    its size (a head turn that linear interpolation would cut short). Two misses are not
    refined, so a clip without any face costs no more than the stride.
    """
    if motion_fraction is None:
        return False
    if bool(earlier) != bool(later):
        return True
    if not earlier:
        return False
    a, b = max(earlier, key=lambda f: f.area), max(later, key=lambda f: f.area)
    shift = np.hypot(
        (a.box[0] + a.box[2] / 2) - (b.box[0] + b.box[2] / 2),
        (a.box[1] + a.box[3] / 2) - (b.box[1] + b.box[3] / 2),
    )
    size = np.sqrt(max(a.area, 1e-6))
    return bool(shift > motion_fraction * size)


def strided_detections(
    frames: Sequence[Any],
    detector: Detector,
    valid: int,
    every: int,
    refine_motion: float | None,
) -> list[list[Face] | None]:
    """Run the detector on every ``every``-th of the first ``valid`` frames (and the last),
    then bisect between neighbouring detections that :func:`needs_refining` flags.

    Bisection stops at adjacent frames, so a face lost at frame 37 of a 25-frame stride
    costs about log2(25) extra detections, not 25. ``None`` marks frames not looked at.
    """
    detections: list[list[Face] | None] = [None] * len(frames)
    anchors = [int(t) for t in detection_frames(valid, every)]
    for t in anchors:
        detections[t] = detector.detect(frames[t])
    pending = list(itertools.pairwise(anchors))
    while pending:
        a, b = pending.pop()
        if b - a < 2:
            continue
        found_a, found_b = detections[a], detections[b]
        assert found_a is not None and found_b is not None
        if not needs_refining(found_a, found_b, refine_motion):
            continue
        mid = (a + b) // 2
        detections[mid] = detector.detect(frames[mid])
        pending += [(a, mid), (mid, b)]
    return detections


def track_face(
    frames: Sequence[Any],
    detector: Detector,
    *,
    detect_every_frames: int = 1,
    refine_motion: float | None = None,
    min_detection_rate: float = 0.8,
    smooth_window_frames: int = 5,
    second_face: str = "reject",
    second_face_area_ratio: float = 0.6,
    valid_frames: int | None = None,
    first_frame: int = 0,
    fps: float | None = None,
) -> FaceTrack:
    """Track the clip's face through ``frames`` (T frames of one clip).

    The detector runs on every ``detect_every_frames``-th frame (and the last valid one),
    and, with ``refine_motion`` set, between two of those that disagree (see
    :func:`needs_refining`); the rest are interpolated. ``frames[t]`` is whatever the
    detector takes (an RGB array for :class:`~lipflow.tasks.faces.detection.FaceDetector`; it is
    only indexed where the detector runs). ``valid_frames`` (default: all) excludes
    padding at the end of a short clip from detection; padded frames hold the last face.
    ``first_frame`` and ``fps`` place the clip in its video for the rejection reason.
    """
    _check_options(second_face, second_face_area_ratio, min_detection_rate)
    if refine_motion is not None and refine_motion < 0:
        raise ConfigError(f"preprocess.refine_motion must be >= 0 or null, not {refine_motion}")
    num_frames = len(frames)
    valid = num_frames if valid_frames is None else max(0, min(int(valid_frames), num_frames))
    detections = strided_detections(
        frames, detector, valid, int(detect_every_frames), refine_motion
    )
    return track_from_detections(
        detections,
        min_detection_rate=min_detection_rate,
        smooth_window_frames=int(smooth_window_frames),
        second_face=second_face,
        second_face_area_ratio=second_face_area_ratio,
        first_frame=first_frame,
        fps=fps,
    )


def tracking_options(preprocess: Mapping[str, Any]) -> dict[str, Any]:
    """``track_face`` keyword arguments from the ``preprocess:`` section of params.yaml."""
    p = typed_section(Preprocess, preprocess, "preprocess")
    return {
        "detect_every_frames": p.detect_every_frames,
        "refine_motion": p.refine_motion,
        "min_detection_rate": p.min_detection_rate,
        "smooth_window_frames": p.smooth_window_frames,
        "second_face": p.second_face,
        "second_face_area_ratio": p.second_face_area_ratio,
    }
