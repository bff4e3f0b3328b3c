"""Are landmark-aligned mouth crops steadier than keypoint-placed ones? And what do they cost?

For each GRID video (first 3 s, one prepare clip) the face is tracked as prepare does,
then the mouth crop window (``preprocess.mouth_preset``, default 96x96) is placed both
ways: from BlazeFace's keypoints (``mouth_alignment: keypoints``, the baseline) and from
smoothed FaceMesh landmarks (``landmarks``). Printed for both, and their ratio:

- crop-centre motion: mean distance, in source pixels, the crop window's centre moves
  between consecutive frames (GRID speakers sit still, so this is mostly jitter);
- crop-centre shake: mean |c[t+1] - 2 c[t] + c[t-1]| (the part of that motion a smooth
  head movement cannot explain);
- lip-corner motion inside the crop: how far the midpoint of the lip corners (raw
  FaceMesh 61, 291) moves between frames in crop pixels: what a model sees shake;
- cost: prepare time per clip with ``mouth_alignment: keypoints`` and
  ``quality_signals: false`` (no FaceMesh: the old path) against the default
  (``landmarks``, quality signals on), measured alternately on the same videos.

With ``--sheet PNG`` it also writes a contact sheet: per video a row of keypoint crops
above a row of landmark crops, every ``--sheet-every``-th frame (``docs/img/mouth_alignment.png``:
``--videos 3 --cost-videos 0 --sheet-rows 3 --sheet-every 8``).

Run: ``.venv/bin/python benchmarks/mouth_jitter.py [--videos 50] [--sheet out.png] [GRID_DIR]``
(default ``/work/data_grid/data/s1``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402,F401  (one BLAS thread, as prepare)
import cv2  # noqa: E402

from lipflow.tasks.faces.alignment import aligned_transforms, warp_grey_yuv  # noqa: E402
from lipflow.tasks.faces.crops import contact_sheet, mouth_transforms, mouth_window  # noqa: E402
from lipflow.tasks.faces.detection import shared_detector  # noqa: E402
from lipflow.tasks.faces.landmarks import LIP_CORNERS, face_landmarks  # noqa: E402
from lipflow.tasks.faces.tracking import smooth, track_face, tracking_options  # noqa: E402
from lipflow.tasks.faces.yuv_crops import mouth_crops_yuv  # noqa: E402
from lipflow.tasks.media.video import iter_frames  # noqa: E402
from lipflow.tasks.media.yuv import RgbFrames  # noqa: E402
from lipflow.tasks.prepare.video import VideoSettings, preprocess_video  # noqa: E402
from lipflow.tasks.settings.schema import Preprocess  # noqa: E402

FPS, SECONDS = 25.0, 3.0


def centres(maps: np.ndarray, height: int, width: int) -> np.ndarray:
    """(T, 2) source-pixel position of each crop window's centre."""
    centre = np.array([(width - 1) / 2.0, (height - 1) / 2.0])
    out = np.empty((len(maps), 2))
    for t, m in enumerate(maps):
        inverse = cv2.invertAffineTransform(m)
        out[t] = inverse[:, :2] @ centre + inverse[:, 2]
    return out


def motion(points: np.ndarray) -> tuple[float, float]:
    """Mean frame-to-frame step and mean second difference of (T, 2) points."""
    step = np.linalg.norm(np.diff(points, axis=0), axis=1).mean()
    shake = np.linalg.norm(np.diff(points, n=2, axis=0), axis=1).mean()
    return float(step), float(shake)


