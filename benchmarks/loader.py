"""Loader benchmark: lipflow's Zarr store + ClipWindowDataset against the Lip2Wav layout.

Both layouts are written in the same run from the same clips: real GRID frames and audio
from the bundled sample (``data/samples/grid``, a fixed face box resized to 96 x 96, its
lower half as the mouth), repeated to ``--clips`` clips so that compression sees real
content. The Lip2Wav layout is a folder per clip of ``0.jpg .. T-1.jpg`` face frames
(``cv2.imwrite``, default quality 95) plus ``mels.npz`` (``spec``, 80 x frames, as
Lip2Wav's preprocessing saves it); its loader reads the window's JPEGs and the mel.

Prints samples/second for the same windows in the same (shuffled) order, single process,
both from a warm page cache, and bytes on disk per hour of prepared data. No asserts:
figures and ratios only. Run: ``.venv/bin/python benchmarks/loader.py [--clips 64]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.dataset import ClipWindowDataset  # noqa: E402
from tasks.clip_manifest import write_clip_manifest  # noqa: E402
from tasks.stores import manifest_path_for, write_store  # noqa: E402

SAMPLE = ROOT / "data" / "samples" / "grid"
FPS, SECONDS, SR = 25, 3, 16000
FACE_BOX = (110, 40, 250, 180)  # x0, y0, x1, y1 in the 360 x 288 GRID frame: the talker's face


def _features(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mel and MFEC from lipflow's extractors when present, else shaped stand-ins."""
    try:
        from tasks.audio_features import mel_spectrogram, mfec_cube

        return mel_spectrogram(wav).astype(np.float32), mfec_cube(wav).astype(np.float32)
    except Exception as err:  # noqa: BLE001 - a benchmark must still run without them
        print(f"(audio features unavailable: {err}; using random stand-ins)", file=sys.stderr)
        rng = np.random.default_rng(0)
        mel = rng.uniform(-4, 4, (241, 80)).astype(np.float32)
        return mel, rng.normal(size=(149, 40, 3)).astype(np.float32)


def grid_clip(video: Path) -> dict[str, np.ndarray]:
    """One contract clip (docs/contracts.md section 2) from a GRID .mpg."""
    frames = FPS * SECONDS
    with av.open(str(video)) as container:
        rgb = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)][:frames]
    x0, y0, x1, y1 = FACE_BOX
    face = np.stack([cv2.resize(f[y0:y1, x0:x1], (96, 96), interpolation=cv2.INTER_AREA)
                     for f in rgb])
    valid = len(face)
    face = np.concatenate([face, np.zeros((frames - valid, 96, 96, 3), np.uint8)])
    mouth = np.stack([cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in face])[:, 48:, :]
    mouth = np.stack([cv2.resize(m, (96, 96)) for m in mouth])
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SR)
    chunks = []
    with av.open(str(video)) as container:
        for frame in container.decode(audio=0):
            chunks += [c.to_ndarray().reshape(-1) for c in resampler.resample(frame)]
    chunks += [c.to_ndarray().reshape(-1) for c in resampler.resample(None)]
    audio = np.concatenate(chunks)[: SR * SECONDS]
    wav = np.zeros(SR * SECONDS, np.int16)
    wav[: len(audio)] = audio
    mel, mfec = _features(wav)
    return {"face": face, "mouth": mouth, "wav": wav, "mel": mel, "mfec": mfec,
            "valid_frames": np.array(valid), "valid_samples": np.array(len(audio))}


def manifest_rows(count: int) -> list[dict]:
    return [
        {"clip_id": f"bench/c{i:04d}/0", "corpus": "grid", "speaker": "bench",
         "utterance_id": f"c{i:04d}", "language": "en", "split": "train",
         "source_path": f"bench/c{i:04d}.mpg", "start_s": 0.0, "end_s": float(SECONDS),
         "fps": float(FPS), "num_frames": FPS * SECONDS, "num_samples": SR * SECONDS,
         "valid_frames": FPS * SECONDS, "valid_samples": SR * SECONDS, "kept": True,
         "store_index": i}
        for i in range(count)
    ]


