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
from typing import Any

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
TAIL_BATCHES = (1, 2, 4)
"""Interpreter batch sizes for the frames left after the full batches of :data:`BATCH`."""

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
    (sigmoid of its logit), which drops when the face is covered or lost; ``measured``
    (T,) bool, the frames the model ran on (None: every frame). The rest are interpolated,
    and :func:`lipflow.tasks.prepare.quality.lip_signals` refits their lips from the
    mouth crops.
    """

    points: np.ndarray
    presence: np.ndarray
    measured: np.ndarray | None = None

    def frames(self, stop: int) -> Landmarks:
        """The first ``stop`` frames (a short clip's valid ones)."""
        return Landmarks(self.points[:stop], self.presence[:stop],
                         None if self.measured is None else self.measured[:stop])

    def padded(self, size: int) -> Landmarks:
        """Padded to ``size`` frames by repeating the last (not measured there)."""
        extra = size - len(self.points)
        if extra <= 0:
            return self
        measured = (np.ones(len(self.points), dtype=bool) if self.measured is None
                    else self.measured)
        return Landmarks(
            np.concatenate([self.points, np.repeat(self.points[-1:], extra, axis=0)]),
            np.concatenate([self.presence, np.repeat(self.presence[-1:], extra)]),
            np.concatenate([measured, np.zeros(extra, dtype=bool)]))


class FaceMesh:
    """LiteRT interpreters for the FaceMesh model, one per batch size, fed fixed batches.

    Frames go through in batches of ``batch``; the rest of a clip goes through the
    smallest interpreter of :data:`TAIL_BATCHES` that holds it, built on first use, so no
    frame's inference is spent on padding (26 frames at every 3rd of a 3-s clip: 8, 8,
    8 and 2, not four batches of 8).
    """

    def __init__(self, batch: int = BATCH) -> None:
        if not MODEL_PATH.is_file():
            raise ConfigError(f"FaceMesh model missing at {MODEL_PATH}; the checkout is incomplete")
        self.batch = batch
        self._sizes = sorted({size for size in TAIL_BATCHES if size < batch} | {batch})
        self._interpreters: dict[int, tuple[Any, int, int, int]] = {}
        self._interpreter_for(batch)

    def _interpreter_for(self, size: int) -> tuple[Any, int, int, int]:
        """``(interpreter, input index, points index, logit index)`` for batches of ``size``."""
        if size in self._interpreters:
            return self._interpreters[size]
        from ai_edge_litert.interpreter import Interpreter

        with quiet_native_stderr():
            interpreter = Interpreter(model_path=str(MODEL_PATH), num_threads=1)
            interpreter.resize_tensor_input(0, [size, INPUT_PX, INPUT_PX, 3])
            interpreter.allocate_tensors()
        outputs = {o["name"]: o["index"] for o in interpreter.get_output_details()}
        # conv2d_21: (N, 1, 1, 1404) landmarks; conv2d_31: (N, 1, 1, 1) presence logit.
        by_size = sorted(outputs.values(),
                         key=lambda i: interpreter.get_tensor(i).size, reverse=True)
        entry = (interpreter, interpreter.get_input_details()[0]["index"], by_size[0], by_size[1])
        self._interpreters[size] = entry
        return entry

    def _batches(self, count: int) -> list[tuple[int, int, int]]:
        """``(start, frames, interpreter size)`` covering ``count`` frames."""
        out, start = [], 0
        while start < count:
            left = count - start
            size = self.batch if left >= self.batch else min(s for s in self._sizes if s >= left)
            out.append((start, min(size, left), size))
            start += size
        return out

    def run(self, crops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(points (N, 468, 2) in crop pixels, presence (N,))`` of N RGB uint8 crops."""
        crops = np.asarray(crops)
        if crops.ndim != 4 or crops.shape[1:] != (INPUT_PX, INPUT_PX, 3):
            raise ValueError(f"expected (N, {INPUT_PX}, {INPUT_PX}, 3) crops, got {crops.shape}")
        count = len(crops)
        points = np.empty((count, NUM_POINTS, 2), dtype=np.float64)
        logits = np.empty(count, dtype=np.float64)
        for start, frames, size in self._batches(count):
            interpreter, input_index, points_index, logit_index = self._interpreter_for(size)
            buf = np.zeros((size, INPUT_PX, INPUT_PX, 3), dtype=np.float32)
            part = crops[start : start + frames]
            np.multiply(part, np.float32(1.0 / 255.0), out=buf[:frames])
            interpreter.set_tensor(input_index, buf)
            interpreter.invoke()
            out = interpreter.get_tensor(points_index).reshape(size, NUM_POINTS, 3)
            points[start : start + frames] = out[:frames, :, :2]
            logits[start : start + frames] = interpreter.get_tensor(
                logit_index).reshape(-1)[:frames]
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
    and presence interpolated linearly, and ``measured`` says which were seen. Linear
    lips miss a closure between two measured frames (a closure lasts 2-3 frames), so the
    quality signals refit the lips between measured frames from the mouth crops
    (:func:`lipflow.tasks.prepare.quality.lip_signals`). The crop is the square
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
                     presence=fill_gaps(full_presence, known), measured=known)
