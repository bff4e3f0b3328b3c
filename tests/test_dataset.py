"""ClipWindowDataset: aligned windows, split filters, lazy per-worker opening."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from lipflow.models.dataset import ClipWindowDataset, DatasetError, loader_start_method
from lipflow.tasks.contracts.clip_record import load_clip
from lipflow.tasks.contracts.store_layout import manifest_path_for
from tests.support.clips import build_store


def _clip(path: Path) -> dict[str, np.ndarray]:
    return load_clip(path)


def test_whole_clips_give_240_mel_and_edge_padded_mfec(tmp_path: Path) -> None:
    # lossless, so frames compare exactly (the lossy defaults are test_stores' and below)
    store, paths = build_store(tmp_path, 3, valid_frames=60, rejected=1,
                               store_kwargs={"codec": "lz4"})
    data = ClipWindowDataset([store], modality="face")
    assert len(data) == 3
    for i, path in enumerate(paths):
        item, clip = data[i], _clip(path)
        assert item["video"].dtype == torch.uint8 and item["video"].shape == (75, 8, 8, 3)
        assert torch.equal(item["video"], torch.from_numpy(clip["face"]))
        assert item["mel"].dtype == torch.float32
        assert torch.equal(item["mel"], torch.from_numpy(clip["mel"][:240]))
        assert item["mfec"].shape == (150, 40, 3)
        assert torch.equal(item["mfec"][:149], torch.from_numpy(clip["mfec"]))
        assert torch.equal(item["mfec"][149], item["mfec"][148])
        assert item["wav"].dtype == torch.int16
        assert torch.equal(item["wav"], torch.from_numpy(clip["wav"]))
        assert item["valid_frames"].item() == 60
        assert item["store_index"].item() == i and item["clip_index"].item() == i


@pytest.mark.parametrize(
    ("fps", "window", "mel_len", "mfec_len"),
    [(25, 5, 16, 10), (30, 3, 8, 5), (30, 90, 240, 150)],
)
def test_windows_align_streams_with_the_floor_rule(
    tmp_path: Path, fps: int, window: int, mel_len: int, mfec_len: int
) -> None:
    frames = 3 * fps
    valid = frames if window == frames else frames - 7
    # lossless, so each window's frames identify exactly where it was cut from
    store, paths = build_store(tmp_path, 2, fps=fps, valid_frames=valid,
                               store_kwargs={"codec": "lz4"})
    stride = 4
    data = ClipWindowDataset([store], modality="mouth", window_frames=window, stride_frames=stride)
    starts = list(range(0, valid - window + 1, stride))
    assert len(starts) >= 1 and len(data) == 2 * len(starts)
    for index in range(len(data)):
        item = data[index]
        clip = _clip(paths[item["store_index"].item()])
        s = item["start_frame"].item()
        assert s == starts[index % len(starts)]
        # independent integer arithmetic: mel 80/s, MFEC 50/s, audio 16000/s
        mel0, mfec0, wav0 = s * 80 // fps, s * 50 // fps, s * 16000 // fps
        assert item["video"].shape == (window, 6, 10)
        assert torch.equal(item["video"], torch.from_numpy(clip["mouth"][s : s + window]))
        assert torch.equal(item["mel"], torch.from_numpy(clip["mel"][mel0 : mel0 + mel_len]))
        assert item["mfec"].shape[0] == mfec_len
        n = min(mfec_len, 149 - mfec0)
        assert torch.equal(item["mfec"][:n], torch.from_numpy(clip["mfec"][mfec0 : mfec0 + n]))
        wav_len = window * 16000 // fps
        assert torch.equal(item["wav"], torch.from_numpy(clip["wav"][wav0 : wav0 + wav_len]))
        assert item["valid_frames"].item() == window


def test_split_filter_and_several_stores(tmp_path: Path) -> None:
    s1, _ = build_store(tmp_path, 4, speaker="s1", splits=["train", "val", "train", "test"],
                        rejected=2)
    s2, _ = build_store(tmp_path, 3, speaker="s2", fps=30, splits=["val", "train", "val"],
                        seed=1)
    val = ClipWindowDataset([s1, s2], modality="face", splits=["val"], include=("mel",))
    assert list(val.clips["clip_id"]) == ["s1/utt001/0", "s2/utt000/0", "s2/utt002/0"]
    got = [(val[i]["store_id"].item(), val[i]["store_index"].item()) for i in range(len(val))]
    assert got == [(0, 1), (1, 0), (1, 2)]
    assert set(val[0]) == {"mel", "valid_frames", "start_frame", "store_id", "store_index",
                           "clip_index"}
    assert val[0]["mel"].shape == (240, 80) and val[1]["mel"].shape == (240, 80)

    only_s2_train = ClipWindowDataset(
        [s1, s2], modality="mouth", splits=["train"],
        split_filter=lambda m: m["speaker"] == "s2",
    )
    assert list(only_s2_train.clips["clip_id"]) == ["s2/utt001/0"]
    assert only_s2_train[0]["video"].shape == (90, 6, 10)


def test_dataloader_with_two_workers(tmp_path: Path) -> None:
    store, _ = build_store(tmp_path, 6, valid_frames=70)
    data = ClipWindowDataset([store], modality="face", window_frames=25, stride_frames=20)
    data[0]  # opens handles in this process; they must not travel to the workers
    assert pickle.loads(pickle.dumps(data))._arrays is None
    loader = DataLoader(data, batch_size=4, num_workers=2, shuffle=False)
    seen = []
    for batch in loader:
        assert batch["video"].shape[1:] == (25, 8, 8, 3)
        assert batch["mel"].shape[1:] == (80, 80)
        assert batch["mfec"].shape[1:] == (50, 40, 3)
        assert batch["wav"].shape[1:] == (16000,)
        seen += zip(batch["store_index"].tolist(), batch["start_frame"].tolist(), strict=True)
    assert seen == [(c, s) for c in range(6) for s in (0, 20, 40)]


def test_loader_workers_work_after_a_prefect_flow_ran(tmp_path: Path, prefect_harness) -> None:
    """Training runs inside a flow: its loader workers must not inherit the flow's state."""
    from prefect import flow

    @flow
    def tiny() -> int:
        return 1

    assert tiny() == 1
    store, _ = build_store(tmp_path, 3, valid_frames=70)
    data = ClipWindowDataset([store], modality="face", window_frames=25, stride_frames=25)
    loader = DataLoader(data, batch_size=2, num_workers=2,
                        multiprocessing_context=loader_start_method())
    seen = sorted(i for batch in loader for i in batch["store_index"].tolist())
    assert seen == sorted([c for c in range(3) for _ in range(2)])


