"""Preprocessing speed on GRID: lipflow vs the decode-only floor and a Lip2Wav-style baseline.

    .venv/bin/python benchmarks/preprocess.py [--repeats 9] [--quick] [--profile N]

Three ways through the same videos, interleaved in each round so a noisy, shared machine
slows them alike; figures are medians over rounds, all measured in this one run:

- **decode-only** (the floor): every video frame decoded with PyAV, as
  ``lipflow.tasks.media.probe.count_frames`` does (no RGB conversion), plus every audio frame
  decoded.
- **lipflow**: ``lipflow.tasks.prepare.video.preprocess_video`` with GRID's settings from
params.yaml
  (resample, face tracking with detection every ``detect_every_frames`` frames plus its
  refinement, face and mouth crops, 16 kHz audio, mel + MFEC, one ``.npy`` record per clip).
- **Lip2Wav-style baseline**: the same decoding and MediaPipe detector, but detection on
  every frame (Lip2Wav ran a face detector on every frame), each face crop written as a
  JPEG file (``cv2.imwrite``, a folder per clip) and the audio extracted by an ffmpeg
  subprocess to a wav file. It does *less* than lipflow (no mouth crops, no mel/MFEC),
  so the ratio to it is conservative.

CPU time is user + system of this process's threads and its finished children
(``resource.getrusage``), so it counts MediaPipe's worker thread and the ffmpeg
subprocess; "realtime per core" is seconds of video per CPU second. Wall time is printed
too but is at the mercy of the machine's load. BLAS/OpenMP are pinned to one thread for
all three (set before numpy loads, and by threadpoolctl). The goals are issue 3's:
>= 15x realtime per core, within 3x of decode-only, >= 3x faster than the baseline;
each ratio line says "goal met" or "goal missed" (this is a benchmark, not a test).
``--profile N`` adds a cProfile of one lipflow round (CPU clock), top N functions.
``--quick`` (one video, one round, no warm-up) is a smoke run, not a measurement.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as common  # first: pins BLAS/OpenMP threads before numpy loads
import av
import cv2

from lipflow.tasks.common.executables import ffmpeg_exe
from lipflow.tasks.faces.crops import face_crops
from lipflow.tasks.faces.detection import detector_from_params
from lipflow.tasks.faces.tracking import track_face, tracking_options
from lipflow.tasks.media.probe import count_frames, probe
from lipflow.tasks.media.video import iter_frames
from lipflow.tasks.prepare.settings import speaker_settings
from lipflow.tasks.prepare.video import VideoSettings, frame_chunks, preprocess_video
from lipflow.tasks.prepare.windows import frames_per_clip
from lipflow.tasks.settings.project import load_params

GOAL_REALTIME_PER_CORE = 15.0
GOAL_FLOOR_RATIO = 3.0
GOAL_BASELINE_RATIO = 3.0


# --------------------------------------------------------------------------- the three ways


def decode_audio(path: Path) -> int:
    """Decode every audio frame of ``path`` (no resampling); return the sample count."""
    with av.open(str(path)) as container:
        stream = container.streams.audio[0]
        return sum(frame.samples for frame in container.decode(stream))


def decode_only(videos: list[Path]) -> None:
    """The floor: decode all video frames (as count_frames does) and all audio frames."""
    for video in videos:
        count_frames(video)
        decode_audio(video)


def lipflow(records: list[dict[str, Any]], settings: VideoSettings, work_dir: Path) -> None:
    """lipflow's per-video preprocessing, as the prepare flow runs it."""
    for record in records:
        rows = preprocess_video(record, common.SAMPLE_GRID, work_dir, settings)
        if not any(row["kept"] for row in rows):
            raise SystemExit(f"lipflow kept no clip of {record['video_path']}: {rows}")


def lip2wav_baseline(records: list[dict[str, Any]], settings: VideoSettings,
                     work_dir: Path) -> None:
    """Detect on every frame, a JPEG per face crop, audio through an ffmpeg subprocess."""
    pre = dict(settings.preprocess)
    options = {**tracking_options(pre), "detect_every_frames": 1}
    face_px, margin = int(pre.get("face_size_px", 96)), float(pre.get("face_margin", 0.25))
    clip_frames = frames_per_clip(settings.fps, settings.clip_seconds)
    for record in records:
        video = common.SAMPLE_GRID / record["video_path"]
        stem = f"{record['speaker']}__{record['utterance_id']}"
        with detector_from_params(pre) as detector:
            for k, chunk in enumerate(frame_chunks(iter_frames(video, settings.fps), clip_frames)):
                track = track_face(chunk, detector, **options)
                if not track.kept:
                    continue
                folder = work_dir / f"{stem}__{k * clip_frames}"
                folder.mkdir(parents=True, exist_ok=True)
                for i, crop in enumerate(face_crops(chunk, track.boxes, face_px, margin)):
                    cv2.imwrite(str(folder / f"{i}.jpg"), cv2.cvtColor(crop, cv2.COLOR_RGB2BGR))
        subprocess.run(
            [ffmpeg_exe(), "-loglevel", "panic", "-y", "-i", str(video), "-ac", "1",
             "-ar", str(settings.sample_rate_hz), str(work_dir / f"{stem}.wav")],
            check=True, stdin=subprocess.DEVNULL,
        )


