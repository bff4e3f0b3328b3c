"""FaceMesh landmarks (468 points) on a tracked face, from the committed TFLite model.

Why: BlazeFace's six keypoints (:mod:`lipflow.tasks.faces.detection`) are coarse and are
only detected on a few frames a clip; the mouth crop they place follows the detector's
jitter and cannot tell an open mouth from a closed one. FaceMesh gives lips, eye corners
and nose on every frame, which drive the landmark alignment
(:mod:`lipflow.tasks.faces.alignment`) and the per-clip quality signals (lip aperture
for the audio-visual offset, mouth occlusion: :mod:`lipflow.tasks.prepare.quality`).

The model runs on a square crop around the tracked (smoothed) face box, grown by
:data:`ROI_MARGIN` per side as MediaPipe's own face-landmark graph grows its detection
rectangle (1.5x), cut straight from the 4:2:0 frames by
:func:`lipflow.tasks.faces.yuv_crops.face_crops_yuv`. Frames go through the interpreter
in batches of :data:`BATCH` (measured: 1.2 ms a frame at 8 against 1.5 ms one by one,
and slower again at 25, when the activations outgrow the cache).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from lipflow.tasks.common.errors import ConfigError
from lipflow.tasks.common.native_logs import quiet_native_stderr
from lipflow.tasks.faces.crops import face_squares
from lipflow.tasks.faces.tracking import detection_frames, fill_gaps
from lipflow.tasks.faces.yuv_crops import face_crops_yuv
from lipflow.tasks.media.yuv import YuvFrame

MODEL_PATH = Path(__file__).resolve().parent / "assets" / "face_landmark.tflite"
INPUT_PX = 192
NUM_POINTS = 468
ROI_MARGIN = 0.25
"""Growth of the face box per side for the model's crop (side 1.5x the box)."""
BATCH = 8

# Landmark indices (MediaPipe's canonical face mesh); "right" is the subject's right.
LIP_CORNERS = (61, 291)
INNER_LIPS = (13, 14)  # upper, lower
OUTER_LIPS = (0, 17)  # upper, lower
RIGHT_EYE_CORNERS = (33, 133)  # outer, inner
LEFT_EYE_CORNERS = (362, 263)  # inner, outer
NOSE_TIP = 1


@dataclass(frozen=True)
class Landmarks:
    """FaceMesh output for T frames, in source pixels.

    ``points`` (T, 468, 2) x, y; ``presence`` (T,) the model's face-presence probability
    (sigmoid of its logit), which drops when the face is covered or lost.
    """

    points: np.ndarray
    presence: np.ndarray


class FaceMesh:
    """One LiteRT interpreter for the FaceMesh model, fed fixed batches of crops."""

    def __init__(self, batch: int = BATCH) -> None:
        from ai_edge_litert.interpreter import Interpreter

        if not MODEL_PATH.is_file():
            raise ConfigError(f"FaceMesh model missing at {MODEL_PATH}; the checkout is incomplete")
        with quiet_native_stderr():
            self._interpreter = Interpreter(model_path=str(MODEL_PATH), num_threads=1)
            self._interpreter.resize_tensor_input(0, [batch, INPUT_PX, INPUT_PX, 3])
            self._interpreter.allocate_tensors()
        self.batch = batch
        self._input = self._interpreter.get_input_details()[0]["index"]
        outputs = {o["name"]: o["index"] for o in self._interpreter.get_output_details()}
        # conv2d_21: (N, 1, 1, 1404) landmarks; conv2d_31: (N, 1, 1, 1) presence logit.
        by_size = sorted(outputs.values(),
                         key=lambda i: self._interpreter.get_tensor(i).size, reverse=True)
        self._points, self._logit = by_size[0], by_size[1]

    def run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(points (N, 468, 2) in crop pixels, presence (N,))`` of N RGB uint8 crops."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (INPUT_PX, INPUT_PX, 3):
            raise ValueError(f"expected (N, {INPUT_PX}, {INPUT_PX}, 3) crops, got {crops.shape}")
        count = len(crops)
        points = np.empty((count, NUM_POINTS, 2), dtype=np.float64)
        logits = np.empty(count, dtype=np.float64)
        buf = np.zeros((self.batch, INPUT_PX, INPUT_PX, 3), dtype=np.float32)
        for start in range(0, count, self.batch):
            part = crops[start : start + self.batch]
            buf[: len(part)] = part
            buf[: len(part)] *= 1.0 / 255.0
            self._interpreter.set_tensor(self._input, buf)
            self._interpreter.invoke()
            out = self._interpreter.get_tensor(self._points).reshape(self.batch, NUM_POINTS, 3)
            points[start : start + len(part)] = out[: len(part), :, :2]
            logits[start : start + len(part)] = self._interpreter.get_tensor(
                self._logit).reshape(-1)[: len(part)]
        return points, 1.0 / (1.0 + np.exp(-logits))


_per_thread = threading.local()


def shared_mesh() -> FaceMesh:
    """This thread's :class:`FaceMesh`, built on first use (an interpreter is not
    thread-safe; building one costs ~20 frames' inference, so a worker keeps it)."""
    mesh = getattr(_per_thread, "mesh", None)
    if mesh is None:
        mesh = _per_thread.mesh = FaceMesh()
    return mesh


def face_landmarks(frames: Sequence[YuvFrame], boxes: np.ndarray,
                   mesh: FaceMesh | None = None, every: int = 1) -> Landmarks:
    """FaceMesh landmarks of the face in ``boxes`` (T, 4 ``x, y, w, h``) on each frame.

    The model runs on every ``every``-th frame and the last; frames between get points
    and presence interpolated linearly (on GRID s1, ``every = 2`` recovers known audio
    shifts within +-1 frame in 85 % of cases against 88.5 % at every frame, at half the
    cost; 3 drops under 70 %: a lip closure lasts 2-3 frames). The crop is the square
    :func:`~lipflow.tasks.faces.crops.face_squares` window with :data:`ROI_MARGIN`
    (black beyond the frame edge), so crop pixels map back to source pixels by the
    window's corner and side alone.
    """
    boxes = np.asarray(boxes, dtype=np.float64)
    picked = detection_frames(len(frames), every)
    crops = face_crops_yuv([frames[int(t)] for t in picked], boxes[picked], INPUT_PX,
                           ROI_MARGIN)
    points, presence = (mesh or shared_mesh()).run(crops)
    squares = face_squares(boxes[picked], ROI_MARGIN).astype(np.float64)
    points = points * (squares[:, 2] / INPUT_PX)[:, None, None] + squares[:, None, :2]
    if len(picked) == len(frames):
        return Landmarks(points=points, presence=presence)
    known = np.zeros(len(frames), dtype=bool)
    known[picked] = True
    full_points = np.zeros((len(frames), NUM_POINTS, 2))
    full_presence = np.zeros(len(frames))
    full_points[picked], full_presence[picked] = points, presence
    return Landmarks(points=fill_gaps(full_points, known),
                     presence=fill_gaps(full_presence, known))
