"""Find faces in one RGB frame with MediaPipe's BlazeFace (Tasks API), offline.

The detector is built once per video or worker (loading the model costs far more than a
frame) and always from the model files committed under ``tasks/faces/assets/``:
``mediapipe`` 0.10.30 and later would otherwise try to download models at run time,
which an offline machine cannot do.

Keypoints come in BlazeFace's order (see :data:`KEYPOINT_NAMES`); "right" is the
subject's right, which is on the image's left in an unmirrored video.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import numpy as np

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.common.native_logs import quiet_native_stderr
from lipflow.tasks.settings.schema import Preprocess
from lipflow.tasks.settings.validation import typed_section

# The full-range model logs a glog warning every few frames: GLOG_minloglevel=2 keeps
# ERROR and above; lipflow.tasks.common.process.configure_process sets it (before any
# mediapipe import), not this module.

MODELS_DIR = Path(__file__).resolve().parent / "assets"
MODEL_FILES = {
    "short_range": "face_detection_short_range.tflite",
    "full_range": "face_detection_full_range_sparse.tflite",
}
KEYPOINT_NAMES = (
    "right_eye",
    "left_eye",
    "nose_tip",
    "mouth_centre",
    "right_ear_tragion",
    "left_ear_tragion",
)
RIGHT_EYE, LEFT_EYE, NOSE_TIP, MOUTH_CENTRE = 0, 1, 2, 3


@dataclass(frozen=True)
class Face:
    """One detected face, in source pixels.

    ``box`` is ``(x, y, w, h)`` (top-left corner and size), ``keypoints`` is ``(6, 2)``
    ``(x, y)`` in :data:`KEYPOINT_NAMES` order.
    """

    box: np.ndarray
    score: float
    keypoints: np.ndarray

    @property
    def area(self) -> float:
        """Box area in square pixels (the "largest face" rule compares these)."""
        return float(self.box[2] * self.box[3])


def model_path(detector: str) -> Path:
    """Return the committed model file for ``detector`` (``short_range``/``full_range``)."""
    name = MODEL_FILES.get(detector)
    if name is None:
        raise ConfigError(
            f"preprocess.detector must be one of {list(DETECTORS)}, not {detector!r}"
        )
    path = MODELS_DIR / name
    if not path.is_file():
        raise ConfigError(f"MediaPipe model missing at {path}; the checkout is incomplete")
    return path


#: Every ``preprocess.detector`` value: a BlazeFace model, or ``auto`` (:class:`FaceDetector`).
DETECTORS = (*MODEL_FILES, "auto")
#: ``auto``'s tiles: squares of this fraction of the frame's short side, overlapping by
#: :data:`TILE_OVERLAP`, looked at only when neither model found a face in the whole frame.
TILE_FRACTION = 0.5
TILE_OVERLAP = 0.25
#: Frames whose short side is below this are not tiled: a tile would be smaller than the
#: full-range model's 192-px input, so nothing is gained by cutting it out.
MIN_TILED_SIDE = 384
#: Two detections (from overlapping tiles, or the two models) of one face overlap this much.
DUPLICATE_IOU = 0.3
#: ``auto``: a further short-range face below this score counts only if the full-range
#: model finds it too. Short-range's false faces in blurred backgrounds score 0.54-0.60
#: (one of them rejected a one-speaker window of lp_s18 as "two faces"; docs/real_footage.md).
CONFIRM_SCORE = 0.75


class _BlazeFace:
    """One MediaPipe BlazeFace model in IMAGE mode (independent calls)."""

    def __init__(self, detector: str, min_score: float) -> None:
        from mediapipe.tasks.python import BaseOptions, vision

        options = vision.FaceDetectorOptions(
            base_options=BaseOptions(model_asset_path=str(model_path(detector))),
            running_mode=vision.RunningMode.IMAGE,
            min_detection_confidence=float(min_score),
        )
        with quiet_native_stderr():
            self._task = vision.FaceDetector.create_from_options(options)

    def detect(self, frame: np.ndarray) -> list[Face]:
        import mediapipe as mp

        # PyAV hands out row-padded views; MediaPipe reads the buffer as packed rows
        # and silently finds nothing in a strided array, so always pass a packed copy.
        image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(frame))
        # LiteRT logs a buffer-alignment notice to fd 2 once a process; quieting only an
        # instance's first call let it through now and then (seen in ./run demo and at
        # scale), so every call is quiet: ~10 us of dup2 against ~1-3 ms of inference
        with quiet_native_stderr():
            result = self._task.detect(image)
        height, width = frame.shape[:2]
        faces = []
        for det in result.detections:
            bb = det.bounding_box
            box = np.array([bb.origin_x, bb.origin_y, bb.width, bb.height], dtype=np.float64)
            kps = np.array([[kp.x * width, kp.y * height] for kp in det.keypoints], np.float64)
            score = float(det.categories[0].score) if det.categories else 0.0
            faces.append(Face(box=box, score=score, keypoints=kps.reshape(-1, 2)))
        return faces

    def close(self) -> None:
        with quiet_native_stderr():
            self._task.close()


def tiles(width: int, height: int, fraction: float = TILE_FRACTION,
          overlap: float = TILE_OVERLAP) -> list[tuple[int, int, int]]:
    """``(x, y, side)`` squares covering a ``width`` x ``height`` frame, for ``auto``.

    Side = ``fraction`` of the short side; neighbours overlap by ``overlap`` of a side, so
    a face up to that size lies whole inside some tile. Empty for frames too small to gain
    from tiling (:data:`MIN_TILED_SIDE`).
    """
    short = min(width, height)
    if short < MIN_TILED_SIDE:
        return []
    side = max(1, round(short * fraction))
    step = max(1, round(side * (1 - overlap)))

    def starts(length: int) -> list[int]:
        last = max(0, length - side)
        count = int(np.ceil(last / step)) + 1
        return sorted({min(last, i * step) for i in range(count)})

    return [(x, y, side) for y in starts(height) for x in starts(width)]


def merge_faces(groups: list[list[Face]]) -> list[Face]:
    """One list of faces from several detections of the same frame, duplicates removed.

    Best score first; a face overlapping an already kept one by :data:`DUPLICATE_IOU` or
    more is the same face seen twice (two tiles, or both models) and is dropped.
    """
    from lipflow.tasks.faces.tracking import box_iou

    kept: list[Face] = []
    for face in sorted((f for g in groups for f in g), key=lambda f: f.score, reverse=True):
        if all(box_iou(face.box, k.box) < DUPLICATE_IOU for k in kept):
            kept.append(face)
    return kept


def _shifted(face: Face, dx: float, dy: float) -> Face:
    offset = np.array([dx, dy], dtype=np.float64)
    box = face.box.copy()
    box[:2] += offset
    return Face(box=box, score=face.score, keypoints=face.keypoints + offset)


class FaceDetector:
    """MediaPipe face detector over RGB frames; use as a context manager.

    Runs in IMAGE mode: every call is independent, so strided detection (every k-th
    frame) and several clips through one detector need no timestamp bookkeeping, and
    results do not depend on which frames came before.

    ``detector`` is a BlazeFace model (``short_range``: faces filling much of the frame,
    the best on near-profile heads; ``full_range``: smaller faces, up to ~5 m) or
    ``auto``, for footage that mixes both: the short-range model first (a second face it
    finds with a score below :data:`CONFIRM_SCORE` must be found by the full-range model
    too); where it finds nothing, the full-range model on the whole frame; where that
    finds nothing either, the full-range model on overlapping tiles (:func:`tiles`), which
    finds faces of ~65 px in 1080p and 4K frames that both models miss when the frame is
    shrunk to their 128/192-px input. A frame with one face costs one call, as
    ``short_range`` does; only frames without one, or with a doubtful second one, pay for
    the fallbacks (docs/real_footage.md has the measurement).
    """

    def __init__(self, detector: str = "short_range", min_score: float = 0.5) -> None:
        if detector not in DETECTORS:
            raise ConfigError(
                f"preprocess.detector must be one of {list(DETECTORS)}, not {detector!r}"
            )
        if not 0.0 <= min_score <= 1.0:
            raise ConfigError(f"preprocess.min_face_score must be in [0, 1], not {min_score}")
        self.detector_name = detector
        self.min_score = float(min_score)
        self._models: dict[str, _BlazeFace] = {}
        self._closed = False
        self._model("short_range" if detector == "auto" else detector)  # fail now, not later
        #: Calls per model (and ``tile``) since construction: what ``auto`` costs.
        self.calls: dict[str, int] = {"short_range": 0, "full_range": 0, "tile": 0}

    @property
    def _detector(self) -> object | None:
        """None once closed (kept for the shared cache's check)."""
        return None if self._closed else self

    def _model(self, name: str) -> _BlazeFace:
        model = self._models.get(name)
        if model is None:
            model = self._models[name] = _BlazeFace(name, self.min_score)
        return model

    def detect(self, frame: np.ndarray) -> list[Face]:
        """Return the faces in one ``(H, W, 3)`` uint8 RGB frame, best score first."""
        if self._closed:
            raise RuntimeError("FaceDetector used after close()")
        if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
            raise ValueError(
                f"expected an (H, W, 3) uint8 RGB frame, got {frame.shape} {frame.dtype}"
            )
        if self.detector_name != "auto":
            return self._run(self.detector_name, frame)
        faces = self._run("short_range", frame)
        if len(faces) > 1 and faces[1].score < CONFIRM_SCORE:
            return self._confirmed(faces, self._run("full_range", frame))
        if faces:
            return faces
        faces = self._run("full_range", frame)
        if faces:
            return faces
        height, width = frame.shape[:2]
        found = []
        for x, y, side in tiles(width, height):
            self.calls["tile"] += 1
            tile_faces = self._model("full_range").detect(frame[y:y + side, x:x + side])
            found.append([_shifted(f, x, y) for f in tile_faces])
        return merge_faces(found)

    @staticmethod
    def _confirmed(short: list[Face], full: list[Face]) -> list[Face]:
        """``short``'s best face, and its others that score high or that ``full`` also found."""
        from lipflow.tasks.faces.tracking import box_iou

        return [short[0]] + [
            f for f in short[1:]
            if f.score >= CONFIRM_SCORE or any(box_iou(f.box, g.box) >= DUPLICATE_IOU
                                                for g in full)
        ]

    def _run(self, name: str, frame: np.ndarray) -> list[Face]:
        self.calls[name] += 1
        faces = self._model(name).detect(frame)
        faces.sort(key=lambda f: f.score, reverse=True)
        return faces

    def close(self) -> None:
        """Free the native graphs (idempotent)."""
        for model in self._models.values():
            model.close()
        self._models.clear()
        self._closed = True

    def __enter__(self) -> FaceDetector:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def detector_from_params(preprocess: dict) -> FaceDetector:
    """Build a :class:`FaceDetector` from the ``preprocess:`` section of params.yaml."""
    p = typed_section(Preprocess, preprocess, "preprocess")
    return FaceDetector(detector=p.detector, min_score=p.min_face_score)


_per_thread = threading.local()
_all_shared: weakref.WeakSet[FaceDetector] = weakref.WeakSet()


def shared_detector(preprocess: dict) -> FaceDetector:
    """This thread's detector for the ``preprocess:`` settings, built on first use.

    Building a detector (loading the model, setting up the graph) costs as much as four
    detections; a worker that preprocesses video after video reuses one instead. The
    cache is per thread because a MediaPipe task must not be called from two threads at
    once; process-pool workers each get their own. Do not close the result: they are
    closed when the interpreter exits (or by :func:`close_shared_detectors`).
    """
    p = typed_section(Preprocess, preprocess, "preprocess")
    key = (p.detector, p.min_face_score)
    cache: dict[tuple[str, float], FaceDetector] = _per_thread.__dict__.setdefault("cache", {})
    detector = cache.get(key)
    if detector is None or detector._detector is None:
        detector = FaceDetector(detector=key[0], min_score=key[1])
        cache[key] = detector
        _all_shared.add(detector)
    return detector


@atexit.register
def close_shared_detectors() -> None:
    """Close every cached detector (all threads'); the next use builds a new one."""
    for detector in list(_all_shared):
        detector.close()
