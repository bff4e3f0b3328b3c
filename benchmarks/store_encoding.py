"""Store encodings measured on a real prepared store: size, fidelity and loader speed.

Takes one store written losslessly (``lipflow prepare`` with ``features.store.codec: lz4``,
e.g. GRID s1) and re-encodes every clip of it with each of ``--encodings`` through the
real writer (:func:`lipflow.tasks.contracts.store_writer.write_store`), so the figures are
those ``prepare`` would give. Beside them, the Lip2Wav layout of the same clips: a folder
per clip of ``cv2.imwrite`` JPEGs (quality 95, 4:2:0, Lip2Wav's preprocessing) plus
``mels.npz``; its mouth line uses the same JPEG settings on the grey mouth crops (Lip2Wav
itself keeps only faces).

Prints one row per encoding: GB per hour of video (all arrays; apparent bytes, what DVC
and object stores bill, and allocated bytes, what a local disk holds: a folder of small
JPEGs rounds each up to a 4 KB block), PSNR of ``face`` and ``mouth`` against the lossless
crops over every valid frame (pooled MSE; the worst clip's PSNR beside it) and the largest absolute
error, and loader samples per second, one process, one thread everywhere:
``ClipWindowDataset`` (face, video + mel) against the Lip2Wav loader of
``benchmarks/loader.py`` on the first ``--loader-clips`` clips, the passes interleaved in
the same run so the ratio holds on a shared machine; 25-frame windows every 7 frames and
whole clips. ``--survey-clips N`` adds the codec survey behind the choice: image codecs
of imagecodecs, and the temporal candidates of ``benchmarks/_video_codecs.py`` (H.264
4:4:4, near-lossless temporal delta + zstd or LZ4-HC), on the ``face`` crops of N clips
spread over the store (bytes a frame, PSNR, max error, encode and decode time a frame,
best of 3), each chunk of 5 frames one image or stream, beside what one frame of the
Lip2Wav folder costs its loader. No asserts: figures only.

Run: ``.venv/bin/python benchmarks/store_encoding.py --store data/features/grid/s1.zarr``
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import imagecodecs
import numpy as np
import torch
from numcodecs import blosc
from threadpoolctl import threadpool_limits

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _video_codecs import h264_codecs, shipped_delta_codec, tdelta_codecs  # noqa: E402
from loader import disk_bytes, lip2wav_item, paired_rates, spread  # noqa: E402

from lipflow.models.dataset import ClipWindowDataset  # noqa: E402
from lipflow.tasks.contracts.clip_manifest import read_clip_manifest  # noqa: E402
from lipflow.tasks.contracts.store_layout import ARRAY_DTYPES, manifest_path_for  # noqa: E402
from lipflow.tasks.contracts.store_reader import ClipReader, read_store  # noqa: E402
from lipflow.tasks.contracts.store_writer import write_store  # noqa: E402

DEFAULT_ENCODINGS = "delta:7:5,delta:6:4,jpeg:92:85,jpeg:95:90,lz4:3,zstd:3"
LIP2WAV_QUALITY = 95  # cv2.imwrite's default, what Lip2Wav's preprocess.py writes


class StoreClip:
    """Clip ``i`` of a store as the writer's :class:`ClipSource` (``files``, ``[key]``)."""

    def __init__(self, readers: dict[str, ClipReader], scalars: dict[str, np.ndarray],
                 index: int) -> None:
        self.readers, self.scalars, self.index = readers, scalars, index
        self.files = list(ARRAY_DTYPES)

    def open_clip(self) -> StoreClip:
        return self

    def __getitem__(self, key: str) -> np.ndarray:
        if key in self.scalars:
            return np.asarray(self.scalars[key][self.index])
        return self.readers[key].read(self.index)

    def close(self) -> None:
        pass

    def __enter__(self) -> StoreClip:
        return self

    def __exit__(self, *_: object) -> None:
        pass


def parse_encoding(text: str) -> dict:
    """``delta[:STEP:SLACK[:MOUTH_Q[:LEVEL]]]``, ``jpeg:FACE:MOUTH[:LEVEL]``, ``lz4:LEVEL``,
    ``zstd:LEVEL`` or ``none``."""
    parts = text.split(":")
    if parts[0] == "delta":
        given = [int(p) for p in parts[1:]]
        step, slack, mouth, level = given + [7, 5, 85, 3][len(given):]
        return {"codec": "delta", "compressor_level": level,
                "delta": {"step": step, "slack": slack}, "jpeg_quality": {"mouth": mouth}}
    if parts[0] == "jpeg":
        level = int(parts[3]) if len(parts) > 3 else 3
        return {"codec": "jpeg", "compressor_level": level,
                "jpeg_quality": {"face": int(parts[1]), "mouth": int(parts[2])}}
    return {"codec": parts[0], "compressor_level": int(parts[1]) if len(parts) > 1 else 0}


