"""Training throughput of the seed models on this machine (a benchmark, not a test).

For each model and size preset of ``params.yaml`` (``train.<model>.tiny`` / ``.full``) it
times optimiser steps on a random batch in the Dataset's format (75 frames at 25 fps,
3 s clips) and prints clips per second, next to baselines measured in the same run: the
model's own forward pass without gradients (so the ratio is the cost of learning, and
machine load mostly cancels out) and, for Lip2Wav's attention decoder, the
non-autoregressive decoder. The Gabor model is timed on precomputed features; the
feature extraction itself is timed separately (frames per second).

    .venv/bin/python benchmarks/train_step.py                 # tiny, and full where it fits
    .venv/bin/python benchmarks/train_step.py --sizes tiny --steps 10 --threads 1
    .venv/bin/python benchmarks/train_step.py --device cuda   # on a GPU machine

A full-size configuration whose first step takes longer than ``--max-step-s`` is reported
as skipped rather than timed.
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from lipflow.models import registry, runtime  # noqa: E402
from lipflow.models.nets import gabor_features  # noqa: E402
from lipflow.tasks.settings.project import load_params  # noqa: E402

FRAMES = 75
MEL_FRAMES = 240


def machine() -> str:
    """One line naming the hardware and software the numbers belong to."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return (
        f"{cpu}, {os.cpu_count()} logical CPUs, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads){gpu}, Python {platform.python_version()}, "
        f"{platform.system()} {platform.release()}"
    )


def make_batch(model_name: str, batch_size: int, device: torch.device) -> dict[str, torch.Tensor]:
    """A random batch in the Dataset's format for ``model_name``."""
    g = torch.Generator().manual_seed(0)
    if model_name == "lip2wav":
        video = torch.randint(
            0, 256, (batch_size, FRAMES, 96, 96, 3), generator=g, dtype=torch.uint8
        )
    else:
        video = torch.randint(0, 256, (batch_size, FRAMES, 60, 100), generator=g, dtype=torch.uint8)
    batch = {
        "video": video,
        "mel": torch.rand(batch_size, MEL_FRAMES, 80, generator=g) * 8 - 4,
        "mfec": torch.randn(batch_size, 2 * FRAMES - 1, 40, 3, generator=g),
        "valid_frames": torch.full((batch_size,), FRAMES),
    }
    if model_name == "gabor":  # raw video-rate features
        batch["gabor"] = torch.rand(batch_size, FRAMES, 7, generator=g) * 50
    if model_name in ("gabor", "gaborpic"):  # their target is made from the audio
        batch["wav"] = (torch.randn(batch_size, FRAMES * 640, generator=g) * 3000).to(torch.int16)
    return {k: v.to(device) for k, v in batch.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class TooSlow(Exception):
    """Raised by the alarm when the warm-up step runs past ``--max-step-s``."""


def _alarm(_signum, _frame):
    raise TooSlow


def time_steps(model_name: str, cfg: dict, device: torch.device, steps: int, max_step_s: float):
    """(train clips/s, forward clips/s) or None when the first step is too slow."""
    spec = registry.spec(model_name)
    runtime.seed_everything(0)
    model = spec.build(cfg).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    batch = make_batch(model_name, int(cfg["batch_size"]), device)
    use_amp, dtype = runtime.autocast_mode(device, cfg.get("amp", "auto"))

    def step() -> None:
        with torch.autocast(device.type, dtype=dtype, enabled=use_amp):
            value = spec.loss(model, batch)
        optimiser.zero_grad(set_to_none=True)
        value.backward()
        optimiser.step()

    model.train()
    # the warm-up step (allocations, kernel selection) doubles as the size check: the alarm
    # interrupts it between two torch ops once it has run longer than max_step_s
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, max_step_s)
    try:
        step()
        _sync(device)
    except TooSlow:
        return None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    train_rate = steps * int(cfg["batch_size"]) / (time.perf_counter() - t0)
    model.eval()
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=use_amp):
        spec.predict(model, batch)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(steps):
            spec.predict(model, batch)
        _sync(device)
    forward_rate = steps * int(cfg["batch_size"]) / (time.perf_counter() - t0)
    return train_rate, forward_rate


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="tiny,full")
    parser.add_argument("--models", default="lip2wav,avsync,gabor")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
    parser.add_argument("--device", default="cpu", help="cpu | cuda | auto")
    parser.add_argument("--max-step-s", type=float, default=10.0)
    parser.add_argument(
        "--full-batch",
        type=int,
        default=2,
        help="batch size for full-size models (0: the preset's); CPU memory",
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = runtime.select_device(args.device)
    train_params = load_params()["train"]
    print(f"machine: {machine()}")
    print(f"device: {device}; batch: {FRAMES} frames at 25 fps (3 s), {args.steps} timed steps")
    header = f"{'model':<28}{'size':<6}{'batch':>6}{'train clips/s':>15}{'fwd clips/s':>13}"
    print(header + f"{'train/fwd':>11}  baseline")
    for model_name in args.models.split(","):
        variants = [("", {})]
        if model_name == "lip2wav":
            variants = [
                ("nonautoregressive", {"decoder": "nonautoregressive"}),
                ("attention", {"decoder": "attention"}),
            ]
        for size in args.sizes.split(","):
            base_rate = None
            for label, extra in variants:
                cfg = {**registry.model_config(train_params, model_name, size=size), **extra}
                if size == "full" and args.full_batch:
                    cfg["batch_size"] = args.full_batch
                if model_name == "avsync" and size == "full":
                    cfg["fps"] = 30.0  # the published net's rate (its 25 fps twin: `grid`)
                name = f"{model_name}/{label}" if label else model_name
                rates = time_steps(model_name, cfg, device, args.steps, args.max_step_s)
                if rates is None:
                    print(
                        f"{name:<28}{size:<6}{cfg['batch_size']:>6}  skipped: first step "
                        f"over {args.max_step_s:g} s"
                    )
                    continue
                train_rate, fwd_rate = rates
                note = ""
                if label == "nonautoregressive":
                    base_rate = train_rate
                elif label == "attention" and base_rate:
                    note = f"{train_rate / base_rate:.2f}x the non-autoregressive decoder"
                print(
                    f"{name:<28}{size:<6}{cfg['batch_size']:>6}{train_rate:>15.2f}"
                    f"{fwd_rate:>13.2f}{train_rate / fwd_rate:>11.2f}  {note}"
                )
    frames = np.random.default_rng(0).integers(0, 256, (FRAMES, 60, 100)).astype(np.uint8)
    t0 = time.perf_counter()
    gabor_features.gabor_features(frames)
    rate = FRAMES / (time.perf_counter() - t0)
    print(f"gabor feature extraction: {rate:.0f} frames/s (60x100 noise frames; one core)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