def test_bad_arguments_and_mismatched_manifest(tmp_path: Path) -> None:
    store, _ = build_store(tmp_path, 2)
    with pytest.raises(DatasetError, match="modality"):
        ClipWindowDataset([store], modality="lips")  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="unknown streams"):
        ClipWindowDataset([store], modality="face", include=("video", "text"))
    other, _ = build_store(tmp_path / "other", 3)
    manifest_path_for(store).write_bytes(manifest_path_for(other).read_bytes())
    with pytest.raises(DatasetError, match="3 kept rows but store .* holds 2 clips"):
        ClipWindowDataset([store], modality="face")


def test_direct_reader_gives_what_zarr_gives(tmp_path: Path) -> None:
    store, _ = build_store(tmp_path, 3, clips_per_shard=2, valid_frames=66, zero_padding=True,
                           store_kwargs={"frames_per_chunk": 10})  # jpeg, the default
    for window, modality in ((None, "face"), (25, "face"), (None, "mouth"), (25, "mouth")):
        direct = ClipWindowDataset([store], modality=modality, window_frames=window,
                                   stride_frames=7)
        plain = ClipWindowDataset([store], modality=modality, window_frames=window,
                                  stride_frames=7, reader="zarr")
        assert len(direct) == len(plain) == (3 if window is None else 3 * 6)
        for i in range(len(direct)):
            a, b = direct[i], plain[i]
            assert a.keys() == b.keys()
            for key in a:
                assert torch.equal(a[key], b[key]), (window, modality, i, key)
    with pytest.raises(DatasetError, match="reader must be"):
        ClipWindowDataset([store], modality="face", reader="fast")  # type: ignore[arg-type]
