"""One training step of every model, bf16 on and off: step time and peak memory (a
benchmark to run on a GPU machine when one is lent; it also runs on CPU).

Each model takes the step the trainer gives it (``ModelSpec.train_step``): VCA-GAN's
discriminator step then its generator step with its two optimisers, the other models their
single-loss step. The batch is random in the Dataset's format, ``--batch``
clips of ``--frames`` video frames at 25 fps (VCA-GAN's training window: 22 x 40). For
each model and precision it prints the median step time over ``--steps`` timed steps
after one warm-up, the peak memory (CUDA: ``max_memory_allocated``; CPU: the growth of
the process's peak RSS, coarse) and, as the ratio against a baseline measured in the same
run, bf16 step time / fp32 step time (bf16 runs on CUDA only, where lipflow autocasts;
on CPU only fp32 is timed). For VCA-GAN it also times Griffin-Lim of one
batch of its test output (the vocoder its scores are computed from).

    .venv/bin/python benchmarks/gpu_step.py --device cuda                 # full presets
    .venv/bin/python benchmarks/gpu_step.py --device cpu --size tiny --batch 2 --steps 1
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lipflow.models import registry, runtime  # noqa: E402
from lipflow.models.training_step import StepContext  # noqa: E402
from lipflow.tasks.settings.project import load_params  # noqa: E402

SAMPLE_RATE_HZ, FPS, MEL_HOP = 16000, 25, 200


def make_batch(model_name: str, cfg: dict, batch: int, frames: int,
               device: torch.device) -> dict[str, torch.Tensor]:
    """A random batch of ``batch`` clips of ``frames`` frames for ``model_name``."""
    g = torch.Generator().manual_seed(0)
    samples = frames * SAMPLE_RATE_HZ // FPS
    if registry.spec(model_name).modality == "face":
        video = torch.randint(0, 256, (batch, frames, 96, 96, 3), generator=g, dtype=torch.uint8)
    else:
        h, w = cfg.get("image_hw") or cfg.get("mouth_hw") or (96, 96)
        video = torch.randint(0, 256, (batch, frames, int(h), int(w)), generator=g,
                              dtype=torch.uint8)
    out = {
        "video": video,
        "mel": torch.rand(batch, 1 + samples // MEL_HOP, 80, generator=g) * 8 - 4,
        "mfec": torch.randn(batch, 2 * frames - 1, 40, 3, generator=g),
        "wav": (torch.randn(batch, samples, generator=g) * 3000).to(torch.int16),
        "valid_frames": torch.full((batch,), frames),
    }
    if model_name == "gabor":  # raw video-rate Gabor features (7 a frame)
        out["gabor"] = torch.rand(batch, frames, 7, generator=g) * 50
    return {k: v.to(device) for k, v in out.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def time_step(model_name: str, cfg: dict, batch: dict, device: torch.device, bf16: bool,
              steps: int) -> tuple[float, float]:
    """(median seconds per step, peak memory MB) of ``steps`` steps after one warm-up."""
    spec = registry.spec(model_name)
    runtime.seed_everything(0)
    model = spec.build(cfg).to(device).train()
    optimisers = spec.optimisers(model, cfg)
    ctx = StepContext(device=device, autocast_enabled=bf16, autocast_dtype=torch.bfloat16,
                      scaler=torch.amp.GradScaler(device.type, enabled=False),
                      grad_clip=float(cfg.get("grad_clip") or 0), epoch=1, step=0,
                      model_name=model_name)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    rss0 = _peak_rss_mb()
    spec.train_step(model, batch, optimisers, ctx)  # warm-up: allocations, kernel choice
    _sync(device)
    times = []
    for i in range(steps):
        ctx.step = i + 1
        t0 = time.perf_counter()
        spec.train_step(model, batch, optimisers, ctx)
        _sync(device)
        times.append(time.perf_counter() - t0)
    peak = (torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda"
            else _peak_rss_mb() - rss0)
    return statistics.median(times), peak


def griffin_lim_seconds(cfg: dict, batch: dict, device: torch.device) -> float:
    """Seconds to turn one batch of VCA-GAN test output into waveforms."""
    spec = registry.spec("vcagan")
    model = spec.build(cfg).to(device).eval()
    pred = spec.predict(model, batch).float().cpu().numpy()
    t0 = time.perf_counter()
    for row in pred:
        spec.to_waveform(row, None)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default=",".join(registry.MODELS))
    parser.add_argument("--size", default="full", choices=("tiny", "full"))
    parser.add_argument("--batch", type=int, default=22)
    parser.add_argument("--frames", type=int, default=40)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--device", default="auto", help="cpu | cuda | auto")
    args = parser.parse_args(argv)
    device = runtime.select_device(None if args.device == "auto" else args.device)
    train_params = load_params()["train"]
    name = torch.cuda.get_device_name(0) if device.type == "cuda" else "CPU"
    print(f"device: {device} ({name}); torch {torch.__version__}; {args.size} presets; "
          f"batch {args.batch} x {args.frames} frames; median of {args.steps} steps")
    print(f"{'model':<10}{'precision':<11}{'step s':>9}{'peak MB':>10}")
    for model_name in args.models.split(","):
        cfg = registry.model_config(train_params, model_name, size=args.size)
        batch = make_batch(model_name, cfg, args.batch, args.frames, device)
        seconds = {}
        for bf16 in (False, True) if device.type == "cuda" else (False,):
            label = "bf16" if bf16 else "fp32"
            step_s, peak = time_step(model_name, cfg, batch, device, bf16, args.steps)
            seconds[label] = step_s
            print(f"{model_name:<10}{label:<11}{step_s:>9.3f}{peak:>10.0f}")
        if "bf16" in seconds:
            print(f"ratio {model_name} bf16 / fp32 step time: "
                  f"{seconds['bf16'] / seconds['fp32']:.2f}x")
        if model_name == "vcagan":
            print(f"vcagan Griffin-Lim of one batch ({args.batch} clips): "
                  f"{griffin_lim_seconds(cfg, batch, device):.2f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