def fidelity(source: Path, store: Path, valid: np.ndarray) -> dict[str, tuple[float, ...]]:
    """(pooled PSNR, worst clip's PSNR, max abs error) of face and mouth over valid frames."""
    out = {}
    for key in ("face", "mouth"):
        ref, got = ClipReader(source / key), ClipReader(store / key)
        sq, count, worst, max_err = 0.0, 0, np.inf, 0
        for i, frames in enumerate(valid):
            a = ref.read(i, 0, int(frames)).astype(np.int16)
            diff = a - got.read(i, 0, int(frames)).astype(np.int16)
            clip_sq = float(np.square(diff, dtype=np.int32).sum(dtype=np.int64))
            sq, count = sq + clip_sq, count + diff.size
            worst = min(worst, _psnr(clip_sq / max(diff.size, 1)))
            max_err = max(max_err, int(np.abs(diff).max(initial=0)))
        out[key] = (_psnr(sq / max(count, 1)), worst, max_err)
    return out


def _psnr(mse: float) -> float:
    return float("inf") if mse == 0 else 10 * np.log10(255.0**2 / mse)


def write_lip2wav_layout(source: Path, folder: Path, valid: np.ndarray) -> dict:
    """Lip2Wav's folders for every clip; returns sizes and JPEG fidelity (face, mouth)."""
    face, mouth, mel = (ClipReader(source / k) for k in ("face", "mouth", "mel"))
    stats = {k: [0.0, 0, np.inf, 0] for k in ("face", "mouth")}
    mouth_bytes = 0
    params = [cv2.IMWRITE_JPEG_QUALITY, LIP2WAV_QUALITY]
    for i, frames in enumerate(valid):
        clip = folder / f"c{i:05d}"
        clip.mkdir(parents=True)
        for key, reader in (("face", face), ("mouth", mouth)):
            data = reader.read(i, 0, int(frames))
            clip_sq, n = 0.0, 0
            for t, frame in enumerate(data):
                bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR) if key == "face" else frame
                ok, jpg = cv2.imencode(".jpg", bgr, params)
                back = cv2.imdecode(jpg, cv2.IMREAD_UNCHANGED)
                if key == "face":
                    (clip / f"{t}.jpg").write_bytes(jpg.tobytes())
                    back = cv2.cvtColor(back, cv2.COLOR_BGR2RGB)
                else:
                    mouth_bytes += len(jpg)
                diff = frame.astype(np.int16) - back.astype(np.int16)
                clip_sq += float(np.square(diff, dtype=np.int32).sum(dtype=np.int64))
                n += diff.size
                stats[key][3] = max(stats[key][3], int(np.abs(diff).max(initial=0)))
            stats[key][0] += clip_sq
            stats[key][1] += n
            stats[key][2] = min(stats[key][2], _psnr(clip_sq / max(n, 1)))
        np.savez_compressed(clip / "mels.npz", spec=mel.read(i).T)
    return {"mouth_bytes": mouth_bytes,
            **{k: (_psnr(s[0] / max(s[1], 1)), s[2], s[3]) for k, s in stats.items()}}


def loader_rates(stores: dict[str, Path], lip2wav: Path, clips: int, repeat: int,
                 window: int | None) -> dict[str, list[float]]:
    """Per-pass samples/s of each store's Dataset and of the Lip2Wav loader, interleaved."""
    fns: dict[str, Callable[[int], object]] = {}
    data = None
    for name, store in stores.items():
        data = ClipWindowDataset([store], modality="face", window_frames=window,
                                 stride_frames=7 if window else None, include=("video", "mel"),
                                 split_filter=lambda m: m["store_index"] < clips)
        fns[name] = data.__getitem__
    assert data is not None
    width = window or data.timings[0].num_frames
    windows = [(int(data[i]["store_index"]), int(data[i]["start_frame"]))
               for i in range(len(data))]
    fns["lip2wav"] = lambda i: lip2wav_item(lip2wav / f"c{windows[i][0]:05d}", windows[i][1],
                                            width)
    order = list(range(len(data)))
    np.random.default_rng(0).shuffle(order)
    return paired_rates(fns, order, repeat, None)


