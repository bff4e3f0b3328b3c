"""``lipflow synthesize`` throughput on CPU: seconds of speech per second of wall time.

    .venv/bin/python benchmarks/synthesize.py [--seconds 60] [--threads 1]

The video is the bundled GRID clip s1/bbaf2n.mpg looped (``ffmpeg -stream_loop``, silent,
MPEG-4) to about ``--seconds`` long. The model is the tiny lip2wav preset of params.yaml
with its initial (untrained) weights, saved as a ``best.pt`` the way ``lipflow train``
writes one: throughput does not depend on what the weights learned. Everything
``lipflow synthesize`` does is timed: decoding and resampling, face tracking and crops,
the model on every overlapping window, stitching, one Griffin-Lim over the whole mel, and
writing the wav. The stages are also timed apart (tracking and model per window, then
Griffin-Lim) so the figure can be read. ``ratio`` is speech seconds over wall seconds: above
1 means faster than real time.
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, SAMPLE_GRID, cpu_seconds  # sets BLAS threads first

sys.path.insert(0, str(ROOT))


def make_checkpoint(path: Path) -> Path:
    from lipflow.models.checkpoints import save_best
    from lipflow.models.registry import model_config, spec
    from lipflow.models.runtime import seed_everything
    from lipflow.tasks.settings.project import load_params

    cfg = model_config(load_params(ROOT / "params.yaml")["train"], "lip2wav", size="tiny")
    seed_everything(0)
    save_best(path, "lip2wav", spec("lip2wav").build(cfg), cfg, 0)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="video length (about)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()

    import torch

    from lipflow.models.synthesize import load_synthesizer, synthesize_video, write_wav
    from lipflow.tasks.settings.project import load_params
    from tests.support.synth_media import looped

    torch.set_num_threads(args.threads)
    sample = SAMPLE_GRID / "s1" / "bbaf2n.mpg"
    with tempfile.TemporaryDirectory(prefix="lipflow-synth-bench-") as tmp:
        work = Path(tmp)
        video = looped(sample, work / "long.mp4", loops=max(1, round(args.seconds / 3.0)))
        synth = load_synthesizer("lip2wav", make_checkpoint(work / "best.pt"),
                                 load_params(ROOT / "params.yaml"), device="cpu")
        window_times: list[float] = []
        last = [time.perf_counter()]

        def tick(_window: object) -> None:
            now = time.perf_counter()
            window_times.append(now - last[0])
            last[0] = now

        start, cpu_start = time.perf_counter(), cpu_seconds()
        result = synthesize_video(synth, video, on_window=tick)
        write_wav(work / "out.wav", result.wav, result.sample_rate_hz)
        wall, cpu = time.perf_counter() - start, cpu_seconds() - cpu_start
    speech = len(result.wav) / result.sample_rate_hz
    windows_s = sum(window_times)
    print(f"video: {result.duration_s:.1f} s at {result.fps:g} fps, {result.windows} windows "
          f"of {synth.clip_frames} frames ({synth.overlap_frames} shared)")
    print(f"torch threads: {args.threads}")
    print(f"windows (decode, track, crop, model): {windows_s:.2f} s "
          f"({1000 * windows_s / max(1, result.windows):.0f} ms a window)")
    print(f"stitch + Griffin-Lim + wav: {wall - windows_s:.2f} s")
    print(f"wall: {wall:.2f} s (CPU {cpu:.2f} s) for {speech:.1f} s of speech")
    print(f"ratio speech seconds per wall second: {speech / wall:.2f}x")
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS: {rss_mb:.1f} MB")


if __name__ == "__main__":
    main()
