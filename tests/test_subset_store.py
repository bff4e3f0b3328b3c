"""benchmarks/subset_store.py: a seeded sample of a store's clips, same layout, its
manifest renumbered, arrays left without data reading as zeros, JPEG re-encoded at
another quality."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import zarr

from lipflow.tasks.common.errors import LipflowError
from lipflow.tasks.contracts.clip_manifest import read_clip_manifest
from lipflow.tasks.contracts.store_layout import manifest_path_for
from tests.support.benchmark_scripts import load_benchmark
from tests.support.clips import build_store


def _script():
    return load_benchmark("subset_store")


def _inner_jpeg(meta: dict) -> dict:
    return next(c for c in meta["codecs"][0]["configuration"]["codecs"]
                if c["name"] == "imagecodecs_jpeg")["configuration"]


def test_subset_keeps_layout_and_renumbers_the_manifest(tmp_path: Path) -> None:
    tool = _script()
    store, _ = build_store(tmp_path, 9, store_kwargs={"codec": "jpeg"})
    out = tmp_path / "sub" / "s1.zarr"
    sizes = tool.subset_store(store, out, 4, seed=3, skip_data=["mfec"],
                              jpeg_quality={"mouth": 60}, subsampling="420")
    source, subset = (zarr.open_group(str(p), mode="r") for p in (store, out))
    chosen = np.sort(np.random.default_rng(3).choice(9, size=4, replace=False))
    manifest = read_clip_manifest(manifest_path_for(out))
    full = read_clip_manifest(manifest_path_for(store)).set_index("store_index")
    assert manifest["store_index"].tolist() == [0, 1, 2, 3]
    assert manifest["clip_id"].tolist() == full.loc[chosen, "clip_id"].tolist()
    for name in ("face", "mel", "wav", "valid_frames"):
        assert subset[name].shape == (4, *source[name].shape[1:])
    for name in ("mel", "wav", "valid_frames"):  # lossless: exact
        assert np.array_equal(subset[name][:], source[name][chosen.tolist()])
    # JPEG at its own quality: one more generation, the same pictures
    face_error = np.abs(subset["face"][:].astype(int) - source["face"][chosen.tolist()])
    assert face_error.mean() < 3
    assert not subset["mfec"][:].any()  # no data: reads as the fill value
    assert sizes["mfec"] == (out / "mfec" / "zarr.json").stat().st_size
    mouth_meta = json.loads((out / "mouth" / "zarr.json").read_text())
    assert _inner_jpeg(mouth_meta) == {**_inner_jpeg(json.loads(
        (store / "mouth" / "zarr.json").read_text())), "level": 60, "subsampling": "420"}
    error = np.abs(subset["mouth"][:].astype(int) - source["mouth"][chosen.tolist()]).mean()
    assert face_error.mean() < error < 20  # coarser than the face's own quality
    attrs = dict(subset.attrs)
    assert attrs["encoding"]["jpeg_quality"]["mouth"] == 60
    assert attrs["subset_of"] == {"store": str(store), "clips": 4, "seed": 3,
                                  "arrays_with_data": sorted(set(source.array_keys()) - {"mfec"})}


def test_subset_rejects_bad_requests(tmp_path: Path) -> None:
    tool = _script()
    store, _ = build_store(tmp_path, 3, store_kwargs={"codec": "jpeg"})
    with pytest.raises(LipflowError, match="--clips must be 1..3"):
        tool.subset_store(store, tmp_path / "a.zarr", 5)
    with pytest.raises(LipflowError, match="no array wave"):
        tool.subset_store(store, tmp_path / "b.zarr", 2, skip_data=["wave"])
    with pytest.raises(LipflowError, match="not JPEG-encoded"):
        tool.subset_store(store, tmp_path / "c.zarr", 2, jpeg_quality={"mel": 50})
    assert not (tmp_path / "c.zarr").exists()
    done = tmp_path / "d.zarr"
    assert tool.main(["--store", str(store), "--out", str(done), "--clips", "2"]) == 0
    before = sorted(p.relative_to(done) for p in done.rglob("*"))
    assert tool.main(["--store", str(store), "--out", str(done), "--clips", "9"]) == 2
    assert sorted(p.relative_to(done) for p in done.rglob("*")) == before  # left as it was
