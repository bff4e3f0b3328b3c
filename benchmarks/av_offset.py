"""Does the training-free AV offset estimator recover known shifts? Measure on real GRID.

For each video (the first 3 s, one prepare clip) the face is tracked, cropped and its
FaceMesh landmarks taken by prepare's own :class:`WindowCropper`, and the visual signals
computed once as prepare computes them (:func:`lip_signals`: lip openings, refitted from
the mouth crops between FaceMesh's frames, and the mouth's darkness; ``--lips-only``: the
landmarks' lip openings alone, the estimator before); then the audio is shifted by every offset in
``-10..+10`` frames (delayed: silence in front; advanced: silence at the end) and
:func:`lipflow.tasks.prepare.quality.av_offset` is asked for the lag. Printed: the
fraction of (clip, shift) pairs recovered within +-1 frame of the true shift (the goal
is >= 90 % on GRID), exactly, and the same for the unshifted clips' spread (GRID is
recorded in sync, so the estimate at shift 0 is the estimator's own bias). The baseline
of the ratio line is chance: a uniform guess over the 31 lags hits +-1 with 3/31.

Run: ``.venv/bin/python benchmarks/av_offset.py [--videos 100] [GRID_DIR]``
(default ``/work/data_grid/data/s1``; GRID is not bundled, any folder of .mpg works).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import _common  # noqa: E402,F401  (one BLAS thread, as prepare)

from lipflow.tasks.media.audio import read_audio  # noqa: E402
from lipflow.tasks.media.video import iter_frames  # noqa: E402
from lipflow.tasks.prepare.quality import (  # noqa: E402
    MAX_LAG_FRAMES,
    audio_envelopes,
    av_offset,
    lip_openings,
    lip_signals,
)
from lipflow.tasks.prepare.window_crops import WindowCropper  # noqa: E402
from lipflow.tasks.settings.schema import Preprocess  # noqa: E402

FPS, SR, SECONDS = 25.0, 16000, 3.0
SHIFTS = range(-10, 11)


def shifted(wav: np.ndarray, frames: int) -> np.ndarray:
    """``wav`` delayed by ``frames`` video frames (negative: advanced), same length."""
    k = round(frames * SR / FPS)
    out = np.zeros_like(wav)
    if k >= 0:
        out[k:] = wav[: len(wav) - k]
    else:
        out[:k] = wav[-k:]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("grid_dir", nargs="?", default="/work/data_grid/data/s1")
    parser.add_argument("--videos", type=int, default=100)
    parser.add_argument("--first", type=int, default=0,
                        help="start the every-n-th pick here (another set of clips)")
    parser.add_argument("--landmark-every", type=int, default=None,
                        help="FaceMesh stride (default: preprocess.landmark_every_frames)")
    parser.add_argument("--lips-only", action="store_true",
                        help="the landmarks' lip openings alone (no crop signals)")
    args = parser.parse_args()
    videos = sorted(Path(args.grid_dir).glob("*.mpg"))
    step = max(1, len(videos) // args.videos)
    videos = videos[args.first :: step][: args.videos]
    every = args.landmark_every or Preprocess().landmark_every_frames  # as prepare runs it
    cropper = WindowCropper({"landmark_every_frames": every})
    clip = int(SECONDS * FPS)
    errors: list[int] = []
    bias: list[int] = []
    relative: list[int] = []
    used = skipped = 0
    t0 = time.perf_counter()
    for path in videos:
        frames = [f.image for f in iter_frames(path, FPS, end_s=SECONDS, pixels="yuv")][:clip]
        crops = cropper(frames, len(frames))
        if not crops.track.kept or crops.landmarks is None:
            skipped += 1
            continue
        aperture = (lip_openings(crops.landmarks) if args.lips_only
                    else lip_signals(crops.landmarks, crops.mouth))
        wav = read_audio(path, SR, duration_s=SECONDS)
        wav = np.pad(wav, (0, max(0, int(SECONDS * SR) - len(wav))))
        base = av_offset(aperture, audio_envelopes(wav, len(frames), FPS, SR))
        if base is None:
            skipped += 1
            continue
        used += 1
        bias.append(base.frames)
        for shift in SHIFTS:
            est = av_offset(aperture, audio_envelopes(shifted(wav, shift), len(frames), FPS, SR))
            got = MAX_LAG_FRAMES + 99 if est is None else est.frames
            errors.append(got - shift)
            relative.append(got - shift - base.frames)
    seconds = time.perf_counter() - t0
    err, rel, b = np.abs(errors), np.abs(relative), np.array(bias)
    within = float(np.mean(err <= 1))
    chance = 3 / (2 * MAX_LAG_FRAMES + 1)
    print(f"GRID clips: {used} used, {skipped} skipped (rejected track or flat signal), "
          f"shifts {SHIFTS.start}..{SHIFTS.stop - 1} frames: {len(errors)} estimates, "
          f"{seconds:.0f} s, FaceMesh on every {every}. frame, "
          f"{'lips alone' if args.lips_only else 'lips refitted from the crops + darkness'}")
    print(f"recovered within +-1 frame: {100 * within:.1f} % (goal >= 90 %), exactly: "
          f"{100 * float(np.mean(err == 0)):.1f} %")
    print(f"relative to each clip's own unshifted estimate: within +-1 "
          f"{100 * float(np.mean(rel <= 1)):.1f} %")
    print(f"unshifted clips: estimate 0 in {100 * float(np.mean(b == 0)):.0f} %, |.| <= 1 in "
          f"{100 * float(np.mean(np.abs(b) <= 1)):.0f} %, mean {b.mean():+.2f} frames")
    print(f"ratio vs chance (uniform over {2 * MAX_LAG_FRAMES + 1} lags, {100 * chance:.1f} %): "
          f"{within / chance:.1f}x")


if __name__ == "__main__":
    main()