#: (name, encode(frames (F, H, W, 3) -> bytes), decode(bytes) -> array) for the survey
SURVEY: list[tuple[str, Callable[[np.ndarray], bytes], Callable[[bytes], np.ndarray]]] = [
    *[(f"JPEG q{q} 4:4:4", lambda x, q=q: imagecodecs.jpeg8_encode(
        _tall(x), level=q, subsampling="444", optimize=True), imagecodecs.jpeg8_decode)
      for q in (90, 92, 95)],
    *[(f"JPEG q{q} 4:2:0", lambda x, q=q: imagecodecs.jpeg8_encode(
        _tall(x), level=q, subsampling="420", optimize=True), imagecodecs.jpeg8_decode)
      for q in (92, 95)],
    *[(f"JPEG XL distance {d}", lambda x, d=d: imagecodecs.jpegxl_encode(
        _tall(x), distance=d, effort=3), imagecodecs.jpegxl_decode) for d in (0.5, 1.0)],
    *[(f"AVIF q{q} speed 8", lambda x, q=q: imagecodecs.avif_encode(
        _tall(x), level=q, speed=8), imagecodecs.avif_decode) for q in (80, 90)],
    *[(f"JPEG-LS near-lossless {e}", lambda x, e=e: imagecodecs.jpegls_encode(
        _tall(x), level=e), imagecodecs.jpegls_decode) for e in (2, 3)],
    ("LERC max error 3", lambda x: imagecodecs.lerc_encode(_tall(x), level=3),
     imagecodecs.lerc_decode),
]


def _tall(frames: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(frames).reshape(-1, *frames.shape[2:])


def survey(source: Path, clips: int, valid: np.ndarray) -> None:
    """The codec survey (module doc) on ``face`` of ``clips`` clips spread over the store
    (their valid frames only), with the temporal candidates of ``_video_codecs`` and, for
    scale, what one frame of the Lip2Wav folder costs its loader (``cv2.imread`` of a q95
    4:2:0 file plus the BGR-to-RGB conversion)."""
    reader = ClipReader(source / "face")
    picks = np.linspace(0, reader.shape[0] - 1, clips).astype(int)
    frames = np.concatenate([reader.read(int(i), 0, int(valid[i])) for i in picks])
    chunks = [frames[t : t + 5] for t in range(0, len(frames) - 4, 5)]
    count = 5 * len(chunks)
    codecs = [*SURVEY, *tdelta_codecs(frames.shape[1:]), *h264_codecs(),
              shipped_delta_codec(frames.shape[1:])]
    print(f"\ncodec survey: face, {clips} clips ({count} frames), one image or stream per "
          "5-frame chunk; times are the best of 3")
    print("| codec | bytes/frame | PSNR dB | max err | encode us/frame | decode us/frame |")
    print("|---|---|---|---|---|---|")
    for name, encode, decode in codecs:
        t0 = time.perf_counter()
        blobs = [encode(c) for c in chunks]
        encode_s = time.perf_counter() - t0
        back = np.concatenate([np.asarray(decode(b)).reshape(c.shape)
                               for b, c in zip(blobs, chunks, strict=True)])
        decode_s = _best_of(3, lambda blobs=blobs, decode=decode: [decode(b) for b in blobs])
        diff = back.astype(np.int16) - frames[:count]
        print(f"| {name} | {sum(map(len, blobs)) / count:.0f} | "
              f"{_psnr(float(np.mean(np.square(diff, dtype=np.float64)))):.2f} | "
              f"{int(np.abs(diff).max())} | {encode_s / count * 1e6:.0f} | "
              f"{decode_s / count * 1e6:.0f} |")
    with tempfile.TemporaryDirectory(prefix="lipflow-survey-") as folder:
        paths = [str(Path(folder) / f"{t}.jpg") for t in range(count)]
        for path, frame in zip(paths, frames, strict=False):
            cv2.imwrite(path, cv2.cvtColor(frame, cv2.COLOR_RGB2BGR),
                        [cv2.IMWRITE_JPEG_QUALITY, LIP2WAV_QUALITY])
        read_s = _best_of(3, lambda: [cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB)
                                      for p in paths])
    print(f"| (Lip2Wav folder: imread + cvtColor of a q{LIP2WAV_QUALITY} 4:2:0 file, warm "
          f"cache) | | | | | {read_s / count * 1e6:.0f} |")


