"""Loader benchmark: lipflow's Zarr store + ClipWindowDataset against the Lip2Wav layout.

Both layouts are written in the same run from the same clips: real GRID frames and audio
from the bundled sample (``data/samples/grid``, a fixed face box resized to 96 x 96, its
lower half as the mouth), repeated to ``--clips`` clips so that compression sees real
content. The Lip2Wav layout is a folder per clip of ``0.jpg .. T-1.jpg`` face frames
(``cv2.imwrite``, default quality 95) plus ``mels.npz`` (``spec``, 80 x frames, as
Lip2Wav's preprocessing saves it); its loader reads the window's JPEGs and the mel.

Zarr is measured in ``--variants``, each ``codec/frames_per_chunk/reader``: the store's
``features.store.codec`` and ``frames_per_chunk`` (0: one chunk per clip), read either
``direct`` (the Dataset's default,
:class:`lipflow.tasks.contracts.store_reader.ClipReader`) or through ``zarr``
(``zarr.Array`` indexing, the Dataset's ``reader="zarr"``). The default list holds the
shipped layout (``delta/5/direct``: near-lossless face as frame deltas, JPEG mouth,
5-frame chunks), the JPEG layout before it (``jpeg/5/direct``), the lossless option
(``lz4/5/direct``), the first layout and reader (``zstd/0/zarr``) and the steps between.
``benchmarks/store_encoding.py`` measures the encodings on a real prepared speaker (size,
PSNR, loader). 25-frame windows start every ``--stride`` (7) frames, so most of them
straddle chunk boundaries as random training crops do.

Prints samples/second for the same windows in the same (shuffled) order, single process,
one thread everywhere (BLAS, torch, OpenCV, Blosc), and bytes on disk per hour of prepared
data. Each figure is the median of ``--repeat`` passes, the Zarr and JPEG passes
interleaved so both see the same load on a shared machine; the spread (min-max) is shown.
``warm``: files in the page cache; ``cold``: evicted before each pass. Last, the shipped
variant's store is written to ``s3://`` on a moto server on loopback and read through the
same Dataset beside the local store (:func:`s3_figures`; ``--no-s3`` skips it). No asserts:
figures and ratios only. Run: ``.venv/bin/python benchmarks/loader.py [--clips 64]``.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
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
from numcodecs import blosc
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lipflow.models.dataset import ClipWindowDataset  # noqa: E402
from lipflow.tasks.contracts.clip_manifest import write_clip_manifest  # noqa: E402
from lipflow.tasks.contracts.store_layout import CODECS, manifest_path_for  # noqa: E402
from lipflow.tasks.contracts.store_writer import write_store  # noqa: E402

SAMPLE = ROOT / "data" / "samples" / "grid"
DEFAULT_VARIANTS = ("delta/5/direct,jpeg/5/direct,lz4/5/direct,lz4/0/direct,zstd/0/direct,"
                    "none/5/direct,lz4/5/zarr,zstd/0/zarr")
FPS, SECONDS, SR = 25, 3, 16000
FACE_BOX = (110, 40, 250, 180)  # x0, y0, x1, y1 in the 360 x 288 GRID frame: the talker's face


def _features(wav: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mel and MFEC from lipflow's extractors when present, else shaped stand-ins."""
    try:
        from lipflow.tasks.features.mel import mel_spectrogram
        from lipflow.tasks.features.mfec import mfec_cube

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


def one_pass(fn: Callable[[int], object], order: list[int], cold: Path | None) -> float:
    """Items per second over one pass of ``order``; ``cold`` is evicted first."""
    if cold is not None:
        evict(cold)
    start = time.perf_counter()
    for i in order:
        fn(i)
    return len(order) / (time.perf_counter() - start)


