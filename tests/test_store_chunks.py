"""Clips encoded as store chunks by the workers and shards concatenated from them by the
driver make the same store, byte for byte, as packing the clips directly (write_store):
every codec, a partial last shard, zero-filled chunks zarr leaves out, and clips whose
length is not a multiple of the frames per chunk."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lipflow.flows.runners import tree_digest
from lipflow.tasks.contracts.clip_record import save_clip
from lipflow.tasks.contracts.store_chunks import ClipChunkEncoder, write_store_from_chunks
from lipflow.tasks.contracts.store_layout import StoreError
from lipflow.tasks.contracts.store_reader import read_store
from lipflow.tasks.contracts.store_writer import StoreEncoding, write_store
from tests.support.clips import fake_clip, store_attrs


def sources(encoded):
    return [lambda clip=clip: clip for clip in encoded]


@pytest.mark.parametrize(("codec", "frames_per_chunk", "clips", "per_shard"), [
    ("delta", 5, 7, 3),  # default codec (its direct encoder), shards of 3: partial last
    ("delta", 4, 3, 2),  # chunks of 4: the last runs past the clip, padded before encoding
    ("jpeg", 5, 7, 3),
    ("lz4", 4, 5, 2),    # 75 frames in chunks of 4: the last chunk runs past the clip
    ("zstd", 0, 3, 64),  # one chunk per clip, a single partial shard
    ("none", 5, 4, 4),
])
def test_assembled_store_is_byte_identical_to_write_store(
        tmp_path: Path, codec: str, frames_per_chunk: int, clips: int, per_shard: int) -> None:
    arrays = [fake_clip(i, face_px=16, mouth_hw=(8, 16), valid_frames=60 if i == 1 else None,
                        zero_padding=i == 1) for i in range(clips)]
    paths = [save_clip(tmp_path / f"{i}.npy", a) for i, a in enumerate(arrays)]
    encoding = StoreEncoding(codec, 3, frames_per_chunk, per_shard, {"face": 90, "mouth": 80})
    direct = write_store(paths, tmp_path / "direct.zarr", attrs=store_attrs("s1"),
                         codec=codec, compressor_level=3, frames_per_chunk=frames_per_chunk,
                         clips_per_shard=per_shard, jpeg_quality={"face": 90, "mouth": 80},
                         progress=False)
    encoder = ClipChunkEncoder(encoding)
    encoded = [encoder.encode(a, f"clip{i}") for i, a in enumerate(arrays)]
    if frames_per_chunk:  # zero padding past valid_frames: chunks zarr does not write
        assert None in encoded[1]["face"].chunks and None not in encoded[0]["face"].chunks
    assembled = write_store_from_chunks(sources(encoded), tmp_path / "assembled.zarr",
                                        attrs=store_attrs("s1"), encoding=encoding,
                                        progress=False)
    assert tree_digest(direct) == tree_digest(assembled)
    back = read_store(assembled)
    assert back["face"].shape[0] == clips
    if codec == "delta":  # near-lossless: within the slack of the source
        assert np.abs(back["face"][2].astype(int) - arrays[2]["face"]).max() <= 5
    elif codec != "jpeg":
        assert np.array_equal(back["face"][2], arrays[2]["face"])


def test_empty_store_matches_and_mismatched_clips_are_named(tmp_path: Path) -> None:
    encoding = StoreEncoding()
    empty = write_store_from_chunks([], tmp_path / "empty.zarr", attrs=store_attrs("s1"),
                                    encoding=encoding, progress=False)
    direct = write_store([], tmp_path / "direct.zarr", attrs=store_attrs("s1"), progress=False)
    assert tree_digest(empty) == tree_digest(direct)

    encoder = ClipChunkEncoder(encoding)
    clips = [encoder.encode(fake_clip(0, face_px=16)), encoder.encode(fake_clip(1, face_px=24))]
    with pytest.raises(StoreError, match=r"clip 1 of the store: 'face' has shape"):
        write_store_from_chunks(sources(clips), tmp_path / "bad.zarr", attrs=store_attrs("s1"),
                                encoding=encoding, progress=False)
    assert not (tmp_path / "bad.zarr").exists()
    with pytest.raises(StoreError, match=r"clip odd has no \['mel'\]"):
        encoder.encode({k: v for k, v in fake_clip(2).items() if k != "mel"}, "odd")
    wrong = fake_clip(3)
    wrong["face"] = wrong["face"].astype(np.float32)
    with pytest.raises(StoreError, match="'face' is float32, expected uint8"):
        encoder.encode(wrong, "odd")
