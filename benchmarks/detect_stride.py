"""How far may face detection be strided? Measure, on the bundled GRID sample.

For each stride k the face track (detection on every k-th frame and the last, linear
interpolation between, the moving-average smoothing of params.yaml) is compared with
the every-frame track (smoothed the same way): the mean absolute deviation of the box
corners and of the mouth-centre keypoint, as % of the face size (box side), and the
detection time per frame of video, for each ``refine_motion`` asked for (the refinement
detects between two strided detections that disagree). ``preprocess.detect_every_frames``
must keep the mean box deviation under 2 %; the script prints the largest k that does,
and the default is chosen below it with margin (docs/params.md).

Run: ``.venv/bin/python benchmarks/detect_stride.py [--strides 1 5 10 25]
[--refine-motion none 0.1] [VIDEO ...]``
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipflow.tasks.faces.detection import MOUTH_CENTRE, detector_from_params  # noqa: E402
from lipflow.tasks.faces.tracking import FaceTrack, track_face, tracking_options  # noqa: E402
from lipflow.tasks.media.probe import probe  # noqa: E402
from lipflow.tasks.media.video import iter_frames  # noqa: E402
from lipflow.tasks.settings.project import load_params  # noqa: E402

LIMIT_PCT = 2.0


def corners(boxes: np.ndarray) -> np.ndarray:
    """(T, 4) x0, y0, x1, y1 from x, y, w, h."""
    return np.concatenate([boxes[:, :2], boxes[:, :2] + boxes[:, 2:]], axis=1)


def deviation_pct(track: FaceTrack, reference: FaceTrack) -> tuple[float, float, float]:
    """Mean and max box-corner deviation, mean mouth deviation, in % of face side."""
    side = np.sqrt(reference.boxes[:, 2] * reference.boxes[:, 3])
    box_dev = np.abs(corners(track.boxes) - corners(reference.boxes)).mean(axis=1) / side
    mouth = np.linalg.norm(
        track.keypoints[:, MOUTH_CENTRE] - reference.keypoints[:, MOUTH_CENTRE], axis=1
    ) / side
    return 100 * box_dev.mean(), 100 * box_dev.max(), 100 * mouth.mean()


def _refine_arg(text: str) -> float | None:
    return None if text.lower() in {"none", "null", "off"} else float(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("videos", nargs="*", type=Path)
    parser.add_argument("--strides", nargs="+", type=int, default=[1, 5, 10, 15, 20, 25])
    parser.add_argument("--refine-motion", nargs="+", type=_refine_arg, default=None,
                        metavar="F", help="refine_motion values to try ('none' = off); "
                        "default: the one in params.yaml")
    args = parser.parse_args()
    videos = args.videos or sorted((ROOT / "data/samples/grid").glob("**/*.mpg"))
    pre = load_params(ROOT / "params.yaml")["preprocess"]
    options = tracking_options(pre)
    refines = args.refine_motion if args.refine_motion else [options["refine_motion"]]
    ways = [(k, r) for k in args.strides for r in refines]
    clip_frames = None

    results: dict[tuple, list[tuple[float, float, float]]] = {w: [] for w in ways}
    seconds: dict[tuple, float] = dict.fromkeys(ways, 0.0)
    calls: dict[tuple, int] = dict.fromkeys(ways, 0)
    total_frames = 0
    with detector_from_params(pre) as detector:
        detector.detect(np.zeros((64, 64, 3), np.uint8))  # warm-up outside the timings
        for video in videos:
            fps = probe(video).avg_fps
            clip_frames = round(fps * float(pre["clip_seconds"]))
            frames = [f.image for f in iter_frames(video, fps)]
            for start in range(0, len(frames), clip_frames):
                clip = frames[start : start + clip_frames]
                total_frames += len(clip)
                tracks = {}
                for k, refine in ways:
                    t0 = time.perf_counter()
                    tracks[k, refine] = track_face(
                        clip, detector,
                        **{**options, "detect_every_frames": k, "refine_motion": refine},
                    )
                    seconds[k, refine] += time.perf_counter() - t0
                    calls[k, refine] += int(tracks[k, refine].attempted.sum())
                reference = track_face(
                    clip, detector,
                    **{**options, "detect_every_frames": 1, "refine_motion": None},
                )
                if not reference.kept:
                    print(f"skip {video.name}@{start}: {reference.reject_reason}")
                    continue
                for way in ways:
                    results[way].append(deviation_pct(tracks[way], reference))

    print(f"{len(videos)} videos, {total_frames} frames, detector {pre['detector']}, "
          f"smoothing {options['smooth_window_frames']} frames, clips of {clip_frames} frames")
    print(f"{'k':>3} {'refine':>7} {'box dev mean %':>15} {'box dev max %':>14} "
          f"{'mouth dev %':>12} {'detections/clip':>16} {'track ms/frame':>15}")
    best: dict[float | None, int] = {}
    for k, refine in ways:
        dev = np.array(results[k, refine])
        mean_pct, max_pct, mouth_pct = dev[:, 0].mean(), dev[:, 1].max(), dev[:, 2].mean()
        per_frame_ms = 1000 * seconds[k, refine] / total_frames
        per_clip = calls[k, refine] * clip_frames / total_frames
        print(f"{k:>3} {str(refine):>7} {mean_pct:>15.3f} {max_pct:>14.3f} {mouth_pct:>12.3f} "
              f"{per_clip:>16.1f} {per_frame_ms:>15.2f}")
        if mean_pct < LIMIT_PCT:
            best[refine] = max(best.get(refine, 1), k)
    for refine, k in best.items():
        print(f"refine_motion={refine}: largest k with mean box deviation under "
              f"{LIMIT_PCT}%: {k}")


if __name__ == "__main__":
    main()