def paired_rates(fns: dict[str, Callable[[int], object]], order: list[int], repeat: int,
                 cold: dict[str, Path] | None) -> dict[str, list[float]]:
    """Per-pass rates of each loader, the loaders' passes interleaved (same load for all)."""
    for fn in fns.values():
        fn(order[0])  # warm: open handles, import paths
    rates: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            rates[name].append(one_pass(fn, order, cold[name] if cold else None))
    return rates


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.1f}/s ({min(values):.0f}-{max(values):.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--clips-per-shard", type=int, default=64)
    parser.add_argument("--variants", default=DEFAULT_VARIANTS,
                        help=f"comma-separated codec/frames_per_chunk/reader; codecs "
                             f"{sorted(CODECS)}, readers direct or zarr")
    parser.add_argument("--stride", type=int, default=7,
                        help="frames between 25-frame window starts (7: most windows start "
                             "off any chunk boundary, as random training crops do)")
    parser.add_argument("--level", type=int, default=3, help="compressor_level for all codecs")
    parser.add_argument("--repeat", type=int, default=5, help="passes per figure (median)")
    parser.add_argument("--no-cold", action="store_true", help="skip the cold-cache lines")
    parser.add_argument("--no-s3", action="store_true",
                        help="skip the S3 figure (moto server on loopback)")
    parser.add_argument("--workdir", type=Path, help="keep the layouts here (default: temp)")
    args = parser.parse_args()
    threadpool_limits(1)  # BLAS / OpenMP pools
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    blosc.set_nthreads(1)
    variants = [tuple(v.split("/")) for v in args.variants.split(",")]
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
        stores, write_s = {}, {}
        for codec, fpc, _ in variants:
            name = f"{codec}/{fpc}"
            if name in stores:
                continue
            t0 = time.perf_counter()
            level = 0 if codec == "none" else args.level
            stores[name] = write_store(
                npz_paths, work / f"{codec}_{fpc}" / "bench.zarr", attrs=attrs,
                clips_per_shard=args.clips_per_shard, compressor_level=level,
                codec=codec, frames_per_chunk=int(fpc), progress=False)
            write_clip_manifest(manifest_rows(args.clips), manifest_path_for(stores[name]))
            write_s[name] = time.perf_counter() - t0
        t1 = time.perf_counter()
        for i in range(args.clips):
            write_lip2wav(real[i % len(real)], work / "lip2wav" / f"c{i:04d}")
        l2w_s = time.perf_counter() - t1
        print(f"{args.clips} clips of {SECONDS} s from {len(videos)} GRID videos; write: "
              + ", ".join(f"zarr {c} {s:.2f} s" for c, s in write_s.items())
              + f", lip2wav {l2w_s:.2f} s")

        hours = args.clips * SECONDS / 3600
        l2w_app, l2w_alloc = disk_bytes(work / "lip2wav")
        l2w_files = sum(1 for p in (work / "lip2wav").rglob("*") if p.is_file())
        print("\nbytes on disk per hour of prepared data (apparent / allocated), files:")
        for codec, store in stores.items():
            app, alloc = disk_bytes(store)
            fm_app, fm_alloc = disk_bytes(store, ("face", "mel"))
            files = sum(1 for p in store.rglob("*") if p.is_file())
            print(f"  zarr {codec:8s} all arrays  {app / hours / 1e9:6.2f} / "
                  f"{alloc / hours / 1e9:6.2f} GB/h  {files} files;  face+mel only "
                  f"{fm_app / hours / 1e9:6.2f} / {fm_alloc / hours / 1e9:6.2f} GB/h "
                  f"(lip2wav/zarr {l2w_alloc / fm_alloc:.2f}x)")
        print(f"  lip2wav jpg+mels.npz       {l2w_app / hours / 1e9:6.2f} / "
              f"{l2w_alloc / hours / 1e9:6.2f} GB/h  {l2w_files} files")

        print(f"\nsamples/second, single process, shuffled windows, median of {args.repeat} "
              "passes (min-max);\nratio = median zarr / median lip2wav (video+mel) of the "
              "same passes:")
        caches = ("warm",) if args.no_cold else ("warm", "cold")
        for cache in caches:
            for window in (None, 25):  # whole clips; 25-frame windows every --stride frames
                width = window or FPS * SECONDS
                for include in (("video", "mel"), ("video", "mel", "mfec", "wav")):
                    fns: dict[str, Callable[[int], object]] = {}
                    cold: dict[str, Path] = {}
                    for codec, fpc, reader in variants:
                        store = stores[f"{codec}/{fpc}"]
                        data = ClipWindowDataset(
                            [store], modality="face", reader=reader, window_frames=window,
                            stride_frames=args.stride if window else None, include=include)
                        fns[f"{codec}/{fpc}/{reader}"] = data.__getitem__
                        cold[f"{codec}/{fpc}/{reader}"] = store
                    order = list(range(len(data)))
                    random.Random(0).shuffle(order)
                    windows = [(int(data[i]["store_index"]), int(data[i]["start_frame"]))
                               for i in range(len(data))]
                    folders = [work / "lip2wav" / f"c{c:04d}" for c, _ in windows]
                    fns["lip2wav"] = lambda i: lip2wav_item(  # noqa: B023
                        folders[i], windows[i][1], width)  # noqa: B023
                    cold["lip2wav"] = work / "lip2wav"
                    rates = paired_rates(fns, order, args.repeat,
                                         cold if cache == "cold" else None)
                    l2w = rates.pop("lip2wav")
                    base = statistics.median(l2w)
                    print(f"  {cache} window {width:2d} frames, zarr reads {'+'.join(include)}; "
                          f"lip2wav (video+mel) {spread(l2w)}")
                    for name, values in rates.items():
                        print(f"      zarr {name:16s} {spread(values)}  "
                              f"ratio {statistics.median(values) / base:6.2f}x")
        if not args.no_s3:
            s3_figures(args, npz_paths, attrs, variants[0], stores, work)
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


def s3_figures(args: argparse.Namespace, npz_paths: list[Path], attrs: dict,
               variant: tuple[str, ...], stores: dict[str, Path], work: Path) -> None:
    """The first variant's store written again to ``s3://`` on a loopback moto server (its own
    process; same
    clips, same run), and ClipWindowDataset's samples/second from it beside the local copy.

    Why moto on loopback: no cloud account or network; the figure is a floor for the
    request path (one ranged GET per array per window: HTTP, signing, moto's handling),
    not a prediction for a real bucket, whose latency is higher and bandwidth wider.
    """
    import socket
    import subprocess

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    # its own process (moto's `moto_server`), so the server does not share this one's GIL
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1",
                               "-p", str(port)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise RuntimeError("moto server did not start") from None
            time.sleep(0.2)
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                            "AWS_ENDPOINT_URL", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench",
                      AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_DEFAULT_REGION="us-east-1")
    try:
        from lipflow.tasks.contracts.store_publish import mark_published

        codec, fpc, reader = variant
        import boto3

        boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).create_bucket(
            Bucket="bench")
        url = "s3://bench/features/bench.zarr"
        t0 = time.perf_counter()
        write_store(npz_paths, url, attrs=attrs, clips_per_shard=args.clips_per_shard,
                    compressor_level=0 if codec == "none" else args.level, codec=codec,
                    frames_per_chunk=int(fpc), progress=False, mark=False)
        write_clip_manifest(manifest_rows(args.clips), manifest_path_for(url))
        mark_published(url, str(manifest_path_for(url)))
        write_s = time.perf_counter() - t0
        fns: dict[str, Callable[[int], object]] = {}
        for name, store in (("local", stores[f"{codec}/{fpc}"]), ("s3", url)):
            data = ClipWindowDataset([store], modality="face", reader=reader, window_frames=25,
                                     stride_frames=args.stride, include=("video", "mel"))
            fns[name] = data.__getitem__
        order = list(range(len(data)))
        random.Random(0).shuffle(order)
        rates = paired_rates(fns, order, args.repeat, None)
        base = statistics.median(rates["local"])
        print(f"\nS3 (moto server process on loopback; {codec}/{fpc}/{reader} store written "
              f"there in {write_s:.2f} s), window 25 frames, video+mel, warm page cache locally:")
        for name, values in rates.items():
            ratio = statistics.median(values) / base
            print(f"  {name:6s} {spread(values)}  ratio {ratio:6.2f}x")
    finally:
        server.terminate()
        server.wait(timeout=30)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


if __name__ == "__main__":
    main()
