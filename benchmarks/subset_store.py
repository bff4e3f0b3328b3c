"""Cut a prepared store down to a seeded sample of its clips, to carry it where the whole
store cannot go (a GPU machine that takes 64 MiB per call, say).

    python benchmarks/subset_store.py --store /work/grid_s1/features/s1.zarr \\
        --out /tmp/sub/s1.zarr --clips 160 [--seed 0] [--skip-data mouth mfec] \\
        [--jpeg-quality face=75] [--jpeg-quality mouth=75] [--subsampling 420]

The subset is a store of the same layout (same arrays, chunks, shards and codecs) with
the chosen clips in their store order, and the clip manifest beside it holds their rows
with ``store_index`` renumbered. Why a random sample and not the first clips: GRID's
utterance ids sort by command word, so the first 160 clips of s1 are all "bin ...".

``--skip-data`` names arrays that keep their metadata (the dataset reads e.g. ``face``'s
shape for the store's timing) but no chunks, so they read as zeros: only for a model that
never reads them. Every array is read and written through zarr, so the
lossless arrays (``mel``, ``wav``, ...) are copied exactly and a JPEG array is encoded
again: at its own quality that costs a generation (pixels move by a level or two), and
``--jpeg-quality`` / ``--subsampling`` re-encode it at another one (the store's
attributes record it), which trades PSNR for size.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common  # noqa: E402,F401  (the project on sys.path)
import numpy as np  # noqa: E402

from lipflow.tasks.common.errors import LipflowError  # noqa: E402


def _requality(meta: dict, quality: int, subsampling: str | None = None) -> None:
    """Set the JPEG level (and chroma subsampling) of the array's inner codec."""
    codecs = meta["codecs"]
    if codecs and codecs[0]["name"] == "sharding_indexed":
        codecs = codecs[0]["configuration"]["codecs"]
    for codec in codecs:
        if codec["name"] == "imagecodecs_jpeg":
            codec["configuration"]["level"] = int(quality)
            if subsampling:
                codec["configuration"]["subsampling"] = subsampling
            return
    raise LipflowError("--jpeg-quality names an array that is not JPEG-encoded")


def subset_store(store: Path, out: Path, clips: int, seed: int = 0,
                 skip_data: Sequence[str] = (),
                 jpeg_quality: Mapping[str, int] | None = None,
                 subsampling: str | None = None) -> dict[str, int]:
    """Write ``clips`` clips of ``store`` (seeded sample, store order) to ``out`` and its
    manifest beside; returns the bytes written per array."""
    import zarr

    from lipflow.tasks.common.atomic import atomic_path
    from lipflow.tasks.contracts.clip_manifest import read_clip_manifest, write_clip_manifest
    from lipflow.tasks.contracts.store_layout import manifest_path_for

    group = zarr.open_group(str(store), mode="r", zarr_format=3)
    names = sorted(name for name, _ in group.arrays())
    total = group[names[0]].shape[0]
    if not 0 < clips <= total:
        raise LipflowError(f"--clips must be 1..{total}, got {clips}")
    chosen = np.sort(np.random.default_rng(seed).choice(total, size=clips, replace=False))
    manifest = read_clip_manifest(manifest_path_for(store))
    kept = manifest[manifest["store_index"].isin(chosen.tolist())].copy()
    kept["store_index"] = np.searchsorted(chosen, kept["store_index"].to_numpy())
    kept = kept.sort_values("store_index", kind="stable").reset_index(drop=True)
    unknown = set(skip_data) - set(names)
    if unknown:
        raise LipflowError(f"no array {', '.join(sorted(unknown))} in {store}")
    copy = set(names) - set(skip_data)
    sizes: dict[str, int] = {}
    with atomic_path(out) as tmp:
        tmp.mkdir(parents=True)
        meta = json.loads((store / "zarr.json").read_text())
        encoding = meta["attributes"].setdefault("encoding", {})
        for name, quality in (jpeg_quality or {}).items():
            encoding.setdefault("jpeg_quality", {})[name] = int(quality)
        meta["attributes"]["subset_of"] = {"store": str(store), "clips": clips, "seed": seed,
                                           "arrays_with_data": sorted(copy)}
        (tmp / "zarr.json").write_text(json.dumps(meta, indent=2))
        for name in names:
            array_meta = json.loads((store / name / "zarr.json").read_text())
            array_meta["shape"][0] = clips
            if name in (jpeg_quality or {}):
                _requality(array_meta, jpeg_quality[name], subsampling)
            (tmp / name).mkdir()
            (tmp / name / "zarr.json").write_text(json.dumps(array_meta, indent=2))
            if name in copy:
                target = zarr.open_array(str(tmp / name), mode="r+")
                source = group[name]
                for row, index in enumerate(chosen.tolist()):
                    target[row] = source[index]
            sizes[name] = sum(f.stat().st_size for f in (tmp / name).rglob("*") if f.is_file())
    rows = kept.astype(object).where(kept.notna(), None).to_dict("records")
    write_clip_manifest(rows, manifest_path_for(out))
    return sizes


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--clips", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-data", nargs="+", default=[], metavar="ARRAY",
                        help="arrays written without data (read as zeros)")
    parser.add_argument("--subsampling", default=None, choices=["444", "422", "420"],
                        help="chroma subsampling of the re-encoded JPEG arrays")
    parser.add_argument("--jpeg-quality", action="append", default=[], metavar="ARRAY=Q",
                        help="re-encode a JPEG array at quality Q")
    args = parser.parse_args(argv)
    qualities: dict[str, int] = {}
    for item in args.jpeg_quality:
        name, sep, value = item.partition("=")
        if not sep or not value.isdigit():
            parser.error(f"--jpeg-quality wants ARRAY=Q, got {item!r}")
        qualities[name] = int(value)
    try:
        sizes = subset_store(args.store, args.out, args.clips, args.seed, args.skip_data,
                             qualities, args.subsampling)
    except LipflowError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    for name, size in sizes.items():
        print(f"{name:14s} {size / 1e6:8.2f} MB")
    print(f"{'total':14s} {sum(sizes.values()) / 1e6:8.2f} MB -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