def in_crop(maps: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(T, 2) source points mapped into each frame's crop."""
    return np.einsum("tij,tj->ti", maps[:, :, :2], points) + maps[:, :, 2]


def prepare_seconds(videos: list[Path], preprocess: dict) -> float:
    """Wall time of prepare's per-video work over ``videos`` with these settings."""
    settings = VideoSettings(fps=FPS, preprocess=preprocess, features={})
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as work:
        for path in videos:
            record = {"corpus": "grid", "speaker": "s1", "utterance_id": path.stem,
                      "language": "en", "video_path": path.name}
            preprocess_video(record, path.parent, Path(work), settings,
                             save=lambda name, arrays: name)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid_dir", nargs="?", default="/work/data_grid/data/s1")
    parser.add_argument("--videos", type=int, default=50)
    parser.add_argument("--cost-videos", type=int, default=10)
    parser.add_argument("--sheet", type=Path, default=None)
    parser.add_argument("--sheet-rows", type=int, default=4, help="videos on the sheet")
    parser.add_argument("--sheet-every", type=int, default=6, help="every k-th frame")
    args = parser.parse_args()
    videos = sorted(Path(args.grid_dir).glob("*.mpg"))
    videos = videos[:: max(1, len(videos) // args.videos)][: args.videos]
    pre = Preprocess().model_dump()
    window = mouth_window(pre)
    h, w = window.height_px, window.width_px
    detector, options = shared_detector(pre), tracking_options(pre)
    stats: dict[str, list[tuple[float, float, float]]] = {"keypoints": [], "landmarks": []}
    rows: list[np.ndarray] = []
    mesh_s = mesh_frames = 0.0
    for path in videos:
        frames = [f.image for f in iter_frames(path, FPS, end_s=SECONDS, pixels="yuv")]
        track = track_face(RgbFrames(frames), detector, **options)
        if not track.kept:
            continue
        t0 = time.perf_counter()
        marks = face_landmarks(frames, track.boxes, every=pre["landmark_every_frames"])
        mesh_s += time.perf_counter() - t0
        mesh_frames += len(frames)
        lips = marks.points[:, list(LIP_CORNERS)].mean(axis=1)
        maps = {
            "keypoints": mouth_transforms(track.keypoints, h, w, window.scale, window.shift_y),
            "landmarks": aligned_transforms(smooth(marks.points, pre["landmark_smooth_frames"]),
                                            window),
        }
        for name, m in maps.items():
            step, shake = motion(centres(m, h, w))
            lip_step, _ = motion(in_crop(m, lips))
            stats[name].append((step, shake, lip_step))
        if args.sheet is not None and len(rows) < 2 * args.sheet_rows:
            rows.append(mouth_crops_yuv(frames, track.keypoints, h, w, window.scale,
                                        window.shift_y))
            rows.append(warp_grey_yuv(frames, maps["landmarks"], h, w))
    base, new = np.array(stats["keypoints"]), np.array(stats["landmarks"])
    print(f"GRID clips: {len(base)} of {len(videos)} videos, mouth window {h}x{w}")
    labels = ("crop-centre motion (source px/frame)", "crop-centre shake (source px)",
              "lip-corner motion in the crop (crop px/frame)")
    for i, label in enumerate(labels):
        b, n = base[:, i].mean(), new[:, i].mean()
        print(f"{label}: keypoints {b:.3f}, landmarks {n:.3f}, ratio keypoints/landmarks "
              f"{b / n:.2f}x")
    print(f"FaceMesh: {1000 * mesh_s / max(mesh_frames, 1):.2f} ms a frame "
          "(crop from 4:2:0 + batched inference)")
    cost = videos[: args.cost_videos]
    if not cost:
        return _sheet(args, rows)
    old_pre = {"mouth_alignment": "keypoints", "quality_signals": False}
    prepare_seconds(cost[:1], {})  # warm both models
    old_s = new_s = 0.0
    for path in cost:  # alternate, so load on the shared machine hits both alike
        old_s += prepare_seconds([path], old_pre)
        new_s += prepare_seconds([path], {})
    clip_s = SECONDS * len(cost)
    print(f"prepare, {len(cost)} clips: keypoints without FaceMesh {clip_s / old_s:.0f}x "
          f"realtime, landmarks + quality signals {clip_s / new_s:.0f}x realtime "
          f"(cost ratio {new_s / old_s:.2f}x)")
    _sheet(args, rows)


def _sheet(args: argparse.Namespace, rows: list[np.ndarray]) -> None:
    if args.sheet is not None and rows:
        sheet = contact_sheet(rows, every=args.sheet_every)
        cv2.imwrite(str(args.sheet), sheet, [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"wrote {args.sheet} ({len(rows) // 2} videos: keypoint row above landmark row)")


if __name__ == "__main__":
    main()