def _best_of(repeat: int, work: Callable[[], object]) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True, help="a lossless store")
    parser.add_argument("--encodings", default=DEFAULT_ENCODINGS,
                        help="comma-separated delta[:STEP:SLACK[:MOUTH_Q[:LEVEL]]], "
                             "jpeg:FACE_Q:MOUTH_Q[:LEVEL], lz4:L, zstd:L, none")
    parser.add_argument("--loader-clips", type=int, default=64)
    parser.add_argument("--repeat", type=int, default=5, help="loader passes (median)")
    parser.add_argument("--survey-clips", type=int, default=0,
                        help="also run the codec survey on this many clips (0: skip)")
    parser.add_argument("--workdir", type=Path, help="keep the outputs here (default: temp)")
    args = parser.parse_args()
    threadpool_limits(1)
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    blosc.set_nthreads(1)
    source = Path(args.store)
    group = read_store(source)
    attrs = dict(group.attrs)
    valid = np.asarray(group["valid_frames"][:])
    n, frames = group["face"].shape[:2]
    hours = n * frames / float(attrs["fps"]) / 3600
    readers = {k: ClipReader(source / k) for k in ("face", "mouth", "wav", "mel", "mfec")}
    scalars = {k: np.asarray(group[k][:]) for k in ("valid_frames", "valid_samples")}
    clips = [StoreClip(readers, scalars, i) for i in range(n)]
    if args.survey_clips:
        survey(source, args.survey_clips, valid)
    if not args.encodings:
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lipflow-encoding-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        print(f"{source}: {n} clips, {hours * 60:.1f} min of video; "
              f"{time.strftime('%Y-%m-%d')}\n")
        rows, stores = [], {}
        for text in args.encodings.split(","):
            settings = parse_encoding(text)
            target = work / text.replace(":", "_") / source.name
            t0 = time.perf_counter()
            write_store(clips, target, attrs=attrs, progress=False, **settings)
            seconds = time.perf_counter() - t0
            shutil.copy(manifest_path_for(source), manifest_path_for(target))
            sizes = {k: disk_bytes(target, (k,))[0] for k in ARRAY_DTYPES}
            rows.append((text, disk_bytes(target), sizes, fidelity(source, target, valid),
                         seconds))
            stores[text] = target
        l2w = work / "lip2wav"
        shutil.rmtree(l2w, ignore_errors=True)
        t0 = time.perf_counter()
        jpeg = write_lip2wav_layout(source, l2w, valid)
        l2w_seconds = time.perf_counter() - t0
        l2w_app, l2w_alloc = disk_bytes(l2w)

        print("| encoding | GB/h all arrays (apparent / allocated) | face GB/h | mouth GB/h "
              "| face PSNR dB (worst clip) | face max err | mouth PSNR dB (worst clip) "
              "| mouth max err | write s |")
        print("|---|---|---|---|---|---|---|---|---|")
        for text, (app, alloc), sizes, fid, seconds in rows:
            (fp, fw, fm), (mp, mw, mm) = fid["face"], fid["mouth"]
            print(f"| {text} | {app / hours / 1e9:.3f} / {alloc / hours / 1e9:.3f} | "
                  f"{sizes['face'] / hours / 1e9:.3f} | "
                  f"{sizes['mouth'] / hours / 1e9:.3f} | {fp:.2f} ({fw:.2f}) | {fm} | "
                  f"{mp:.2f} ({mw:.2f}) | {mm} | {seconds:.0f} |")
        (fp, fw, fm), (mp, mw, mm) = jpeg["face"], jpeg["mouth"]
        print(f"| lip2wav JPEG q{LIP2WAV_QUALITY} 4:2:0 + mels.npz (face only) | "
              f"{l2w_app / hours / 1e9:.3f} / {l2w_alloc / hours / 1e9:.3f} | | "
              f"{jpeg['mouth_bytes'] / hours / 1e9:.3f} "
              f"(same JPEG, not in the layout) | {fp:.2f} ({fw:.2f}) | {fm} | "
              f"{mp:.2f} ({mw:.2f}) | {mm} | {l2w_seconds:.0f} |")

        clips_used = min(args.loader_clips, n)
        print(f"\nloader, samples/s, one process, face video + mel, first {clips_used} clips, "
              f"median of {args.repeat} interleaved passes (min-max); ratio to lip2wav:")
        for window in (25, None):
            rates = loader_rates(stores, l2w, clips_used, args.repeat, window)
            base = statistics.median(rates["lip2wav"])
            label = f"{window}-frame windows" if window else "whole clips"
            print(f"  {label}: lip2wav {spread(rates.pop('lip2wav'))}")
            for name, values in rates.items():
                print(f"    {name:14s} {spread(values)}  ratio "
                      f"{statistics.median(values) / base:5.2f}x")
        manifest = read_clip_manifest(manifest_path_for(source))
        print(f"\n({int(manifest['kept'].sum())} kept clips in the manifest)")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