# --------------------------------------------------------------------------- running


def _fresh(folder: Path) -> Path:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    return folder


def profile_lipflow(records: list[dict[str, Any]], settings: VideoSettings, work_dir: Path,
                    top: int) -> str:
    """cProfile of one lipflow pass on the CPU clock (other threads' CPU lands on the
    function the main thread waits in, e.g. MediaPipe's detect)."""
    profiler = cProfile.Profile(time.process_time)
    profiler.runcall(lipflow, records, settings, _fresh(work_dir))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def run(repeats: int, quick: bool, profile_top: int) -> None:
    """Measure the three ways ``repeats`` times, interleaved, and print medians and ratios."""
    params = load_params()
    settings, _ = speaker_settings(params, "grid", "s1")
    videos = common.sample_videos()[: 1 if quick else None]
    if not videos:
        raise SystemExit(f"no sample videos under {common.SAMPLE_GRID}")
    records = [common.grid_record(v) for v in videos]
    video_s = sum(count_frames(v) / probe(v).avg_fps for v in videos)

    ways = {
        "decode-only floor": lambda work: decode_only(videos),
        "lipflow preprocess": lambda work: lipflow(records, settings, work),
        "Lip2Wav-style baseline": lambda work: lip2wav_baseline(records, settings, work),
    }
    timings: dict[str, list[common.Timing]] = {name: [] for name in ways}
    with tempfile.TemporaryDirectory(prefix="lipflow-bench-") as tmp:
        work = Path(tmp)
        for fn in [] if quick else ways.values():  # warm-up: imports, models, page cache
            fn(_fresh(work / "warm"))
        for _ in range(repeats):
            for name, fn in ways.items():
                folder = _fresh(work / "run")
                timings[name].append(common.measure(lambda fn=fn, folder=folder: fn(folder)))
        report = profile_lipflow(records, settings, work / "prof", profile_top) \
            if profile_top else ""

    med = {name: common.median_timing(values) for name, values in timings.items()}
    floor, ours, base = (med[name] for name in ways)
    pre = settings.preprocess
    print(f"{len(videos)} GRID sample videos, {video_s:.1f} s of video at {settings.fps:g} fps, "
          f"{repeats} rounds (median), detect_every_frames={pre['detect_every_frames']} "
          f"({pre['detector']}) for lipflow, 1 for the baseline")
    print(f"{common.BLAS_NOTE}; threadpoolctl reports {common.blas_threads()}")
    for name, t in med.items():
        print(f"{name:<24} cpu {t.cpu_s:7.3f} s  wall {t.wall_s:7.3f} s  "
              f"realtime per core {video_s / t.cpu_s:6.1f}x  (wall {video_s / t.wall_s:6.1f}x)")
    per_core = video_s / ours.cpu_s
    print(common.ratio_line("lipflow realtime per core (video s / CPU s)", per_core,
                     f">= {GOAL_REALTIME_PER_CORE:g}x", per_core >= GOAL_REALTIME_PER_CORE))
    to_floor = ours.cpu_s / floor.cpu_s
    print(common.ratio_line("lipflow / decode-only CPU time", to_floor,
                     f"<= {GOAL_FLOOR_RATIO:g}x", to_floor <= GOAL_FLOOR_RATIO))
    to_base = base.cpu_s / ours.cpu_s
    print(common.ratio_line("baseline / lipflow CPU time (lipflow speed-up)", to_base,
                     f">= {GOAL_BASELINE_RATIO:g}x", to_base >= GOAL_BASELINE_RATIO))
    line = common.ratio_line
    print(line("lipflow / decode-only wall time", ours.wall_s / floor.wall_s, "", None))
    print(line("baseline / lipflow wall time", base.wall_s / ours.wall_s, "", None))
    if report:
        print(report)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=9, help="timed rounds (median taken)")
    parser.add_argument("--quick", action="store_true",
                        help="one video, one round, no warm-up: a smoke run, not a measurement")
    parser.add_argument("--profile", type=int, default=0, metavar="N",
                        help="also print a cProfile of one lipflow round (top N functions)")
    args = parser.parse_args(argv)
    with common.one_blas_thread():
        run(1 if args.quick else max(1, args.repeats), args.quick, args.profile)


if __name__ == "__main__":
    main()
