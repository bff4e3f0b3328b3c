"""Peak memory and speed of preprocessing long videos: does RSS stay flat with length?

    .venv/bin/python benchmarks/long_video.py [--minutes 5 20] [--height 720] [--quick]

Makes talking-head videos of each length by looping the GRID fixture clip
``data/samples/grid/s1/bbaf2n.mpg`` with the bundled ffmpeg (``-stream_loop``; scaled to
the height keeping its aspect and padded to 16:9, 30 fps, libx264 ultrafast, AAC,
faststart), cached under ``.cache/benchmarks/`` (gitignored) so a second run skips it.
Each video is then preprocessed by ``lipflow.tasks.prepare.video.preprocess_video`` with a 30 fps
Lip2Wav speaker's settings (``--speaker chem`` by default: full frame, full-range
detector) in a fresh subprocess, so each run's peak RSS (``ru_maxrss`` read at the end
of the child) is its own. The clips' ``.npy`` files (disk, not memory: ~3.5 MB per clip)
go to a temp folder that is deleted after each run.

Printed per length: peak RSS, RSS after imports (the floor every run pays), realtime
factor per core (seconds of video per CPU second, all threads) and per wall second, and
kept/rejected clips; then the ratio of peak RSS longest / shortest (goal: stays ~1,
<= 1.10x) and the longest run's peak RSS against issue 5's 1.5 GB limit, each with
"goal met" or "goal missed" (a benchmark, not a test). BLAS/OpenMP run on one thread.
``--quick`` (0.5 and 2 minutes at 360p) is a smoke run, not a measurement.
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common  # first: pins BLAS/OpenMP threads before numpy loads

from lipflow.tasks.common.atomic import atomic_path
from lipflow.tasks.common.executables import ffmpeg_exe

FIXTURE = common.SAMPLE_GRID / "s1" / "bbaf2n.mpg"
FIXTURE_SECONDS = 3.0
SOURCE_FPS = 30
CACHE_DIR = common.ROOT / ".cache" / "benchmarks"
GOAL_RSS_RATIO = 1.10
GOAL_PEAK_RSS_MB = 1536.0
RESULT_TAG = "LONG_VIDEO_RESULT "


# --------------------------------------------------------------------------- the videos


def video_name(minutes: float, height: int) -> str:
    return f"talking_head_{minutes:g}min_{height}p.mp4"


def make_video(minutes: float, height: int, cache_dir: Path) -> Path:
    """A ``minutes``-long ``height``p 16:9 30 fps H.264/AAC mp4 looping the fixture (cached)."""
    out = cache_dir / video_name(minutes, height)
    if out.is_file() and out.stat().st_size > 0:
        return out
    seconds = minutes * 60.0
    # one loop to spare: joining MPEG-PS copies loses a frame here and there, and -t cuts
    loops = math.ceil(seconds / FIXTURE_SECONDS)
    width = 2 * round(height * 16 / 9 / 2)
    vf = f"scale=-2:{height},pad={width}:{height}:(ow-iw)/2:0,fps={SOURCE_FPS},format=yuv420p"
    with atomic_path(out) as tmp:
        subprocess.run(
            [ffmpeg_exe(), "-loglevel", "error", "-y", "-stream_loop", str(loops),
             "-i", str(FIXTURE), "-t", f"{seconds:.3f}", "-vf", vf,
             "-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac", "-b:a", "96k",
             "-movflags", "+faststart", "-f", "mp4", str(tmp)],
            check=True, stdin=subprocess.DEVNULL,
        )
    return out


# --------------------------------------------------------------------------- the child


def child(video: Path, work_dir: Path, speaker: str) -> None:
    """Preprocess one video in this (fresh) process and print one JSON result line."""
    with common.one_blas_thread():
        from lipflow.tasks.prepare.settings import speaker_settings
        from lipflow.tasks.prepare.video import preprocess_video
        from lipflow.tasks.settings.project import load_params

        settings, _ = speaker_settings(load_params(), "lip2wav", speaker)
        # Imports are the floor every worker pays, not part of the run. mediapipe's
        # ``vision`` package (loaded by FaceDetector) pulls in matplotlib.pyplot.
        from mediapipe.tasks.python import vision  # noqa: F401

        imports_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        record = {
            "corpus": "lip2wav", "speaker": speaker, "utterance_id": video.stem,
            "language": "en", "split": "test", "video_path": video.name, "word_timings": None,
        }
        timing_box: list[list[dict[str, Any]]] = []
        timing = common.measure(
            lambda: timing_box.append(preprocess_video(record, video.parent, work_dir, settings))
        )
        rows = timing_box[0]
    result = {
        "video_s": sum(int(r["valid_frames"]) for r in rows) / settings.fps,
        "fps": settings.fps,
        "kept": sum(bool(r["kept"]) for r in rows),
        "rejected": sum(not r["kept"] for r in rows),
        "reasons": sorted({str(r["reject_reason"]) for r in rows if not r["kept"]})[:3],
        "cpu_s": timing.cpu_s,
        "wall_s": timing.wall_s,
        "imports_rss_kb": imports_kb,
        "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
    }
    print(RESULT_TAG + json.dumps(result), flush=True)


def run_child(video: Path, speaker: str) -> dict[str, Any]:
    """Run :func:`child` in a fresh interpreter with a temp work folder; return its result."""
    work = Path(tempfile.mkdtemp(prefix="lipflow-long-"))
    try:
        proc = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child", str(video), str(work),
             "--speaker", speaker],
            capture_output=True, text=True, stdin=subprocess.DEVNULL,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for line in proc.stdout.splitlines():
        if line.startswith(RESULT_TAG):
            return json.loads(line[len(RESULT_TAG):])
    raise SystemExit(f"preprocessing {video} failed (exit {proc.returncode}):\n"
                     f"{proc.stdout[-2000:]}{proc.stderr[-4000:]}")


# --------------------------------------------------------------------------- the report


def _mb(kb: float) -> float:
    return kb / 1024.0


def run(minutes: list[float], height: int, speaker: str, cache_dir: Path) -> None:
    """Make (or reuse) each video, preprocess each in a child, print figures and goals."""
    results: dict[float, dict[str, Any]] = {}
    for m in minutes:
        t0 = time.perf_counter()
        video = make_video(m, height, cache_dir)
        made_s = time.perf_counter() - t0
        res = run_child(video, speaker)
        results[m] = res
        print(f"{m:g} min {height}p ({video.name}, ready in {made_s:.0f} s): "
              f"{res['video_s']:.0f} s of video at {res['fps']:g} fps, {res['kept']} clips kept, "
              f"{res['rejected']} rejected{' ' + str(res['reasons']) if res['rejected'] else ''}")
        print(f"  peak RSS {_mb(res['peak_rss_kb']):7.1f} MB  (after imports "
              f"{_mb(res['imports_rss_kb']):.1f} MB)  cpu {res['cpu_s']:.1f} s  "
              f"wall {res['wall_s']:.1f} s  realtime per core "
              f"{res['video_s'] / res['cpu_s']:.1f}x  (wall {res['video_s'] / res['wall_s']:.1f}x)")
    print(f"speaker preset {speaker!r}; {common.BLAS_NOTE}")
    short, long_ = min(minutes), max(minutes)
    peak_short = results[short]["peak_rss_kb"]
    peak_long = results[long_]["peak_rss_kb"]
    ratio = peak_long / peak_short
    print(common.ratio_line(f"peak RSS {long_:g} min / {short:g} min", ratio,
                            f"<= {GOAL_RSS_RATIO:.2f}x", ratio <= GOAL_RSS_RATIO))
    growth = (peak_long - results[long_]["imports_rss_kb"]) / max(
        1.0, peak_short - results[short]["imports_rss_kb"])
    print(common.ratio_line(f"peak RSS above imports {long_:g} min / {short:g} min", growth,
                            "", None))
    rt = results[long_]["video_s"] / results[long_]["cpu_s"]
    print(common.ratio_line(f"realtime per core at {long_:g} min (video s / CPU s)", rt,
                            "", None))
    peak_mb = _mb(peak_long)
    met = peak_mb < GOAL_PEAK_RSS_MB
    print(f"peak RSS at {long_:g} min: {peak_mb:.1f} MB  "
          f"(goal < {GOAL_PEAK_RSS_MB:g} MB: {common.verdict(met)})")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", nargs="+", type=float, metavar="M",
                        help="video lengths to compare (default 5 20; --quick: 0.5 2)")
    parser.add_argument("--height", type=int, help="video height in px (default 720; --quick 360)")
    parser.add_argument("--speaker", default="chem", help="lip2wav preset in params.yaml")
    parser.add_argument("--cache-dir", type=Path, default=CACHE_DIR,
                        help="where the generated videos are kept")
    parser.add_argument("--quick", action="store_true", help="0.5 and 2 min at 360p (smoke run)")
    parser.add_argument("--child", nargs=2, type=Path, metavar=("VIDEO", "WORK_DIR"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child[0], args.child[1], args.speaker)
        return
    minutes = args.minutes or ([0.5, 2.0] if args.quick else [5.0, 20.0])
    if len(minutes) < 2 or min(minutes) <= 0:
        parser.error("--minutes needs at least two positive lengths to compare")
    height = args.height or (360 if args.quick else 720)
    run(sorted(minutes), height, args.speaker, args.cache_dir)


if __name__ == "__main__":
    main()
