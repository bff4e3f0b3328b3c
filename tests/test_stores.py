"""Feature stores, read back with plain zarr and pandas (docs/contracts.md sections 3-4)."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import zarr
from zarr.codecs import BloscCodec, ZstdCodec

from lipflow.tasks.contracts.clip_manifest import CLIP_SCHEMA, write_clip_manifest
from lipflow.tasks.contracts.clip_record import ClipFile, load_clip, save_clip
from lipflow.tasks.contracts.delta_codec import FrameDelta
from lipflow.tasks.contracts.jpeg_codec import JpegFrames
from lipflow.tasks.contracts.raw_manifest import ManifestError
from lipflow.tasks.contracts.store_layout import (
    ARRAY_DTYPES,
    DEFAULT_JPEG_QUALITY,
    StoreError,
    manifest_path_for,
)
from lipflow.tasks.contracts.store_reader import ClipReader, read_store, store_summary
from lipflow.tasks.contracts.store_writer import write_store
from tests.support.clips import build_store, clip_rows, store_attrs, write_fake_clips


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_layout_read_back_with_plain_zarr_and_pandas(tmp_path: Path) -> None:
    store, paths = build_store(tmp_path, 10, clips_per_shard=4, rejected=2, mouth_hw=(6, 10))

    group = zarr.open_group(store, mode="r")
    encoding = {"codec": "delta", "lossless": False, "compressor_level": 3,
                "frames_per_chunk": 5, "clips_per_shard": 4,
                "delta": {"array": "face", "filter": "lipflow.frame_delta", "step": 7,
                          "slack": 5, "compressor": "blosc lz4hc 2 bitshuffle, one block"},
                "jpeg_quality": {"mouth": DEFAULT_JPEG_QUALITY["mouth"]}}
    assert dict(group.attrs) == {**store_attrs(), "encoding": encoding,
                                 "created_by": "lipflow tasks.contracts.store_writer.write_store"}
    expected_shapes = {
        "face": (10, 75, 8, 8, 3),
        "mouth": (10, 75, 6, 10),
        "wav": (10, 48000),
        "mel": (10, 241, 80),
        "mfec": (10, 149, 40, 3),
        "valid_frames": (10,),
        "valid_samples": (10,),
    }
    for key, shape in expected_shapes.items():
        array = group[key]
        assert array.shape == shape, key
        assert array.dtype == ARRAY_DTYPES[key], key
        # chunk = one clip along axis 0; the video arrays are cut into 5-frame runs inside
        # it (features.store.frames_per_chunk), so a window decodes only what it overlaps
        frames = (5,) if key in ("face", "mouth") else shape[1:2]
        assert array.chunks == (1, *frames, *shape[2:]), key
        assert array.shards == (4, *shape[1:]), key
        if key == "face":  # the default codec: near-lossless frame deltas, LZ4-HC
            assert array.filters == (FrameDelta(step=7, slack=5),)
            (codec,) = array.compressors
            assert isinstance(codec, BloscCodec) and codec.cname.value == "lz4hc"
            assert codec.clevel == 2 and codec.shuffle.value == "bitshuffle"
        elif key == "mouth":  # one JPEG per chunk, lossy
            assert array.serializer == JpegFrames(level=DEFAULT_JPEG_QUALITY[key])
            assert array.compressors == ()
        else:  # everything else lossless: Blosc zstd with byte shuffle
            (codec,) = array.compressors
            assert isinstance(codec, BloscCodec) and codec.cname.value == "zstd", key
            shuffle = "bitshuffle" if key in ("wav", "mfec") else "shuffle"
            assert codec.clevel == 3 and codec.shuffle.value == shuffle, key
    for i, path in enumerate(paths):
        with ClipFile(path) as clip:
            for key in expected_shapes:
                if key == "face":  # near-lossless: within the slack, even on noise
                    error = np.abs(group[key][i].astype(int) - clip[key])
                    assert error.max() <= 5, f"{key}[{i}]"
                elif key == "mouth":
                    # uniform noise is JPEG's worst case: still within a few levels on average
                    error = np.abs(group[key][i].astype(int) - clip[key])
                    assert error.mean() < 8, f"{key}[{i}]"
                else:
                    np.testing.assert_array_equal(group[key][i], clip[key],
                                                  err_msg=f"{key}[{i}]")

    # 3 shards (4 + 4 + 2 clips) per array: the file count grows with shards, not clips.
    files = _files(store)
    assert sum(name.startswith("face/c/") for name in files) == 3
    assert len(files) == 1 + 7 * (1 + 3)

    manifest = pd.read_parquet(manifest_path_for(store))
    assert list(manifest.columns) == CLIP_SCHEMA.names
    assert pq.read_schema(manifest_path_for(store)).remove_metadata() == CLIP_SCHEMA
    kept = manifest[manifest["kept"]]
    assert list(kept["store_index"]) == list(range(10))
    assert (manifest.loc[~manifest["kept"], "store_index"] == -1).all()
    assert manifest.loc[~manifest["kept"], "reject_reason"].notna().all()
    for _, row in kept.iterrows():
        with ClipFile(paths[row["store_index"]]) as clip:
            assert row["valid_frames"] == int(clip["valid_frames"])
            assert group["valid_frames"][row["store_index"]] == row["valid_frames"]


def test_64_clip_store_is_a_handful_of_files(tmp_path: Path) -> None:
    paths = write_fake_clips(tmp_path / "clips", 64, face_px=4, mouth_hw=(4, 4))
    store = write_store(paths, tmp_path / "s1.zarr", attrs=store_attrs(), progress=False)
    summary = store_summary(store)
    assert summary["num_clips"] == 64
    assert summary["arrays"]["face"]["shards"] == (64, 75, 4, 4, 3)
    # group zarr.json + per array (zarr.json + one shard)
    assert summary["num_files"] == 1 + 7 * 2 == 15


def test_two_runs_give_byte_identical_files(tmp_path: Path) -> None:
    paths = write_fake_clips(tmp_path / "clips", 5)
    first = write_store(paths, tmp_path / "a" / "s1.zarr", attrs=store_attrs(), clips_per_shard=2)
    second = write_store(paths, tmp_path / "b" / "s1.zarr", attrs=store_attrs(), clips_per_shard=2)
    assert _files(first) == _files(second)
    assert len(_files(first)) == 1 + 7 * (1 + 3)


def test_interrupted_write_leaves_previous_store_intact(tmp_path: Path) -> None:
    paths = write_fake_clips(tmp_path / "clips", 10)
    store = write_store(paths, tmp_path / "s1.zarr", attrs=store_attrs(), clips_per_shard=4)
    before = _files(store)

    corrupt = tmp_path / "clips" / "clip_006.npy"
    corrupt.write_bytes(corrupt.read_bytes()[:5000])  # truncated: shard 1 fails mid-way
    with pytest.raises(StoreError, match="clip_006.npy"):
        write_store(paths, store, attrs={**store_attrs(), "speaker": "new"}, clips_per_shard=4)

    assert _files(store) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clips", "s1.zarr"]


def test_mismatched_missing_or_mistyped_clips_are_named(tmp_path: Path) -> None:
    paths = write_fake_clips(tmp_path / "clips", 3)
    odd = write_fake_clips(tmp_path / "odd", 1, face_px=10)[0]
    with pytest.raises(StoreError, match=r"odd/clip_000\.npy.*'face' has shape"):
        write_store([*paths, odd], tmp_path / "x.zarr", attrs=store_attrs())

    arrays = load_clip(paths[0])
    np.savez(tmp_path / "nomel.npz", **{k: v for k, v in arrays.items() if k != "mel"})
    with pytest.raises(StoreError, match=r"nomel\.npz has no 'mel'"):
        write_store([paths[0], tmp_path / "nomel.npz"], tmp_path / "x.zarr", attrs={})

    np.savez(tmp_path / "floatwav.npz", **{**arrays, "wav": arrays["wav"] / 32768.0})
    with pytest.raises(StoreError, match=r"floatwav\.npz: 'wav' is float64"):
        write_store([paths[0], tmp_path / "floatwav.npz"], tmp_path / "x.zarr", attrs={})

    with pytest.raises(StoreError, match="missing.npz does not exist"):
        write_store([tmp_path / "missing.npz"], tmp_path / "x.zarr", attrs={})
    assert not (tmp_path / "x.zarr").exists()


def test_empty_store_has_zero_length_arrays(tmp_path: Path) -> None:
    attrs = store_attrs()
    attrs["params"]["preprocess"].update(face_size_px=96, mouth_height_px=48, mouth_width_px=64)
    store = write_store([], tmp_path / "s1.zarr", attrs=attrs)
    group = read_store(store)
    assert group["face"].shape == (0, 75, 96, 96, 3)
    assert group["mouth"].shape == (0, 75, 48, 64)
    assert group["wav"].shape == (0, 48000)
    assert group["mel"].shape == (0, 241, 80)
    assert group["mfec"].shape == (0, 149, 40, 3)
    assert group["valid_frames"].shape == (0,)
    assert group["face"][:].shape == (0, 75, 96, 96, 3)
    assert group.attrs["speaker"] == "s1"


def test_clip_manifest_rejects_out_of_order_store_index(tmp_path: Path) -> None:
    paths = write_fake_clips(tmp_path / "clips", 2)
    rows = clip_rows(paths, rejected=1)
    rows[0], rows[1] = rows[1], rows[0]
    with pytest.raises(ManifestError, match="expected 0"):
        write_clip_manifest(rows, tmp_path / "s1.parquet")
    rows = clip_rows(paths, rejected=1)
    rows[2]["store_index"] = 5
    with pytest.raises(ManifestError, match="rejected but has store_index 5"):
        write_clip_manifest(rows, tmp_path / "s1.parquet")
    assert not (tmp_path / "s1.parquet").exists()


def test_read_store_names_a_missing_store(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no Zarr store at"):
        read_store(tmp_path / "nothing.zarr")


def _windows(frames: int) -> list[tuple[int, int | None]]:
    """Frame ranges that start and end on and off chunk boundaries, plus edge cases."""
    return [(0, None), (0, 5), (3, 28), (24, 26), (frames - 1, frames), (50, frames + 10),
            (7, 7)]


@pytest.mark.parametrize(
    ("codec", "level", "frames_per_chunk"),
    [("zstd", 3, 0), ("lz4", 5, 0), ("lz4", 3, 25), ("none", 0, 7), ("zstd", 1, 5),
     ("jpeg", 3, 5), ("jpeg", 1, 0)],
)
def test_codecs_read_back_with_plain_zarr_and_clip_reader(
    tmp_path: Path, codec: str, level: int, frames_per_chunk: int
) -> None:
    store, paths = build_store(
        tmp_path, 5, clips_per_shard=2, valid_frames=60, zero_padding=True,
        store_kwargs={"codec": codec, "compressor_level": level,
                      "frames_per_chunk": frames_per_chunk},
    )
    group = zarr.open_group(store, mode="r")
    face = group["face"]
    assert face.chunks[:2] == (1, frames_per_chunk or 75)
    assert group["mel"].chunks == (1, 241, 80)  # only the video arrays are cut along T
    (compressor,) = face.compressors or (None,)
    expected = {"zstd": ZstdCodec, "lz4": BloscCodec, "none": type(None),
                "jpeg": type(None)}[codec]
    assert isinstance(compressor, expected)
    assert group.attrs["encoding"]["lossless"] == (codec != "jpeg")
    for key in ("face", "mouth", "wav", "mel", "mfec"):
        reader = ClipReader(store / key)
        for i, path in enumerate(paths):
            with ClipFile(path) as clip:
                whole = clip[key]
            stored = group[key][i]
            if codec == "jpeg" and key in ("face", "mouth"):
                # lossy, but the same decode for both readers: compare them to each other
                assert np.abs(stored.astype(int) - whole).mean() < 8, f"{key}[{i}]"
                assert not stored[60:].any()  # padded frames: empty chunks, read as zeros
                whole = stored
            np.testing.assert_array_equal(stored, whole, err_msg=f"zarr {key}[{i}]")
            for first, stop in _windows(whole.shape[0]):
                got = reader.read(i, first, stop)
                assert got.flags.writeable and got.dtype == ARRAY_DTYPES[key]
                np.testing.assert_array_equal(got, whole[first:stop], err_msg=f"{key}[{i}]")
        reader.close()


def _talking_head(frames: int = 75, size: int = 96) -> np.ndarray:
    """A smooth synthetic video: a shaded face-coloured disc whose mouth opens and closes
    over a blue background, softened like a lens (camera-like content, unlike uniform noise)."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) / size
    video = np.empty((frames, size, size, 3), np.uint8)
    for t in range(frames):
        face = ((x - 0.5) ** 2 + (y - 0.45) ** 2) < 0.12
        mouth = ((x - 0.5) ** 2 / 0.03 + (y - 0.68) ** 2 / (0.002 + 0.004 * np.sin(t / 3) ** 2)
                 ) < 1
        shade = 0.75 + 0.25 * (1 - y)
        rgb = np.where(face[..., None], np.stack([220 * shade, 170 * shade, 140 * shade], -1),
                       np.stack([40 + 30 * y, 60 + 30 * y, 160 + 40 * x], -1))
        rgb[mouth] = (90, 30, 40)
        # a camera's optics soften edges; hard-edged synthetic shapes are JPEG's worst case
        video[t] = np.clip(cv2.GaussianBlur(rgb, (0, 0), 1.0), 0, 255).astype(np.uint8)
    return video