def write_lip2wav(clip: dict[str, np.ndarray], folder: Path) -> None:
    """Lip2Wav's layout: ``<t>.jpg`` per face frame and ``mels.npz`` with ``spec``."""
    folder.mkdir(parents=True)
    for t, frame in enumerate(clip["face"]):
        cv2.imwrite(str(folder / f"{t}.jpg"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    np.savez_compressed(folder / "mels.npz", spec=clip["mel"].T)


def lip2wav_item(folder: Path, start: int, window: int) -> dict[str, torch.Tensor]:
    """A minimal Lip2Wav-style loader (its ``Dataset.__getitem__``, without augmentation)."""
    frames = [cv2.cvtColor(cv2.imread(str(folder / f"{t}.jpg")), cv2.COLOR_BGR2RGB)
              for t in range(start, start + window)]
    mel = np.load(folder / "mels.npz")["spec"].T
    per_frame = Fraction(80, FPS)
    first, length = int(start * per_frame), int(window * per_frame)
    return {"video": torch.from_numpy(np.stack(frames)),
            "mel": torch.from_numpy(np.ascontiguousarray(mel[first : first + length]))}


def disk_bytes(path: Path, under: tuple[str, ...] = ()) -> tuple[int, int]:
    """(apparent bytes, allocated bytes) of every file under ``path`` (optionally subfolders)."""
    roots = [path / u for u in under] if under else [path]
    files = [p for r in roots for p in r.rglob("*") if p.is_file()]
    return sum(p.stat().st_size for p in files), sum(p.stat().st_blocks * 512 for p in files)


def evict(folder: Path) -> None:
    """Drop ``folder``'s files from the page cache (no root needed), for cold-read timings."""
    for path in folder.rglob("*"):
        if path.is_file():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def rate(fn: Callable[[int], object], order: list[int], repeat: int,
         cold: Path | None = None) -> float:
    """Items per second over ``repeat`` passes; ``cold`` is evicted before each pass."""
    fn(order[0])  # warm: open handles, import paths
    elapsed = 0.0
    for _ in range(repeat):
        if cold is not None:
            evict(cold)
        start = time.perf_counter()
        for i in order:
            fn(i)
        elapsed += time.perf_counter() - start
    return repeat * len(order) / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--clips-per-shard", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=2, help="passes over the windows")
    parser.add_argument("--workdir", type=Path, help="keep the layouts here (default: temp)")
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lipflow-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        videos = sorted(SAMPLE.glob("s*/*.mpg"))
        real = [grid_clip(v) for v in videos]
        npz_paths = []
        for i in range(args.clips):
            path = work / "npz" / f"c{i:04d}.npz"
            path.parent.mkdir(exist_ok=True)
            np.savez(path, **real[i % len(real)])
            npz_paths.append(path)

        attrs = {"corpus": "grid", "speaker": "bench", "fps": FPS,
                 "params": {"features": {"mel": {"hop_samples": 200},
                                         "mfec": {"stride_seconds": 0.02}}}}
        t0 = time.perf_counter()
        store = write_store(npz_paths, work / "bench.zarr", attrs=attrs,
                            clips_per_shard=args.clips_per_shard, progress=False)
        write_clip_manifest(manifest_rows(args.clips), manifest_path_for(store))
        t1 = time.perf_counter()
        for i in range(args.clips):
            write_lip2wav(real[i % len(real)], work / "lip2wav" / f"c{i:04d}")
        t2 = time.perf_counter()
        print(f"{args.clips} clips of {SECONDS} s from {len(videos)} GRID videos; "
              f"write: zarr {t1 - t0:.2f} s, lip2wav {t2 - t1:.2f} s")

        hours = args.clips * SECONDS / 3600
        zarr_app, zarr_alloc = disk_bytes(store)
        fm_app, fm_alloc = disk_bytes(store, ("face", "mel"))
        l2w_app, l2w_alloc = disk_bytes(work / "lip2wav")
        zarr_files = sum(1 for p in store.rglob("*") if p.is_file())
        l2w_files = sum(1 for p in (work / "lip2wav").rglob("*") if p.is_file())
        print("\nbytes on disk per hour of prepared data (apparent / allocated), files:")
        print(f"  lipflow zarr, all arrays    {zarr_app / hours / 1e9:7.2f} / "
              f"{zarr_alloc / hours / 1e9:7.2f} GB/h  {zarr_files} files")
        print(f"  lipflow zarr, face+mel only {fm_app / hours / 1e9:7.2f} / "
              f"{fm_alloc / hours / 1e9:7.2f} GB/h")
        print(f"  lip2wav jpg+mels.npz        {l2w_app / hours / 1e9:7.2f} / "
              f"{l2w_alloc / hours / 1e9:7.2f} GB/h  {l2w_files} files")
        print(f"  ratio lip2wav/lipflow (allocated): all arrays {l2w_alloc / zarr_alloc:.2f}x, "
              f"face+mel {l2w_alloc / fm_alloc:.2f}x")

        print("\nsamples/second, single process, shuffled windows (higher is better);")
        print("warm = files in the page cache, cold = evicted before each pass:")
        for cache in ("warm", "cold"):
            for window in (None, 25):
                width = window or FPS * SECONDS
                for include in (("video", "mel"), ("video", "mel", "mfec", "wav")):
                    data = ClipWindowDataset([store], modality="face", window_frames=window,
                                             include=include)
                    order = list(range(len(data)))
                    random.Random(0).shuffle(order)
                    zarr_rate = rate(data.__getitem__, order, args.repeat,
                                     store if cache == "cold" else None)
                    if include == ("video", "mel"):
                        windows = [(int(data[i]["store_index"]), int(data[i]["start_frame"]))
                                   for i in range(len(data))]
                        folders = [work / "lip2wav" / f"c{c:04d}" for c, _ in windows]
                        l2w_rate = rate(
                            lambda i: lip2wav_item(folders[i], windows[i][1], width),  # noqa: B023
                            order, args.repeat, work / "lip2wav" if cache == "cold" else None)
                    print(f"  {cache} window {width:2d} frames, zarr {'+'.join(include):20s} "
                          f"{zarr_rate:7.1f}/s  lip2wav (video+mel) {l2w_rate:7.1f}/s  "
                          f"ratio {zarr_rate / l2w_rate:5.2f}x")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