def _talking_head_clips(folder: Path, faces: tuple[np.ndarray, ...]) -> tuple[
        list[Path], np.ndarray]:
    """Clip files with ``faces`` (one per clip) and the grey lower half of the first as the
    mouth; returns the paths and that mouth."""
    paths = write_fake_clips(folder, len(faces), face_px=96, mouth_hw=(48, 96))
    grey = cv2.cvtColor(faces[0].reshape(-1, 96, 3), cv2.COLOR_RGB2GRAY).reshape(-1, 96, 96)
    mouth = np.ascontiguousarray(grey[:, 48:])
    for path, face in zip(paths, faces, strict=True):
        save_clip(path, {**load_clip(path), "face": face, "mouth": mouth})
    return paths, mouth


def test_jpeg_store_keeps_real_looking_frames_above_40_db_in_standard_jpegs(
    tmp_path: Path,
) -> None:
    video = _talking_head()
    paths, mouth = _talking_head_clips(tmp_path / "clips", (video, video))
    store = write_store(paths, tmp_path / "s1.zarr", attrs=store_attrs(), progress=False,
                        codec="jpeg")
    group = zarr.open_group(store, mode="r")
    for key, source in (("face", video), ("mouth", mouth)):
        stored = group[key][0]
        mse = np.mean((stored.astype(np.float64) - source) ** 2)
        assert 10 * np.log10(255**2 / mse) > 40, key
    # a chunk is a plain JPEG of its frames stacked vertically: OpenCV's own decoder reads it
    shard = (store / "face" / "c" / "0" / "0" / "0" / "0" / "0").read_bytes()
    start = shard.index(b"\xff\xd8")
    end = shard.index(b"\xff\xd9", start) + 2
    image = cv2.cvtColor(cv2.imdecode(np.frombuffer(shard[start:end], np.uint8),
                                      cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    assert image.shape == (5 * 96, 96, 3)
    assert np.abs(image.reshape(5, 96, 96, 3).astype(int) - group["face"][0, :5]).max() <= 1


def test_default_store_keeps_a_talking_head_near_lossless_and_plain_zarr_reads_it(
    tmp_path: Path,
) -> None:
    video = _talking_head()
    padded = video.copy()
    padded[62:] = 0  # frames past a clip's end: chunks 13-14 are never written
    paths, mouth = _talking_head_clips(tmp_path / "clips", (video, padded))
    store = write_store(paths, tmp_path / "s1.zarr", attrs=store_attrs(), progress=False)
    group = zarr.open_group(store, mode="r")
    face = group["face"][0]
    error = face.astype(np.int16) - video
    assert np.abs(error).max() <= 5  # the slack bounds every sample
    assert 10 * np.log10(255**2 / np.mean(error.astype(np.float64) ** 2)) > 40
    # the bytes on disk are smaller than the frames: static pixels became zero deltas
    shard_bytes = sum(p.stat().st_size for p in (store / "face" / "c").rglob("*") if p.is_file())
    assert shard_bytes < video.nbytes * 2 / 8
    # ClipReader (the Dataset's reader) and zarr agree on any window
    reader = ClipReader(store / "face")
    for first, stop in ((0, 75), (7, 32), (3, 4), (58, 75), (61, 66), (70, 75)):
        for clip in (0, 1):
            np.testing.assert_array_equal(reader.read(clip, first, stop),
                                          group["face"][clip, first:stop])
    assert not reader.read(1, 62, 75).any()  # the padding reads back as zeros
    stored = group["mouth"][0].astype(np.float64)
    assert 10 * np.log10(255**2 / np.mean((stored - mouth) ** 2)) > 40


def test_two_runs_with_frame_chunks_give_byte_identical_files(tmp_path: Path) -> None:
    paths = write_fake_clips(tmp_path / "clips", 3, valid_frames=40, zero_padding=True)
    kwargs = {"attrs": store_attrs(), "clips_per_shard": 2, "frames_per_chunk": 10}
    first = write_store(paths, tmp_path / "a" / "s1.zarr", codec="zstd", **kwargs)
    second = write_store(paths, tmp_path / "b" / "s1.zarr", codec="zstd", **kwargs)
    assert _files(first) == _files(second)
    third = write_store(paths, tmp_path / "c" / "s1.zarr", **kwargs)  # jpeg, the default
    assert _files(third) == _files(write_store(paths, tmp_path / "d" / "s1.zarr", **kwargs))


def test_clip_reader_rejects_other_layouts_and_corrupt_shards(tmp_path: Path) -> None:
    store, _ = build_store(tmp_path, 3, clips_per_shard=2)
    reader = ClipReader(store / "face")
    with pytest.raises(IndexError, match="clip 3 out of range"):
        reader.read(3)
    reader.close()

    plain = zarr.create_array(tmp_path / "plain.zarr", shape=(2, 75, 4), chunks=(1, 75, 4),
                              dtype="uint8")
    plain[:] = 1
    with pytest.raises(StoreError, match="does not have the layout ClipReader reads"):
        ClipReader(tmp_path / "plain.zarr")
    with pytest.raises(StoreError, match="cannot read array metadata"):
        ClipReader(tmp_path / "nothing")

    shard = store / "mel" / "c" / "0" / "0" / "0"
    data = bytearray(shard.read_bytes())
    data[-10] ^= 0xFF  # inside the shard index: its crc32c no longer matches
    shard.write_bytes(bytes(data))
    with pytest.raises(StoreError, match="missing or corrupt index"):
        ClipReader(store / "mel").read(0)


def test_bad_codec_level_or_frames_per_chunk_are_named(tmp_path: Path) -> None:
    paths = write_fake_clips(tmp_path / "clips", 1)
    with pytest.raises(StoreError, match="codec must be one of .*'brotli'"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, codec="brotli")
    with pytest.raises(StoreError, match="delta compressor_level must be 1..9, got 12"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, compressor_level=12)
    with pytest.raises(StoreError, match="jpeg compressor_level must be 1..9, got 12"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, codec="jpeg", compressor_level=12)
    with pytest.raises(StoreError, match="delta step must be an integer 1..255, got 0"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, delta={"step": 0})
    with pytest.raises(StoreError, match=r"delta has keys \['quality'\]"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, delta={"quality": 3})
    with pytest.raises(StoreError, match="lz4 compressor_level must be 1..9, got 12"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, codec="lz4", compressor_level=12)
    with pytest.raises(StoreError, match="jpeg_quality of face must be an integer 1..100"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, jpeg_quality={"face": 101})
    with pytest.raises(StoreError, match=r"jpeg_quality has keys \['wav'\]"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, jpeg_quality={"wav": 90})
    with pytest.raises(StoreError, match="frames_per_chunk must be >= 0"):
        write_store(paths, tmp_path / "x.zarr", attrs={}, frames_per_chunk=-1)
    assert not (tmp_path / "x.zarr").exists()


def test_clip_reader_reads_any_clip_sharded_array_like_zarr(tmp_path: Path) -> None:
    """Not only write_store's output: '.' chunk keys, float data, shards of 2, T chunks of 4."""
    array = zarr.create_array(
        tmp_path / "other.zarr", shape=(5, 11, 3), chunks=(1, 4, 3), shards=(2, 12, 3),
        dtype="float32", compressors=BloscCodec(cname="lz4"),
        chunk_key_encoding={"name": "default", "separator": "."},
    )
    values = np.random.default_rng(0).random((5, 11, 3)).astype(np.float32)
    values[4] = 0  # all fill value: zarr writes no chunk for it
    array[:] = values
    reader = ClipReader(tmp_path / "other.zarr")
    for i in range(5):
        for first, stop in [(0, None), (2, 9), (8, 11), (3, 4)]:
            np.testing.assert_array_equal(reader.read(i, first, stop), values[i, first:stop])
    reader.close()


def test_clip_records_round_trip_and_npz_clips_are_accepted(tmp_path: Path) -> None:
    records = write_fake_clips(tmp_path / "npy", 3)
    archives = write_fake_clips(tmp_path / "npz", 3, suffix=".npz")
    loaded = load_clip(records[1])
    with np.load(archives[1]) as archive:
        assert set(loaded) == set(archive.files)
        for name in archive.files:
            assert loaded[name].dtype == archive[name].dtype
            assert np.array_equal(loaded[name], archive[name])
    # A record is a plain .npy: numpy reads it without lipflow.
    assert np.load(records[1])["face"].shape == loaded["face"].shape
    one = write_store(records, tmp_path / "a.zarr", attrs=store_attrs())
    other = write_store(archives, tmp_path / "b.zarr", attrs=store_attrs())
    for name in ("face", "mouth", "wav", "mel", "mfec", "valid_frames"):
        assert np.array_equal(zarr.open_group(one)[name][:], zarr.open_group(other)[name][:])


def test_a_plain_array_or_a_text_file_is_not_a_clip(tmp_path: Path) -> None:
    paths = write_fake_clips(tmp_path / "clips", 1)
    np.save(tmp_path / "plain.npy", np.zeros((3, 4)))
    with pytest.raises(StoreError, match=r"plain\.npy is not a readable clip record"):
        write_store([paths[0], tmp_path / "plain.npy"], tmp_path / "x.zarr", attrs={})
    (tmp_path / "notes.npy").write_text("not numpy at all")
    with pytest.raises(StoreError, match=r"notes\.npy is not a readable clip record"):
        write_store([paths[0], tmp_path / "notes.npy"], tmp_path / "x.zarr", attrs={})
    save_clip(tmp_path / "nowav.npy", {k: v for k, v in load_clip(paths[0]).items()
                                        if k != "wav"})
    with pytest.raises(StoreError, match=r"nowav\.npy has no 'wav'"):
        write_store([paths[0], tmp_path / "nowav.npy"], tmp_path / "x.zarr", attrs={})
    assert not (tmp_path / "x.zarr").exists()


def test_save_clip_keeps_shapes_dtypes_and_values_of_strided_and_scalar_arrays(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(3)
    arrays = {
        "face": rng.integers(0, 255, (5, 8, 8, 3), dtype=np.uint8),
        "mouth": rng.integers(0, 255, (5, 8, 16), dtype=np.uint8)[:, :, ::2],  # strided
        "mel": rng.random((80, 20), dtype=np.float32).T,  # Fortran-ordered view
        "valid_frames": np.int64(4),  # 0-d
    }
    back = load_clip(save_clip(tmp_path / "c.npy", arrays))
    for name, value in arrays.items():
        assert back[name].shape == np.shape(value) and back[name].dtype == value.dtype
        assert np.array_equal(back[name], value)
    assert [p.name for p in tmp_path.iterdir()] == ["c.npy"]  # the temp file is gone
